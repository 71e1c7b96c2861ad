package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// WebhookRequest is the body of POST /api/v1/webhooks.
type WebhookRequest struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	MinSeverity string   `json:"min_severity,omitempty"` // default high
	Categories  []string `json:"categories,omitempty"`   // default: all
	Secret      string   `json:"secret,omitempty"`       // default: generated
}

// WebhookResponse carries the signing secret, shown this once.
type WebhookResponse struct {
	store.Webhook
	Secret string `json:"secret"`
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	ws, err := s.store.Webhooks(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.Webhook]{Items: nonNil(ws), Total: len(ws), Limit: len(ws)})
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var req WebhookRequest
	if !decode(w, r, &req) {
		return
	}
	wh, err := s.CreateWebhook(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, wh)
}

// CreateWebhook validates and stores a webhook and audits it (never its secret).
func (s *Server) CreateWebhook(r *http.Request, req WebhookRequest) (WebhookResponse, error) {
	bad := func(format string, a ...any) (WebhookResponse, error) {
		return WebhookResponse{}, problem(http.StatusBadRequest, format, a...)
	}
	if !validName(req.Name) {
		return bad("name: 1-64 letters, digits, '-', '_' or '.'")
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(req.URL) > 2048 {
		return bad("url: want an http or https URL without credentials in it")
	}
	sev := finding.SeverityHigh
	if req.MinSeverity != "" {
		if sev, err = finding.ParseSeverity(req.MinSeverity); err != nil {
			return bad("min_severity: %s", err.Error())
		}
	}
	var cats []finding.Category
	for _, c := range req.Categories {
		if !finding.Category(c).Valid() {
			return bad("categories: unknown category %q", c)
		}
		cats = append(cats, finding.Category(c))
	}
	if req.Secret == "" {
		req.Secret = "whsec_" + NewSecret(24)
	}
	if len(req.Secret) < 16 || len(req.Secret) > 256 {
		return bad("secret: 16 to 256 characters")
	}
	actor := principalFrom(r.Context()).user.Name
	wh := store.Webhook{ID: "wh-" + NewSecret(6), Name: req.Name, URL: req.URL, Secret: req.Secret, MinSeverity: sev,
		Severity: sev.String(), Categories: cats, Enabled: true, CreatedBy: actor, CreatedAt: s.store.Now()}
	if err := s.store.CreateWebhook(r.Context(), wh); err != nil {
		return WebhookResponse{}, err
	}
	if wh.Categories == nil {
		wh.Categories = []finding.Category{}
	}
	catNames := make([]string, len(cats))
	for i, c := range cats {
		catNames[i] = string(c)
	}
	s.audit(r, "webhook.create", wh.ID, "name="+wh.Name+" url="+redactURL(u)+" min_severity="+wh.Severity+" categories="+strings.Join(catNames, ","))
	return WebhookResponse{Webhook: wh, Secret: req.Secret}, nil
}

// redactURL drops the query, which may carry a token of the receiving service.
func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "REDACTED"
	}
	return c.String()
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.DeleteWebhook(r, r.PathValue("id")); err != nil {
		s.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeleteWebhook removes a webhook and audits it.
func (s *Server) DeleteWebhook(r *http.Request, id string) error {
	if err := s.store.DeleteWebhook(r.Context(), id); err != nil {
		return err
	}
	s.audit(r, "webhook.delete", id, "")
	return nil
}

// WebhookPatch is the body of PATCH /api/v1/webhooks/{id}.
type WebhookPatch struct {
	Enabled *bool `json:"enabled"`
}

func (s *Server) patchWebhook(w http.ResponseWriter, r *http.Request) {
	var req WebhookPatch
	if !decode(w, r, &req) {
		return
	}
	if req.Enabled == nil {
		writeError(w, http.StatusBadRequest, "enabled: want true or false")
		return
	}
	if err := s.SetWebhookEnabled(r, r.PathValue("id"), *req.Enabled); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "enabled": *req.Enabled})
}

// SetWebhookEnabled switches a webhook's deliveries on or off and audits it.
func (s *Server) SetWebhookEnabled(r *http.Request, id string, on bool) error {
	if err := s.store.SetWebhookEnabled(r.Context(), id, on); err != nil {
		return err
	}
	action := "webhook.disable"
	if on {
		action = "webhook.enable"
	}
	s.audit(r, action, id, "")
	return nil
}
