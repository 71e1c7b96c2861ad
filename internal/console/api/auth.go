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
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(se.CSRF)) != 1 {
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
		if roleRank[p.user.Role] < roleRank[role] {
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
