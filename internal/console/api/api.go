// Package api is the console's user API: JSON over HTTPS for the web UI, the palisade CLI and
// operators' scripts. Every route but /healthz and /api/v1/login needs a session or an API
// token, and a role: viewers read, analysts also handle events and run tasks, admins also manage
// users, tokens and hosts. Every operator action is written to the audit log.
package api

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
)

// Agents is what the API needs from the agent API: the live streams.
type Agents interface {
	Connected() []string
	Disconnect(hostID, reason string)
	NotifyTasks(hostIDs []string)
	NotifyPolicy()
}

// Config tunes the API.
type Config struct {
	SessionTTL time.Duration // default 12h
	// OfflineAfter marks a host offline when no heartbeat came for this long.
	OfflineAfter time.Duration
	// TaskTypes lists the task types agents know; others are refused at creation.
	TaskTypes []string
	// MaxTaskTTL bounds how long a task may wait for offline hosts.
	MaxTaskTTL time.Duration
	// Vulns is the vulnerability data; nil answers its routes with 503.
	Vulns *vulndb.Manager
}

// Server serves the user API.
type Server struct {
	cfg     Config
	store   *store.Store
	agents  Agents
	log     *slog.Logger
	limiter loginLimiter
}

// New returns the API over st.
func New(cfg Config, st *store.Store, agents Agents, log *slog.Logger) *Server {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.OfflineAfter <= 0 {
		cfg.OfflineAfter = 60 * time.Second
	}
	if cfg.MaxTaskTTL <= 0 {
		cfg.MaxTaskTTL = 30 * 24 * time.Hour
	}
	return &Server{cfg: cfg, store: st, agents: agents, log: log}
}

//go:embed openapi.json
var openAPI []byte

// Register adds the API's routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	const (
		viewer, analyst, admin = store.RoleViewer, store.RoleAnalyst, store.RoleAdmin
	)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.Ping(r.Context()); err != nil {
			writeError(w, http.StatusServiceUnavailable, "database unreachable")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /api/v1/login", s.login)
	mux.HandleFunc("POST /api/v1/logout", s.require(viewer, s.logout))
	mux.HandleFunc("GET /api/v1/me", s.require(viewer, s.me))
	mux.HandleFunc("POST /api/v1/me/password", s.require(viewer, s.changeOwnPassword))
	mux.HandleFunc("GET /api/v1/openapi.json", s.require(viewer, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	}))

	mux.HandleFunc("GET /api/v1/hosts", s.require(viewer, s.listHosts))
	mux.HandleFunc("GET /api/v1/hosts/{id}", s.require(viewer, s.getHost))
	mux.HandleFunc("POST /api/v1/hosts/{id}/revoke", s.require(admin, s.revokeHost))

	mux.HandleFunc("GET /api/v1/events", s.require(viewer, s.listEvents))
	mux.HandleFunc("GET /api/v1/events/{id}", s.require(viewer, s.getEvent))
	mux.HandleFunc("POST /api/v1/events/{id}/handle", s.require(analyst, s.handleEvent))
	mux.HandleFunc("POST /api/v1/events/{id}/allowlist", s.require(analyst, s.allowlistEvent))

	mux.HandleFunc("GET /api/v1/tasks", s.require(viewer, s.listTasks))
	mux.HandleFunc("POST /api/v1/tasks", s.require(analyst, s.createTask))
	mux.HandleFunc("GET /api/v1/tasks/{id}", s.require(viewer, s.getTask))

	mux.HandleFunc("GET /api/v1/enroll-tokens", s.require(admin, s.listEnrollTokens))
	mux.HandleFunc("POST /api/v1/enroll-tokens", s.require(admin, s.createEnrollToken))
	mux.HandleFunc("DELETE /api/v1/enroll-tokens/{id}", s.require(admin, s.deleteEnrollToken))

	mux.HandleFunc("GET /api/v1/users", s.require(admin, s.listUsers))
	mux.HandleFunc("POST /api/v1/users", s.require(admin, s.createUser))
	mux.HandleFunc("PATCH /api/v1/users/{id}", s.require(admin, s.updateUser))
	mux.HandleFunc("DELETE /api/v1/users/{id}", s.require(admin, s.deleteUser))

	mux.HandleFunc("GET /api/v1/api-tokens", s.require(viewer, s.listAPITokens))
	mux.HandleFunc("POST /api/v1/api-tokens", s.require(viewer, s.createAPIToken))
	mux.HandleFunc("DELETE /api/v1/api-tokens/{id}", s.require(viewer, s.deleteAPIToken))

	mux.HandleFunc("GET /api/v1/audit", s.require(admin, s.listAudit))

	mux.HandleFunc("GET /api/v1/policies", s.require(viewer, s.listPolicies))
	mux.HandleFunc("GET /api/v1/policies/{scope}", s.require(viewer, s.getPolicy))
	mux.HandleFunc("PUT /api/v1/policies/{scope}", s.require(admin, s.putPolicy))
	mux.HandleFunc("DELETE /api/v1/policies/{scope}", s.require(admin, s.deletePolicy))

	mux.HandleFunc("POST /api/v1/login-allow", s.require(analyst, s.addLoginAllow))

	mux.HandleFunc("POST /api/v1/reputation/import", s.require(admin, s.importReputation))
	mux.HandleFunc("GET /api/v1/reputation/{sha256}", s.require(viewer, s.lookupReputation))

	mux.HandleFunc("GET /api/v1/webhooks", s.require(admin, s.listWebhooks))
	mux.HandleFunc("POST /api/v1/webhooks", s.require(admin, s.createWebhook))
	mux.HandleFunc("PATCH /api/v1/webhooks/{id}", s.require(admin, s.patchWebhook))
	mux.HandleFunc("DELETE /api/v1/webhooks/{id}", s.require(admin, s.deleteWebhook))

	mux.HandleFunc("GET /api/v1/blocks", s.require(viewer, s.listBlocks))
	mux.HandleFunc("POST /api/v1/blocks", s.require(analyst, s.createBlock))
	mux.HandleFunc("POST /api/v1/blocks/remove", s.require(analyst, s.removeBlock))

	mux.HandleFunc("GET /api/v1/vulns", s.require(viewer, s.listVulns))
	mux.HandleFunc("GET /api/v1/vulns/emergency", s.require(viewer, s.emergencyVulns))
	mux.HandleFunc("GET /api/v1/vulns/acceptances", s.require(viewer, s.listAcceptances))
	mux.HandleFunc("GET /api/v1/vulns/{advisory}", s.require(viewer, s.getVuln))
	mux.HandleFunc("POST /api/v1/vulns/accept", s.require(analyst, s.acceptVuln))
	mux.HandleFunc("DELETE /api/v1/vulns/acceptances/{id}", s.require(analyst, s.deleteAcceptance))
	mux.HandleFunc("GET /api/v1/hosts/{id}/vulns", s.require(viewer, s.hostVulns))
	mux.HandleFunc("GET /api/v1/hosts/{id}/packages", s.require(viewer, s.hostPackages))
	mux.HandleFunc("GET /api/v1/vulndb", s.require(viewer, s.vulnDBStatus))
	mux.HandleFunc("POST /api/v1/vulndb/import", s.require(admin, s.importVulnDB))
}

