// Package web serves the console's browser pages: server-rendered html/template pages over the
// same sessions, roles and actions as the user API (package api), so a page shows a user no more
// than the API would and a form does exactly what the matching API call does, audit entry
// included. Pages work without JavaScript; the one small script of our own only refreshes
// counters. The package also serves the public install script and agent binary for onboarding.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

//go:embed static templates
var files embed.FS

// Config is what the pages need to know about the console around them.
type Config struct {
	// CAPin is the console CA's pin (sha256:<hex> of its public key), for agent enrollment.
	CAPin string
	// ServerKeyPin is "sha256//<base64>" of the HTTPS server certificate's public key, for
	// curl --pinnedpubkey in the install one-liner.
	ServerKeyPin string
	// CACert is the console CA certificate (PEM), served to install scripts.
	CACert []byte
	// AgentPort is the port of the agent API (gRPC).
	AgentPort string
	// AgentBinary is the palisade-agent executable the console serves to new servers; empty
	// when none is available (the onboarding page then says so).
	AgentBinary string
	// OfflineAfter marks a host offline when no heartbeat came for this long.
	OfflineAfter time.Duration
}

// Server renders the pages.
type Server struct {
	cfg   Config
	api   *api.Server
	store *store.Store
	log   *slog.Logger
	pages map[string]*template.Template
	agent agentFile
}

// New returns the pages over the API's actions and the store.
func New(cfg Config, a *api.Server, st *store.Store, log *slog.Logger) *Server {
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 60 * time.Second
	}
	s := &Server{cfg: cfg, api: a, store: st, log: log, pages: map[string]*template.Template{}}
	s.agent.path = cfg.AgentBinary
	names, _ := fs.Glob(files, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		s.pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", n))
	}
	return s
}

// Register adds the pages to mux.
func (s *Server) Register(mux *http.ServeMux) {
	const viewer, analyst, admin = store.RoleViewer, store.RoleAnalyst, store.RoleAdmin
	page := func(role string, h http.HandlerFunc) http.HandlerFunc {
		return sameOrigin(s.api.RequirePage(role, h, s.denied))
	}
	sub, _ := fs.Sub(files, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(sub)))

	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", sameOrigin(s.login))
	mux.HandleFunc("POST /logout", page(viewer, s.logout))

	mux.HandleFunc("GET /{$}", page(viewer, s.dashboard))
	mux.HandleFunc("GET /live", page(viewer, s.live))
	mux.HandleFunc("GET /hosts", page(viewer, s.hosts))
	mux.HandleFunc("GET /hosts/{id}", page(viewer, s.host))
	mux.HandleFunc("GET /hosts/{id}/packages", page(viewer, s.hostPackages))
	mux.HandleFunc("GET /events", page(viewer, s.events))
	mux.HandleFunc("GET /events/{id}", page(viewer, s.event))
	mux.HandleFunc("POST /events/{id}/status", page(analyst, s.eventStatus))
	mux.HandleFunc("POST /events/{id}/allowlist", page(analyst, s.eventAllowlist))
	mux.HandleFunc("POST /events/{id}/block", page(analyst, s.eventBlock))
	mux.HandleFunc("POST /events/{id}/quarantine", page(analyst, s.eventQuarantine))
	mux.HandleFunc("GET /vulns", page(viewer, s.vulns))
	mux.HandleFunc("GET /vulns/{advisory}", page(viewer, s.vuln))
	mux.HandleFunc("POST /vulns/{advisory}/accept", page(analyst, s.acceptVuln))
	mux.HandleFunc("POST /vulns/acceptances/{id}/withdraw", page(analyst, s.withdrawAcceptance))
	mux.HandleFunc("GET /tasks", page(viewer, s.tasks))
	mux.HandleFunc("POST /tasks", page(analyst, s.startTask))
	mux.HandleFunc("GET /tasks/{id}", page(viewer, s.task))
	mux.HandleFunc("GET /onboarding", page(admin, s.onboarding))
	mux.HandleFunc("POST /onboarding", page(admin, s.createEnrollToken))
	mux.HandleFunc("GET /settings", page(viewer, s.settings))
	mux.HandleFunc("POST /settings/users", page(admin, s.createUser))
	mux.HandleFunc("POST /settings/tokens", page(viewer, s.createAPIToken))
	mux.HandleFunc("POST /settings/policy", page(admin, s.savePolicy))
	mux.HandleFunc("POST /settings/webhooks", page(admin, s.createWebhook))
	mux.HandleFunc("POST /settings/webhooks/{id}/enabled", page(admin, s.enableWebhook))
	mux.HandleFunc("POST /settings/webhooks/{id}/delete", page(admin, s.deleteWebhook))
	mux.HandleFunc("GET /audit", page(admin, s.audit))

	// The only unauthenticated routes besides health and login: public, secret-free files.
	mux.HandleFunc("GET /install.sh", s.installScript)
	mux.HandleFunc("GET /download/palisade-agent", s.agentBinary)
	mux.HandleFunc("GET /download/ca.crt", s.caCert)
}

