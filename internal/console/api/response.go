package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/policy"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// PolicyView is a scope's policy as the API shows it.
type PolicyView struct {
	store.StoredPolicy
	// Default is true when nothing is saved for the scope and the built-in policy applies.
	Default bool          `json:"default,omitempty"`
	Policy  policy.Policy `json:"policy"`
}

// validScope accepts "fleet" and "group:NAME".
func validScope(scope string) bool {
	if scope == store.FleetScope {
		return true
	}
	g, ok := strings.CutPrefix(scope, "group:")
	return ok && validName(g)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	ps, err := s.store.Policies(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]PolicyView, 0, len(ps))
	for _, p := range ps {
		v := PolicyView{StoredPolicy: p}
		if err := json.Unmarshal([]byte(p.Body), &v.Policy); err != nil {
			s.storeError(w, fmt.Errorf("stored policy %s: %w", p.Scope, err))
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, Page[PolicyView]{Items: out, Total: len(out), Limit: len(out)})
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	scope := r.PathValue("scope")
	if !validScope(scope) {
		writeError(w, http.StatusBadRequest, "scope: want fleet or group:NAME")
		return
	}
	v, err := s.policyView(r, scope)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// policyView returns a scope's saved policy; the fleet scope falls back to the default.
func (s *Server) policyView(r *http.Request, scope string) (PolicyView, error) {
	p, err := s.store.Policy(r.Context(), scope)
	if errors.Is(err, store.ErrNotFound) && scope == store.FleetScope {
		body, version := policy.Default().Encode()
		return PolicyView{StoredPolicy: store.StoredPolicy{Scope: scope, Version: version, Body: string(body)}, Default: true, Policy: policy.Default()}, nil
	}
	if err != nil {
		return PolicyView{}, err
	}
	v := PolicyView{StoredPolicy: p}
	return v, json.Unmarshal([]byte(p.Body), &v.Policy)
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := s.PutPolicy(r, r.PathValue("scope"), b)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// PutPolicy parses, validates and saves a policy document for scope ("fleet" or "group:NAME").
func (s *Server) PutPolicy(r *http.Request, scope string, doc []byte) (PolicyView, error) {
	if !validScope(scope) {
		return PolicyView{}, problem(http.StatusBadRequest, "scope: want fleet or group:NAME")
	}
	p, err := policy.Parse(doc)
	if err != nil {
		return PolicyView{}, problem(http.StatusBadRequest, "%s", err.Error())
	}
	return s.savePolicy(r, scope, p)
}

// PolicyView returns a scope's saved policy; the fleet scope falls back to the default.
func (s *Server) PolicyView(r *http.Request, scope string) (PolicyView, error) {
	if !validScope(scope) {
		return PolicyView{}, problem(http.StatusBadRequest, "scope: want fleet or group:NAME")
	}
	return s.policyView(r, scope)
}

// savePolicy stores a validated policy, pushes it to the agents and audits the change.
func (s *Server) savePolicy(r *http.Request, scope string, p policy.Policy) (PolicyView, error) {
	body, version := p.Encode()
	sp := store.StoredPolicy{Scope: scope, Body: string(body), Version: version, UpdatedBy: principalFrom(r.Context()).user.Name}
	if err := s.store.SetPolicy(r.Context(), sp); err != nil {
		return PolicyView{}, err
	}
	s.agents.NotifyPolicy()
	s.audit(r, "policy.set", scope, "version="+version)
	return s.policyView(r, scope)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	scope := r.PathValue("scope")
	if !validScope(scope) {
		writeError(w, http.StatusBadRequest, "scope: want fleet or group:NAME")
		return
	}
	if err := s.store.DeletePolicy(r.Context(), scope); err != nil {
		s.storeError(w, err)
		return
	}
	s.agents.NotifyPolicy()
	s.audit(r, "policy.delete", scope, "")
	w.WriteHeader(http.StatusNoContent)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

// BlockRequest is the body of POST /api/v1/blocks and POST /api/v1/blocks/remove.
type BlockRequest struct {
	Prefix string   `json:"prefix"`
	TTL    string   `json:"ttl,omitempty"` // empty: until unblocked
	Reason string   `json:"reason,omitempty"`
	Hosts  []string `json:"hosts,omitempty"`
	Group  string   `json:"group,omitempty"`
	All    bool     `json:"all,omitempty"`
}

func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.BlockFilter{HostID: q.Get("host"), Source: q.Get("source"), Limit: limit, Offset: offset}
	if v := q.Get("prefix"); v != "" {
		p, err := policy.ParsePrefix(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "prefix: "+err.Error())
			return
		}
		f.Prefix = p.String()
	}
	bs, total, err := s.store.ListBlocks(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.ActiveBlock]{Items: nonNil(bs), Total: total, Limit: limit, Offset: offset})
}

func (s *Server) createBlock(w http.ResponseWriter, r *http.Request) { s.blockTask(w, r, task.BlockIP) }
func (s *Server) removeBlock(w http.ResponseWriter, r *http.Request) {
	s.blockTask(w, r, task.UnblockIP)
}

func (s *Server) blockTask(w http.ResponseWriter, r *http.Request, typ string) {
	var req BlockRequest
	if !decode(w, r, &req) {
		return
	}
	t, err := s.BlockTask(r, typ, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// BlockTask turns a block request into a block-ip or unblock-ip task for the chosen hosts.
func (s *Server) BlockTask(r *http.Request, typ string, req BlockRequest) (store.Task, error) {
	params := map[string]string{"prefix": req.Prefix}
	if typ == task.BlockIP {
		if req.TTL != "" {
			params["ttl"] = req.TTL
		}
		if req.Reason != "" {
			params["reason"] = req.Reason
		}
	}
	b, _ := json.Marshal(params)
	return s.StartTask(r, TaskRequest{Type: typ, Params: b, Hosts: req.Hosts, Group: req.Group, All: req.All, TTL: "24h"})
}