// maxBody bounds request bodies; nothing the API takes is larger.
const maxBody = 1 << 20

// decode reads a JSON body strictly: unknown fields are errors that name the field.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

// Problem is an action refused or failed, with the HTTP status that answers it. API handlers
// write it as JSON; the web pages show its message.
type Problem struct {
	Status int
	Msg    string
}

func (p *Problem) Error() string { return p.Msg }

func problem(status int, format string, a ...any) *Problem {
	return &Problem{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// Explain maps any error of an action to a Problem: store errors to their status, unexpected
// ones to a logged 500 whose details stay in the console log.
func (s *Server) Explain(err error) *Problem {
	var p *Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, store.ErrNotFound):
		return problem(http.StatusNotFound, "%s", err.Error())
	case errors.Is(err, store.ErrExists):
		return problem(http.StatusConflict, "%s", err.Error())
	case store.IsInvalidInput(err):
		return problem(http.StatusBadRequest, "the request holds text the database cannot store (invalid UTF-8 or a NUL byte)")
	default:
		s.log.Error("store error", "err", err)
		return problem(http.StatusInternalServerError, "internal error; see the console log")
	}
}

// storeError answers err as JSON (see Explain).
func (s *Server) storeError(w http.ResponseWriter, err error) {
	p := s.Explain(err)
	writeError(w, p.Status, p.Msg)
}

func (s *Server) audit(r *http.Request, action, target, detail string) {
	p := principalFrom(r.Context())
	if err := s.store.Audit(r.Context(), store.AuditEntry{Actor: p.user.Name, Action: action, Target: target,
		Detail: detail, Remote: remoteIP(r)}); err != nil {
		s.log.Error("write audit log", "action", action, "err", err)
	}
}

// queryInt reads a non-negative integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("query parameter %s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

// paging reads limit (default 100) and offset, answering 400 itself when they are bad.
func paging(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	limit, err := queryInt(r, "limit", 100)
	if err == nil {
		offset, err = queryInt(r, "offset", 0)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return 0, 0, false
	}
	return limit, offset, true
}

// queryTime reads an RFC 3339 time or a duration back from now ("24h").
func queryTime(r *http.Request, name string, now time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("query parameter %s: want RFC 3339 time or a duration like 24h, got %q", name, v)
	}
	return t, nil
}

// Page wraps list responses.
type Page[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}