// sameOrigin refuses state-changing requests a browser says come from another site: defence in
// depth beside the CSRF token, and the only guard the login form has (it has no session yet).
// Browsers send Sec-Fetch-Site; older ones are judged by Origin ("null", sent under some
// referrer policies, tells nothing and is left to the CSRF token).
func sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && crossSite(r) {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "cross-site", "same-site":
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return false
	}
	u, err := url.Parse(o)
	return err != nil || u.Host != r.Host
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	User   store.User
	CSRF   string
	Notice string
	Data   any
}

// Can reports whether the signed-in user has at least role: templates show actions with it.
func (v view) Can(role string) bool { return v.User.ID != "" && api.Allowed(v.User.Role, role) }

// notices are the fixed messages a redirect after an action may ask for (?done=...); free text
// is never taken from the URL.
var notices = map[string]string{
	"handled":     "Event marked handled.",
	"ignored":     "Event ignored.",
	"open":        "Event reopened.",
	"allowlisted": "Allowlist entry added to the policy; the event is closed as ignored.",
	"block":       "Block task started: the host's agent will block the address.",
	"quarantine":  "Quarantine task started: the host's agent will move the file away.",
	"task":        "Task started.",
	"accepted":    "Risk accepted: the vulnerability counts as accepted until the acceptance expires.",
	"withdrawn":   "Acceptance withdrawn: the vulnerability is open again.",
	"user":        "User created.",
	"policy":      "Policy saved and pushed to the agents.",
	"webhook":     "Webhook saved.",
	"deleted":     "Deleted.",
	"switched":    "Webhook switched.",
	"loggedout":   "You are signed out.",
	"expired":     "Your session expired. Sign in again.",
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.User, v.CSRF = api.Caller(r.Context())
	if v.Notice == "" {
		v.Notice = notices[r.URL.Query().Get("done")]
	}
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error; see the console log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// denied shows a refusal (wrong role, stale form) as a page.
func (s *Server) denied(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", view{Title: http.StatusText(status), Data: msg})
}

// fail shows an action's error: the API's own message and status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := s.api.Explain(err)
	s.render(w, r, p.Status, "error", view{Title: http.StatusText(p.Status), Data: p.Msg})
}

// done redirects after a successful action (POST, redirect, GET).
func done(w http.ResponseWriter, r *http.Request, path, what string) {
	http.Redirect(w, r, path+"?done="+url.QueryEscape(what), http.StatusSeeOther)
}

func (s *Server) onlineSince() time.Time { return s.store.Now().Add(-s.cfg.OfflineAfter) }

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < 0:
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	// json indents a raw JSON document (task parameters and results) for reading.
	"json": func(b []byte) string {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return string(b)
		}
		return out.String()
	},
}
