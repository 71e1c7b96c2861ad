package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// EnrollTokenRequest is the body of POST /api/v1/enroll-tokens.
type EnrollTokenRequest struct {
	TTL   string `json:"ttl"`   // default 24h, at most 30 days
	Group string `json:"group"` // default "default"
}

// EnrollTokenResponse carries the token itself, shown this once.
type EnrollTokenResponse struct {
	store.EnrollToken
	Token string `json:"token"`
}

// EnrollTokenTTLMax bounds enrollment token lifetimes.
const EnrollTokenTTLMax = 30 * 24 * time.Hour

func (s *Server) createEnrollToken(w http.ResponseWriter, r *http.Request) {
	var req EnrollTokenRequest
	if !decode(w, r, &req) {
		return
	}
	tok, err := s.CreateEnrollToken(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tok)
}

// CreateEnrollToken makes an enrollment token for the caller and audits it (not the secret).
func (s *Server) CreateEnrollToken(r *http.Request, req EnrollTokenRequest) (EnrollTokenResponse, error) {
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 || d > EnrollTokenTTLMax {
			return EnrollTokenResponse{}, problem(http.StatusBadRequest, "ttl: want a duration between 1s and %s", EnrollTokenTTLMax)
		}
		ttl = d
	}
	if req.Group == "" {
		req.Group = "default"
	}
	if !validName(req.Group) {
		return EnrollTokenResponse{}, problem(http.StatusBadRequest, "group: 1-64 letters, digits, '-', '_' or '.'")
	}
	tok, err := NewEnrollToken(r.Context(), s.store, req.Group, ttl, principalFrom(r.Context()).user.Name)
	if err != nil {
		return EnrollTokenResponse{}, err
	}
	s.audit(r, "enroll-token.create", tok.ID, fmt.Sprintf("group=%s ttl=%s", tok.Group, ttl))
	return tok, nil
}

// NewEnrollToken makes and stores an enrollment token; the console's local agent uses it too.
func NewEnrollToken(ctx context.Context, st *store.Store, group string, ttl time.Duration, actor string) (EnrollTokenResponse, error) {
	secret := "pe_" + NewSecret(24)
	now := st.Now()
	t := store.EnrollToken{ID: "et-" + NewSecret(6), TokenHash: HashSecret(secret), Group: group, CreatedBy: actor,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := st.CreateEnrollToken(ctx, t); err != nil {
		return EnrollTokenResponse{}, err
	}
	return EnrollTokenResponse{EnrollToken: t, Token: secret}, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Server) listEnrollTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.ListEnrollTokens(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.EnrollToken]{Items: nonNil(ts), Total: len(ts), Limit: len(ts)})
}

func (s *Server) deleteEnrollToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.store.DeleteEnrollToken(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	s.audit(r, "enroll-token.delete", id, "")
	w.WriteHeader(http.StatusNoContent)
}

