package api

import (
	"context"
	"net/http"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	logindetect "github.com/palisade-cwpp/palisade/internal/detect/login"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// LoginAllowRequest is the body of POST /api/v1/login-allow.
type LoginAllowRequest struct {
	// Entry is the allowlist entry; its scope (hosts, groups, or neither for the fleet) says
	// where it applies.
	Entry logindetect.Allow `json:"entry"`
	// Policy is the policy scope to add it to: "fleet" (default) or "group:NAME".
	Policy string `json:"policy,omitempty"`
	// CloseCovered marks the open abnormal-login events the entry covers as handled.
	CloseCovered bool `json:"close_covered,omitempty"`
}

// LoginAllowResponse says what changed.
type LoginAllowResponse struct {
	Policy PolicyView `json:"policy"`
	Closed []string   `json:"closed"` // IDs of events closed
}

// addLoginAllow appends an allowlist entry to a policy and, when asked, closes the past
// abnormal-login events it covers.
func (s *Server) addLoginAllow(w http.ResponseWriter, r *http.Request) {
	var req LoginAllowRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Policy == "" {
		req.Policy = store.FleetScope
	}
	if !validScope(req.Policy) {
		writeError(w, http.StatusBadRequest, "policy: want fleet or group:NAME")
		return
	}
	entry, err := req.Entry.Validate()
	if err != nil {
		writeError(w, http.StatusBadRequest, "entry: "+err.Error())
		return
	}
	cur, err := s.policyView(r, req.Policy)
	if err != nil {
		s.storeError(w, err)
		return
	}
	p := cur.Policy
	p.Login.Allow = append(p.Login.Allow, entry)
	if err := p.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	view, err := s.savePolicy(r, req.Policy, p)
	if err != nil {
		s.storeError(w, err)
		return
	}
	resp := LoginAllowResponse{Policy: view, Closed: []string{}}
	if req.CloseCovered {
		if resp.Closed, err = s.closeCovered(r, entry); err != nil {
			s.storeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// closeCovered marks open login events that entry covers as handled, and audits each.
func (s *Server) closeCovered(r *http.Request, entry logindetect.Allow) ([]string, error) {
	ctx := r.Context()
	groups := map[string]string{}
	cfg := logindetect.DefaultConfig()
	cfg.GroupOf = func(host string) string {
		if g, ok := groups[host]; ok {
			return g
		}
		h, err := s.store.HostByID(context.WithoutCancel(ctx), host, time.Time{})
		groups[host] = h.Group
		if err != nil {
			groups[host] = ""
		}
		return groups[host]
	}
	d, err := logindetect.NewDetector(cfg, nil)
	if err != nil {
		return nil, err
	}
	closed := []string{}
	comment := "covered by a login allowlist entry"
	if entry.Comment != "" {
		comment += ": " + entry.Comment
	}
	actor := principalFrom(ctx).user.Name
	// Closed events leave the open list, so the next page starts after the ones kept open.
	for offset := 0; ; {
		events, _, err := s.store.ListEvents(ctx, store.EventFilter{Category: string(finding.CategoryLogin), Status: store.StatusOpen, Limit: 500, Offset: offset})
		if err != nil {
			return closed, err
		}
		for _, e := range events {
			f := finding.Finding{RuleID: e.RuleID, Host: e.HostID, Time: e.LastSeen, Evidence: e.Evidence}
			if !d.Covered(entry, f) {
				offset++
				continue
			}
			if err := s.store.HandleEvent(ctx, e.ID, store.StatusHandled, actor, comment); err != nil {
				return closed, err
			}
			closed = append(closed, e.ID)
			s.audit(r, "event.handled", e.ID, comment)
		}
		if len(events) < 500 {
			break
		}
	}
	return closed, nil
}
