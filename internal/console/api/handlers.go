package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginResponse tells a browser its CSRF token.
type LoginResponse struct {
	User      string    `json:"user"`
	Role      string    `json:"role"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if !decode(w, r, &req) {
		return
	}
	resp, err := s.Login(w, r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Login checks a user's password (throttled per address, audited) and starts a browser
// session: the session cookie is set on w, the CSRF token returned.
func (s *Server) Login(w http.ResponseWriter, r *http.Request, req LoginRequest) (LoginResponse, error) {
	now, addr := s.store.Now(), remoteIP(r)
	if s.limiter.blocked(addr, now) {
		s.store.Audit(r.Context(), store.AuditEntry{Actor: req.User, Action: "login.throttled", Target: req.User, Remote: addr})
		return LoginResponse{}, problem(http.StatusTooManyRequests, "too many failed logins from this address; try again later")
	}
	u, err := s.store.UserByName(r.Context(), req.User)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return LoginResponse{}, err
	}
	if !checkPassword(u.PasswordHash, req.Password) || err != nil {
		s.limiter.fail(addr, now)
		s.store.Audit(r.Context(), store.AuditEntry{Actor: req.User, Action: "login.failed", Target: req.User, Remote: addr})
		return LoginResponse{}, problem(http.StatusUnauthorized, "wrong user name or password")
	}
	token, csrf := NewSecret(32), NewSecret(16)
	se := store.Session{TokenHash: HashSecret(token), UserID: u.ID, CSRF: csrf, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.store.CreateSession(r.Context(), se); err != nil {
		return LoginResponse{}, err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: se.ExpiresAt,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.store.Audit(r.Context(), store.AuditEntry{Actor: u.Name, Action: "login", Target: u.Name, Remote: addr})
	return LoginResponse{User: u.Name, Role: u.Role, CSRFToken: csrf, ExpiresAt: se.ExpiresAt}, nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.Logout(w, r); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "logged out"})
}

// Logout ends the caller's browser session and clears its cookie.
func (s *Server) Logout(w http.ResponseWriter, r *http.Request) error {
	p := principalFrom(r.Context())
	if p.session == nil {
		return problem(http.StatusBadRequest, "logout ends browser sessions; revoke an API token with DELETE /api/v1/api-tokens/{id}")
	}
	if err := s.store.DeleteSession(r.Context(), p.session.TokenHash); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.audit(r, "logout", p.user.Name, "")
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, principalFrom(r.Context()).user)
}

// PasswordRequest is the body of POST /api/v1/me/password.
type PasswordRequest struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// changeOwnPassword lets any user change their own password, proving the current one.
func (s *Server) changeOwnPassword(w http.ResponseWriter, r *http.Request) {
	var req PasswordRequest
	if !decode(w, r, &req) {
		return
	}
	u := principalFrom(r.Context()).user
	if !checkPassword(u.PasswordHash, req.Current) {
		s.audit(r, "user.password.failed", u.Name, "")
		writeError(w, http.StatusForbidden, "current password is wrong")
		return
	}
	hash, err := HashPassword(req.New)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.store.UpdateUser(r.Context(), u.ID, u.Role, hash); err != nil {
		s.storeError(w, err)
		return
	}
	s.audit(r, "user.password", u.Name, "own password changed")
	writeJSON(w, http.StatusOK, map[string]string{"status": "password changed"})
}

func (s *Server) onlineSince() time.Time { return s.store.Now().Add(-s.cfg.OfflineAfter) }

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.HostFilter{Search: q.Get("search"), Group: q.Get("group"), OnlineSince: s.onlineSince()}
	switch q.Get("online") {
	case "":
	case "true", "false":
		on := q.Get("online") == "true"
		f.Online = &on
	default:
		writeError(w, http.StatusBadRequest, "query parameter online: want true or false")
		return
	}
	var err error
	if f.Limit, err = queryInt(r, "limit", 100); err == nil {
		f.Offset, err = queryInt(r, "offset", 0)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	hosts, total, err := s.store.ListHosts(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.Host]{Items: nonNil(hosts), Total: total, Limit: f.Limit, Offset: f.Offset})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	h, err := s.store.HostByID(r.Context(), r.PathValue("id"), s.onlineSince())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) revokeHost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.store.RevokeHost(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	s.agents.Disconnect(id, "host revoked by an operator")
	s.audit(r, "host.revoke", id, "")
	writeJSON(w, http.StatusOK, map[string]string{"status": "revoked", "id": id})
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.EventFilter{HostID: q.Get("host"), Category: q.Get("category"), Status: q.Get("status")}
	if f.Category != "" && !finding.Category(f.Category).Valid() {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown category %q", f.Category))
		return
	}
	if f.Status != "" && !store.ValidStatus(f.Status) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown status %q (want open, handled or ignored)", f.Status))
		return
	}
	if v := q.Get("severity"); v != "" {
		sev, err := finding.ParseSeverity(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "query parameter severity: "+err.Error())
			return
		}
		f.MinSeverity = &sev
	}
	var err error
	now := s.store.Now()
	for _, step := range []func() error{
		func() (e error) { f.Since, e = queryTime(r, "since", now); return },
		func() (e error) { f.Until, e = queryTime(r, "until", now); return },
		func() (e error) { f.Limit, e = queryInt(r, "limit", 100); return },
		func() (e error) { f.Offset, e = queryInt(r, "offset", 0); return },
	} {
		if err = step(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	events, total, err := s.store.ListEvents(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.Event]{Items: nonNil(events), Total: total, Limit: f.Limit, Offset: f.Offset})
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.EventByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// HandleRequest is the body of POST /api/v1/events/{id}/handle.
type HandleRequest struct {
	Status  string `json:"status"` // handled, ignored, or open to reopen
	Comment string `json:"comment"`
}

func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	var req HandleRequest
	if !decode(w, r, &req) {
		return
	}
	e, err := s.HandleEvent(r, r.PathValue("id"), req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// HandleEvent sets an event's status (handled, ignored, open) for the caller and audits it.
func (s *Server) HandleEvent(r *http.Request, id string, req HandleRequest) (store.Event, error) {
	if !store.ValidStatus(req.Status) {
		return store.Event{}, problem(http.StatusBadRequest, "unknown status %q (want handled, ignored or open)", req.Status)
	}
	if len(req.Comment) > 4096 {
		return store.Event{}, problem(http.StatusBadRequest, "comment longer than 4096 bytes")
	}
	p := principalFrom(r.Context())
	if err := s.store.HandleEvent(r.Context(), id, req.Status, p.user.Name, req.Comment); err != nil {
		return store.Event{}, err
	}
	s.audit(r, "event."+req.Status, id, req.Comment)
	return s.store.EventByID(r.Context(), id)
}

// TaskRequest is the body of POST /api/v1/tasks.
type TaskRequest struct {
	Type   string          `json:"type"`
	Params json.RawMessage `json:"params,omitempty"`
	Hosts  []string        `json:"hosts,omitempty"`
	Group  string          `json:"group,omitempty"` // all hosts of a group, when Hosts is empty
	All    bool            `json:"all,omitempty"`   // every unrevoked host
	TTL    string          `json:"ttl,omitempty"`   // how long to wait for offline hosts; default 24h
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) {
	var req TaskRequest
	if !decode(w, r, &req) {
		return
	}
	t, err := s.StartTask(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// StartTask validates and stores a task, wakes its hosts' streams and audits it.
func (s *Server) StartTask(r *http.Request, req TaskRequest) (store.Task, error) {
	bad := func(format string, a ...any) (store.Task, error) {
		return store.Task{}, problem(http.StatusBadRequest, format, a...)
	}
	if !slices.Contains(s.cfg.TaskTypes, req.Type) {
		return bad("unknown task type %q (known: %s)", req.Type, strings.Join(s.cfg.TaskTypes, ", "))
	}
	if len(req.Params) == 0 {
		req.Params = json.RawMessage("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(req.Params, &obj); err != nil || obj == nil {
		return bad("params must be a JSON object")
	}
	if err := task.Validate(req.Type, req.Params); err != nil {
		return bad("%s", err.Error())
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > s.cfg.MaxTaskTTL {
			return bad("ttl: want a duration between 1s and %s", s.cfg.MaxTaskTTL)
		}
		ttl = d
	}
	hosts, err := s.taskTargets(r, req)
	if err != nil {
		return bad("%s", err.Error())
	}
	now := s.store.Now()
	p := principalFrom(r.Context())
	t := store.Task{ID: "t-" + NewSecret(10), Type: req.Type, Params: req.Params, CreatedBy: p.user.Name, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.store.CreateTask(r.Context(), t, hosts); err != nil {
		return store.Task{}, err
	}
	s.agents.NotifyTasks(hosts)
	s.audit(r, "task.create", t.ID, fmt.Sprintf("type=%s hosts=%d", t.Type, len(hosts)))
	return s.store.TaskByID(r.Context(), t.ID)
}

// taskTargets resolves a task request's hosts; each must exist and not be revoked.
func (s *Server) taskTargets(r *http.Request, req TaskRequest) ([]string, error) {
	if len(req.Hosts) > 0 {
		seen := map[string]bool{}
		var out []string
		for _, id := range req.Hosts {
			h, err := s.store.HostByID(r.Context(), id, time.Time{})
			if err != nil {
				return nil, fmt.Errorf("host %q not found", id)
			}
			if h.Revoked() {
				return nil, fmt.Errorf("host %q is revoked", id)
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
		return out, nil
	}
	if !req.All && req.Group == "" {
		return nil, fmt.Errorf("name the hosts, a group, or all")
	}
	var out []string
	for offset := 0; ; offset += 1000 {
		hosts, _, err := s.store.ListHosts(r.Context(), store.HostFilter{Group: req.Group, Limit: 1000, Offset: offset})
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			if !h.Revoked() {
				out = append(out, h.ID)
			}
		}
		if len(hosts) < 1000 {
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no hosts match")
	}
	return out, nil
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	tasks, err := s.store.ListTasks(r.Context(), limit, offset)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.Task]{Items: nonNil(tasks), Total: len(tasks), Limit: limit, Offset: offset})
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	t, err := s.store.TaskByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