// UserRequest is the body of POST /api/v1/users and PATCH /api/v1/users/{id}.
type UserRequest struct {
	Name     string `json:"name,omitempty"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := s.store.ListUsers(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.User]{Items: nonNil(us), Total: len(us), Limit: len(us)})
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if !decode(w, r, &req) {
		return
	}
	u, err := s.CreateUser(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, u)
}

// CreateUser adds a user with a role and password and audits it.
func (s *Server) CreateUser(r *http.Request, req UserRequest) (store.User, error) {
	if !validName(req.Name) {
		return store.User{}, problem(http.StatusBadRequest, "name: 1-64 letters, digits, '-', '_' or '.'")
	}
	if !store.ValidRole(req.Role) {
		return store.User{}, problem(http.StatusBadRequest, "role: want admin, analyst or viewer")
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		return store.User{}, problem(http.StatusBadRequest, "%s", err.Error())
	}
	u := store.User{ID: "u-" + NewSecret(8), Name: req.Name, Role: req.Role, PasswordHash: hash, CreatedAt: s.store.Now()}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		return store.User{}, err
	}
	s.audit(r, "user.create", u.Name, "role="+u.Role)
	return u, nil
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if !decode(w, r, &req) {
		return
	}
	u, err := s.store.UserByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	if req.Role == "" {
		req.Role = u.Role
	}
	if !store.ValidRole(req.Role) {
		writeError(w, http.StatusBadRequest, "role: want admin, analyst or viewer")
		return
	}
	var hash string
	if req.Password != "" {
		if hash, err = HashPassword(req.Password); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := s.store.UpdateUser(r.Context(), u.ID, req.Role, hash); err != nil {
		s.storeError(w, err)
		return
	}
	s.audit(r, "user.update", u.Name, fmt.Sprintf("role=%s password_changed=%t", req.Role, hash != ""))
	u.Role = req.Role
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if principalFrom(r.Context()).user.ID == id {
		writeError(w, http.StatusBadRequest, "you cannot delete yourself")
		return
	}
	u, err := s.store.UserByID(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if err := s.store.DeleteUser(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	s.audit(r, "user.delete", u.Name, "")
	w.WriteHeader(http.StatusNoContent)
}

// APITokenRequest is the body of POST /api/v1/api-tokens.
type APITokenRequest struct {
	Name string `json:"name"`
	TTL  string `json:"ttl,omitempty"` // empty: no expiry
}

// APITokenResponse carries the token itself, shown this once.
type APITokenResponse struct {
	store.APIToken
	Token string `json:"token"`
}

func (s *Server) createAPIToken(w http.ResponseWriter, r *http.Request) {
	var req APITokenRequest
	if !decode(w, r, &req) {
		return
	}
	t, err := s.CreateAPIToken(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// CreateAPIToken makes an API token for the caller; the secret is returned this once.
func (s *Server) CreateAPIToken(r *http.Request, req APITokenRequest) (APITokenResponse, error) {
	if !validName(req.Name) {
		return APITokenResponse{}, problem(http.StatusBadRequest, "name: 1-64 letters, digits, '-', '_' or '.'")
	}
	now := s.store.Now()
	var exp time.Time
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return APITokenResponse{}, problem(http.StatusBadRequest, "ttl: want a positive duration such as 720h")
		}
		exp = now.Add(d)
	}
	p := principalFrom(r.Context())
	secret := APITokenPrefix + NewSecret(24)
	t := store.APIToken{ID: "at-" + NewSecret(6), Name: req.Name, TokenHash: HashSecret(secret), UserID: p.user.ID, CreatedAt: now, ExpiresAt: exp}
	if err := s.store.CreateAPIToken(r.Context(), t); err != nil {
		return APITokenResponse{}, err
	}
	s.audit(r, "api-token.create", t.ID, "name="+t.Name)
	return APITokenResponse{APIToken: t, Token: secret}, nil
}

// APITokens lists the tokens the caller may see: their own, or everyone's for admins.
func (s *Server) APITokens(r *http.Request) ([]store.APIToken, error) {
	return s.store.ListAPITokens(r.Context(), ownerScope(principalFrom(r.Context())))
}

// ownerScope is the user whose tokens a caller may see: their own, or everyone's for admins.
func ownerScope(p principal) string {
	if p.user.Role == store.RoleAdmin {
		return ""
	}
	return p.user.ID
}

func (s *Server) listAPITokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.store.ListAPITokens(r.Context(), ownerScope(principalFrom(r.Context())))
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.APIToken]{Items: nonNil(ts), Total: len(ts), Limit: len(ts)})
}

func (s *Server) deleteAPIToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.store.DeleteAPIToken(r.Context(), id, ownerScope(principalFrom(r.Context()))); err != nil {
		s.storeError(w, err)
		return
	}
	s.audit(r, "api-token.delete", id, "")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	es, err := s.store.ListAudit(r.Context(), q.Get("actor"), q.Get("action"), limit, offset)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.AuditEntry]{Items: nonNil(es), Total: len(es), Limit: limit, Offset: offset})
}
