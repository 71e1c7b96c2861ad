package api

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
	logindetect "github.com/palisade-cwpp/palisade/internal/detect/login"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// AllowlistRequest is the body of POST /api/v1/events/{id}/allowlist.
type AllowlistRequest struct {
	Comment string `json:"comment,omitempty"`
	// Policy is the policy scope to add the entry to: "fleet" (default) or "group:NAME".
	Policy string `json:"policy,omitempty"`
}

// allowlistEvent turns an event into an allowlist entry of its kind and closes the event as
// ignored: a malware event allowlists its file's SHA-256, a login event its user from its
// source, a brute-force event exempts its source from blocking.
func (s *Server) allowlistEvent(w http.ResponseWriter, r *http.Request) {
	var req AllowlistRequest
	if !decode(w, r, &req) {
		return
	}
	ev, err := s.AllowlistEvent(r, r.PathValue("id"), req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

// AllowlistEvent adds the allowlist entry an event calls for to a policy, closes the event as
// ignored and audits it.
func (s *Server) AllowlistEvent(r *http.Request, id string, req AllowlistRequest) (store.Event, error) {
	bad := func(msg string) (store.Event, error) { return store.Event{}, problem(http.StatusBadRequest, "%s", msg) }
	if req.Policy == "" {
		req.Policy = store.FleetScope
	}
	if !validScope(req.Policy) {
		return bad("policy: want fleet or group:NAME")
	}
	ev, err := s.store.EventByID(r.Context(), id)
	if err != nil {
		return store.Event{}, err
	}
	cur, err := s.policyView(r, req.Policy)
	if err != nil {
		return store.Event{}, err
	}
	p := cur.Policy
	var what string
	switch ev.Category {
	case finding.CategoryMalware:
		h := strings.ToLower(ev.Evidence.Hashes["sha256"])
		if h == "" {
			return bad("this malware event carries no SHA-256")
		}
		if !slices.Contains(p.Malware.AllowSHA256, h) {
			p.Malware.AllowSHA256 = append(p.Malware.AllowSHA256, h)
		}
		what = "sha256 " + h
	case finding.CategoryLogin:
		a := logindetect.Allow{Users: ev.Evidence.Users, Comment: req.Comment}
		if src, err := netip.ParseAddr(ev.Evidence.SourceIP); err == nil {
			a.Sources = []netip.Prefix{netip.PrefixFrom(src, src.BitLen())}
		}
		if len(a.Users) == 0 && len(a.Sources) == 0 {
			return bad("this login event names no user or source")
		}
		p.Login.Allow = append(p.Login.Allow, a)
		what = "login of " + strings.Join(a.Users, ",") + " from " + ev.Evidence.SourceIP
	case finding.CategoryBruteForce:
		if ev.Evidence.SourceIP == "" {
			return bad("this event names no source address")
		}
		if !slices.Contains(p.Response.Allow, ev.Evidence.SourceIP) {
			p.Response.Allow = append(p.Response.Allow, ev.Evidence.SourceIP)
		}
		what = "never block " + ev.Evidence.SourceIP
	case finding.CategoryBehavior:
		// The rule, for the program the event is about: the same program doing something else,
		// or another program doing the same, is still reported. (Allow globs have no escapes: a
		// path holding "*" or "?" also matches paths those stand for.)
		if len(ev.Evidence.Process) == 0 || ev.Evidence.Process[0].Exe == "" {
			return bad("this behaviour event names no executable")
		}
		exe := ev.Evidence.Process[0].Exe
		comment := req.Comment
		if comment == "" {
			comment = "allowlisted from event " + ev.ID
		}
		p.Behavior.Allow = append(p.Behavior.Allow, behavior.Allow{Rules: []string{ev.RuleID}, Exe: []string{exe}, Comment: comment})
		what = ev.RuleID + " for " + exe
	default:
		return bad("events of category " + string(ev.Category) + " cannot be allowlisted yet")
	}
	if err := p.Validate(); err != nil {
		return bad(err.Error())
	}
	if _, err := s.savePolicy(r, req.Policy, p); err != nil {
		return store.Event{}, err
	}
	comment := "allowlisted: " + what
	if req.Comment != "" {
		comment += " (" + req.Comment + ")"
	}
	actor := principalFrom(r.Context()).user.Name
	if err := s.store.HandleEvent(r.Context(), ev.ID, store.StatusIgnored, actor, comment); err != nil {
		return store.Event{}, err
	}
	s.audit(r, "event.allowlisted", ev.ID, comment)
	return s.store.EventByID(r.Context(), ev.ID)
}
