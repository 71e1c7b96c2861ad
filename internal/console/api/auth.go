package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// SessionCookie names the browser session cookie.
const SessionCookie = "palisade_session"

// CSRFHeader must echo the session's CSRF token on every state-changing browser request.
const CSRFHeader = "X-CSRF-Token"

// CSRFField carries the CSRF token in the web pages' HTML forms, where no header can be set.
const CSRFField = "csrf_token"

// APITokenPrefix starts every API token, so leaked tokens are easy to recognise and scan for.
const APITokenPrefix = "pal_"

var roleRank = map[string]int{store.RoleViewer: 1, store.RoleAnalyst: 2, store.RoleAdmin: 3}

// principal is the authenticated caller of a request.
type principal struct {
	user    store.User
	session *store.Session // nil for API tokens
}

type ctxKey struct{}

func principalFrom(ctx context.Context) principal {
	p, _ := ctx.Value(ctxKey{}).(principal)
	return p
}

// NewSecret returns n random bytes, hex-encoded.
func NewSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("api: read random: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// HashSecret is store.HashSecret, named here for callers of the API package.
var HashSecret = store.HashSecret

// HashPassword hashes a password with bcrypt.
func HashPassword(pw string) (string, error) {
	if len(pw) < 8 {
		return "", errors.New("password must be at least 8 characters")
	}
	if len(pw) > 72 {
		return "", errors.New("password must be at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	return string(h), err
}

// dummyHash makes a failed look-up cost as much as a wrong password, so timing does not reveal
// which user names exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("palisade-timing-equaliser"), bcrypt.DefaultCost)

func checkPassword(hash, pw string) bool {
	if hash == "" {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// authenticate resolves the caller from a bearer API token or a session cookie.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !strings.HasPrefix(tok, APITokenPrefix) {
			return principal{}, errors.New("malformed Authorization header (want: Bearer pal_...)")
		}
		t, err := s.store.APITokenByHash(ctx, HashSecret(tok))
		if err != nil {
			return principal{}, errors.New("invalid or expired API token")
		}
		u, err := s.store.UserByID(ctx, t.UserID)
		if err != nil {
			return principal{}, errors.New("API token's user no longer exists")
		}
		return principal{user: u}, nil
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return principal{}, errors.New("authentication required: log in or send an API token")
	}
	se, err := s.store.SessionByHash(ctx, HashSecret(c.Value))
	if err != nil {
		return principal{}, errors.New("session expired: log in again")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if subtle.ConstantTimeCompare([]byte(csrfToken(r)), []byte(se.CSRF)) != 1 {
			return principal{}, errCSRF
		}
	}
	u, err := s.store.UserByID(ctx, se.UserID)
	if err != nil {
		return principal{}, errors.New("session's user no longer exists")
	}
	return principal{user: u, session: &se}, nil
}

var errCSRF = errors.New("missing or wrong " + CSRFHeader + " header")

// csrfToken reads the CSRF token a browser sent: the header from scripts, or the hidden field of
// an HTML form. Only form bodies are parsed, so JSON bodies stay unread for their handler.
func csrfToken(r *http.Request) string {
	if t := r.Header.Get(CSRFHeader); t != "" {
		return t
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if strings.TrimSpace(ct) != "application/x-www-form-urlencoded" {
		return ""
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return ""
	}
	return r.PostForm.Get(CSRFField)
}

// Caller is the signed-in user of a request that passed Require or RequirePage, with the
// session's CSRF token for the forms a page renders (empty for API tokens).
func Caller(ctx context.Context) (u store.User, csrf string) {
	p := principalFrom(ctx)
	if p.session != nil {
		csrf = p.session.CSRF
	}
	return p.user, csrf
}

// Allowed reports whether role may do what needs at least role need.
func Allowed(role, need string) bool { return roleRank[role] >= roleRank[need] }

// RequirePage guards a web page with the API's authentication and roles. A browser without a
// valid session is sent to the sign-in page (with expired=1 when it had a session cookie); a
// wrong CSRF token or too low a role answers 403 through denied.
func (s *Server) RequirePage(role string, h http.HandlerFunc, denied func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if errors.Is(err, errCSRF) {
			denied(w, r, http.StatusForbidden, "The form was stale or forged (CSRF token mismatch). Reload the page and try again.")
			return
		}
		if err != nil {
			target := "/login"
			if _, cerr := r.Cookie(SessionCookie); cerr == nil {
				target += "?expired=1"
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if !Allowed(p.user.Role, role) {
			denied(w, r, http.StatusForbidden, "Your role ("+p.user.Role+") may not do this; it needs "+role+".")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	}
}

// require wraps h so that only callers with at least role reach it.
func (s *Server) require(role string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			code := http.StatusUnauthorized
			if errors.Is(err, errCSRF) {
				code = http.StatusForbidden
			}
			writeError(w, code, err.Error())
			return
		}
		if !Allowed(p.user.Role, role) {
			writeError(w, http.StatusForbidden, "role "+p.user.Role+" may not do this (needs "+role+")")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	}
}

// loginLimiter slows password guessing against the console itself: after maxFails failures
// from one address within the window, logins from it are refused until the window passes.
type loginLimiter struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

const (
	loginMaxFails = 10
	loginWindow   = 15 * time.Minute
)

func (l *loginLimiter) blocked(addr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(addr, now)) >= loginMaxFails
}

func (l *loginLimiter) fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 100_000 { // bound memory under a spray from many addresses
		clear(l.fails)
	}
	l.fails[addr] = append(l.recent(addr, now), now)
}

func (l *loginLimiter) recent(addr string, now time.Time) []time.Time {
	if l.fails == nil {
		l.fails = map[string][]time.Time{}
	}
	ts := l.fails[addr]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > loginWindow {
		i++
	}
	ts = ts[i:]
	l.fails[addr] = ts
	return ts
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RequireViewer guards a plain handler (such as /metrics) with the API's authentication.
func (s *Server) RequireViewer(h http.Handler) http.Handler {
	return s.require(store.RoleViewer, h.ServeHTTP)
}
