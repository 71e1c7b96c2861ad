package api

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// fakeAgents records what the API asks of the agent API.
type fakeAgents struct {
	mu           sync.Mutex
	disconnected []string
	notified     []string
	policyPushes int
}

func (a *fakeAgents) NotifyPolicy() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.policyPushes++
}

func (a *fakeAgents) Connected() []string { return []string{"h-1"} }

func (a *fakeAgents) Disconnect(hostID, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.disconnected = append(a.disconnected, hostID)
}

func (a *fakeAgents) NotifyTasks(hostIDs []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.notified = append(a.notified, hostIDs...)
}

const testPassword = "correct-horse-battery"

// testUser is one of the fixture's users, with an API token of its own.
type testUser struct {
	store.User
	tokenID, token string
}

var testUsers = map[string]testUser{
	store.RoleAdmin:   {User: store.User{ID: "u-admin", Name: "admin", Role: store.RoleAdmin}, tokenID: "at-admin", token: APITokenPrefix + "admin-0123456789"},
	store.RoleAnalyst: {User: store.User{ID: "u-analyst", Name: "alice", Role: store.RoleAnalyst}, tokenID: "at-analyst", token: APITokenPrefix + "analyst-0123456789"},
	store.RoleViewer:  {User: store.User{ID: "u-viewer", Name: "victor", Role: store.RoleViewer}, tokenID: "at-viewer", token: APITokenPrefix + "viewer-0123456789"},
}

// The fixture's admin browser session.
const (
	testSession = "session-0123456789"
	testCSRF    = "csrf-0123456789"
)

// passwordHash is testPassword hashed at bcrypt's minimum cost, to keep logins fast.
var passwordHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

// fixture is an API server over a real SQLite store with three users (one per role), hosts
// h-1 (group web, online), h-2 (group db) and h-revoked, one event on h-1 and one task.
type fixture struct {
	tb      testing.TB
	st      *store.Store
	srv     *Server
	mux     *http.ServeMux
	agents  *fakeAgents
	offset  atomic.Int64 // added to the store's clock
	eventID string
}

func newFixture(tb testing.TB, cfg Config) *fixture {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(tb.TempDir(), "console.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	fx := &fixture{tb: tb, st: st, agents: &fakeAgents{}}
	st.Now = func() time.Time { return time.Now().Add(time.Duration(fx.offset.Load())) }
	if cfg.TaskTypes == nil {
		cfg.TaskTypes = task.Types
	}
	if cfg.Vulns == nil {
		m, err := vulndb.Open(vulndb.Config{Dir: filepath.Join(tb.TempDir(), "vulndb")}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Vulns = m
	}
	fx.srv = New(cfg, st, fx.agents, slog.New(slog.NewTextHandler(io.Discard, nil)))
	fx.mux = http.NewServeMux()
	fx.srv.Register(fx.mux)
	fx.ensureUsers()

	now := st.Now()
	for _, h := range []struct{ id, group string }{{"h-1", "web"}, {"h-2", "db"}, {"h-revoked", "web"}} {
		secret := "pe_" + h.id
		if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-" + h.id, TokenHash: store.HashSecret(secret), Group: h.group,
			CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			tb.Fatal(err)
		}
		if _, err := st.EnrollHost(ctx, store.HashSecret(secret), store.Host{ID: h.id, Hostname: h.id + ".example", CertSerial: "1"}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.RevokeHost(ctx, "h-revoked"); err != nil {
		tb.Fatal(err)
	}
	sshd := finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u2", Location: "/var/lib/dpkg/status"}
	if err := st.ReplaceInventory(ctx, "h-1", 1, store.OSRelease{ID: "debian", VersionID: "12"}, []finding.Package{sshd}); err != nil {
		tb.Fatal(err)
	}
	hv := store.NewHostVuln("h-1", sshd)
	hv.Advisory, hv.Severity, hv.Fixed, hv.Emergency = "DSA-5724-1", "high", "1:9.2p1-2+deb12u3", "regreSSHion"
	if _, _, err := st.ReplaceHostVulns(ctx, "h-1", []store.HostVuln{hv}); err != nil {
		tb.Fatal(err)
	}
	if _, err := st.AcceptVuln(ctx, store.Acceptance{ID: "va-fixture", Advisory: "DSA-5724-1", Until: now.Add(time.Hour), CreatedBy: "admin"}); err != nil {
		tb.Fatal(err)
	}
	if err := st.TouchHost(ctx, "h-1", finding.AgentStatus{Time: now}); err != nil {
		tb.Fatal(err)
	}
	f := finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
		Severity: finding.SeverityHigh, Title: "SSH password guessing", Time: now, DedupKey: "192.0.2.7"}
	if _, err := st.IngestFindings(ctx, "h-1", []finding.Finding{f}, time.Hour); err != nil {
		tb.Fatal(err)
	}
	events, _, err := st.ListEvents(ctx, store.EventFilter{})
	if err != nil || len(events) != 1 {
		tb.Fatalf("events %v: %v", events, err)
	}
	fx.eventID = events[0].ID
	if err := st.CreateWebhook(ctx, store.Webhook{ID: "wh-fixture", Name: "fixture", URL: "https://hooks.example/x", Secret: "fixture-secret-0123",
		MinSeverity: finding.SeverityHigh, Enabled: true, CreatedBy: "admin", CreatedAt: now}); err != nil {
		tb.Fatal(err)
	}
	if err := st.CreateTask(ctx, store.Task{ID: "t-1", Type: "collect-facts", Params: json.RawMessage(`{}`), CreatedBy: "admin",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, []string{"h-1"}); err != nil {
		tb.Fatal(err)
	}
	return fx
}

// ensureUsers (re)creates the three users with their roles, API tokens and the admin session,
// so that a fuzz input deleting or demoting one does not change what later inputs see.
func (fx *fixture) ensureUsers() {
	ctx := context.Background()
	for _, u := range testUsers {
		if cur, err := fx.st.UserByID(ctx, u.ID); errors.Is(err, store.ErrNotFound) {
			nu := u.User
			nu.PasswordHash, nu.CreatedAt = passwordHash, fx.st.Now()
			if err := fx.st.CreateUser(ctx, nu); err != nil {
				fx.tb.Fatal(err)
			}
		} else if err != nil {
			fx.tb.Fatal(err)
		} else if cur.Role != u.Role || cur.PasswordHash != passwordHash {
			if err := fx.st.UpdateUser(ctx, u.ID, u.Role, passwordHash); err != nil {
				fx.tb.Fatal(err)
			}
		}
		if _, err := fx.st.APITokenByHash(ctx, HashSecret(u.token)); errors.Is(err, store.ErrNotFound) {
			fx.st.DeleteAPIToken(ctx, u.tokenID, "")
			if err := fx.st.CreateAPIToken(ctx, store.APIToken{ID: u.tokenID, Name: "fixture", TokenHash: HashSecret(u.token),
				UserID: u.ID, CreatedAt: fx.st.Now()}); err != nil {
				fx.tb.Fatal(err)
			}
		} else if err != nil {
			fx.tb.Fatal(err)
		}
	}
	if _, err := fx.st.SessionByHash(ctx, HashSecret(testSession)); errors.Is(err, store.ErrNotFound) {
		fx.st.DeleteSession(ctx, HashSecret(testSession))
		if err := fx.st.CreateSession(ctx, store.Session{TokenHash: HashSecret(testSession), UserID: "u-admin", CSRF: testCSRF,
			ExpiresAt: time.Now().Add(100 * 365 * 24 * time.Hour)}); err != nil {
			fx.tb.Fatal(err)
		}
	} else if err != nil {
		fx.tb.Fatal(err)
	}
}

// advance moves the store's clock forward.
func (fx *fixture) advance(d time.Duration) { fx.offset.Add(int64(d)) }

// request is one API call.
type request struct {
	method, path, body string
	auth               string // a role (its API token), "session", "session-no-csrf", or "" for none
	remote             string
	header             http.Header
}

func (fx *fixture) serve(req request) *httptest.ResponseRecorder {
	fx.tb.Helper()
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	if req.remote != "" {
		r.RemoteAddr = req.remote
	}
	setAuth(r, req.auth)
	for k, vs := range req.header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	fx.mux.ServeHTTP(w, r)
	return w
}

func setAuth(r *http.Request, auth string) {
	switch auth {
	case "":
	case "session":
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
		r.Header.Set(CSRFHeader, testCSRF)
	case "session-no-csrf":
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: testSession})
	default:
		if u, ok := testUsers[auth]; ok {
			r.Header.Set("Authorization", "Bearer "+u.token)
		} else {
			r.Header.Set("Authorization", auth)
		}
	}
}

// call serves req and checks the status, returning the decoded JSON body.
func (fx *fixture) call(req request, want int) map[string]any {
	fx.tb.Helper()
	w := fx.serve(req)
	if w.Code != want {
		fx.tb.Fatalf("%s %s as %q: HTTP %d, want %d: %s", req.method, req.path, req.auth, w.Code, want, w.Body)
	}
	if w.Code == http.StatusNoContent {
		return nil
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		fx.tb.Fatalf("%s %s: Content-Type %q", req.method, req.path, ct)
	}
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		fx.tb.Fatalf("%s %s: body %q: %v", req.method, req.path, w.Body, err)
	}
	return out
}

// routes are every route of the API, with a request that reaches its handler.
func (fx *fixture) routes() []request {
	ev := fx.eventID
	return []request{
		{method: "GET", path: "/healthz"},
		{method: "POST", path: "/api/v1/login", body: `{"user":"admin","password":"` + testPassword + `"}`},
		{method: "POST", path: "/api/v1/logout", body: ``, auth: "session"},
		{method: "GET", path: "/api/v1/me", auth: "viewer"},
		{method: "GET", path: "/api/v1/openapi.json", auth: "viewer"},
		{method: "GET", path: "/api/v1/hosts?search=h-&group=web&online=true&limit=10&offset=0", auth: "viewer"},
		{method: "GET", path: "/api/v1/hosts/h-1", auth: "viewer"},
		{method: "POST", path: "/api/v1/hosts/h-2/revoke", body: `{}`, auth: "admin"},
		{method: "GET", path: "/api/v1/events?host=h-1&category=bruteforce&severity=high&status=open&since=24h&until=2099-01-01T00:00:00Z&limit=5&offset=0", auth: "viewer"},
		{method: "GET", path: "/api/v1/events/" + ev, auth: "viewer"},
		{method: "POST", path: "/api/v1/events/" + ev + "/handle", body: `{"status":"handled","comment":"ok"}`, auth: "analyst"},
		{method: "GET", path: "/api/v1/tasks?limit=10&offset=0", auth: "viewer"},
		{method: "POST", path: "/api/v1/tasks", body: `{"type":"collect-facts","params":{},"hosts":["h-1"],"ttl":"1h"}`, auth: "analyst"},
		{method: "GET", path: "/api/v1/tasks/t-1", auth: "viewer"},
		{method: "GET", path: "/api/v1/policies", auth: "viewer"},
		{method: "GET", path: "/api/v1/policies/fleet", auth: "viewer"},
		{method: "PUT", path: "/api/v1/policies/group:web", body: `{"bruteforce":{"enabled":true,"failures_per_source":3},"login":{"enabled":true},"response":{"auto_block":false}}`, auth: "admin"},
		{method: "DELETE", path: "/api/v1/policies/group:web", auth: "admin"},
		{method: "POST", path: "/api/v1/login-allow", body: `{"entry":{"users":["deploy"],"sources":["192.0.2.0/24"]},"close_covered":true}`, auth: "analyst"},
		{method: "POST", path: "/api/v1/reputation/import?source=feed-a", body: "# sha256,verdict,family\n" + strings.Repeat("ab", 32) + ",malicious,Mirai\nnot-a-hash,clean\n", auth: "admin"},
		{method: "GET", path: "/api/v1/reputation/" + strings.Repeat("ab", 32), auth: "viewer"},
		{method: "GET", path: "/api/v1/blocks?host=h-1&limit=10", auth: "viewer"},
		{method: "POST", path: "/api/v1/blocks", body: `{"prefix":"203.0.113.7","ttl":"1h","reason":"scanner","hosts":["h-1"]}`, auth: "analyst"},
		{method: "POST", path: "/api/v1/blocks/remove", body: `{"prefix":"203.0.113.7","hosts":["h-1"]}`, auth: "analyst"},
		{method: "GET", path: "/api/v1/vulns?severity=high&fixable=true&emergency=true&limit=10", auth: "viewer"},
		{method: "GET", path: "/api/v1/vulns/emergency", auth: "viewer"},
		{method: "GET", path: "/api/v1/vulns/acceptances?expired=true", auth: "viewer"},
		{method: "GET", path: "/api/v1/vulns/DSA-5724-1?status=accepted", auth: "viewer"},
		{method: "POST", path: "/api/v1/vulns/accept", body: `{"advisory":"DSA-5724-1","host":"h-1","until":"720h","comment":"sshd firewalled"}`, auth: "analyst"},
		{method: "DELETE", path: "/api/v1/vulns/acceptances/va-fixture", auth: "analyst"},
		{method: "GET", path: "/api/v1/hosts/h-1/vulns?severity=low&limit=10", auth: "viewer"},
		{method: "GET", path: "/api/v1/hosts/h-1/packages?name=ssh&ecosystem=Debian", auth: "viewer"},
		{method: "GET", path: "/api/v1/vulndb", auth: "viewer"},
		{method: "POST", path: "/api/v1/vulndb/import?source=test", body: osvZip(fx.tb), auth: "admin"},
		{method: "GET", path: "/api/v1/enroll-tokens", auth: "admin"},
		{method: "POST", path: "/api/v1/enroll-tokens", body: `{"ttl":"1h","group":"web"}`, auth: "admin"},
		{method: "DELETE", path: "/api/v1/enroll-tokens/et-h-1", auth: "admin"},
		{method: "GET", path: "/api/v1/users", auth: "admin"},
		{method: "POST", path: "/api/v1/users", body: `{"name":"bob","role":"viewer","password":"` + testPassword + `"}`, auth: "admin"},
		{method: "PATCH", path: "/api/v1/users/u-viewer", body: `{"role":"analyst"}`, auth: "admin"},
		{method: "DELETE", path: "/api/v1/users/u-analyst", auth: "admin"},
		{method: "GET", path: "/api/v1/api-tokens", auth: "viewer"},
		{method: "POST", path: "/api/v1/api-tokens", body: `{"name":"script","ttl":"720h"}`, auth: "viewer"},
		{method: "DELETE", path: "/api/v1/api-tokens/at-viewer", auth: "viewer"},
		{method: "GET", path: "/api/v1/audit?actor=admin&action=login&limit=10&offset=0", auth: "admin"},
		{method: "GET", path: "/api/v1/webhooks", auth: "admin"},
		{method: "POST", path: "/api/v1/webhooks", body: `{"name":"soc","url":"https://hooks.example.com/p?token=abc","min_severity":"medium","categories":["malware"]}`, auth: "admin"},
		{method: "PATCH", path: "/api/v1/webhooks/wh-fixture", body: `{"enabled":false}`, auth: "admin"},
		{method: "DELETE", path: "/api/v1/webhooks/wh-fixture", auth: "admin"},
	}
}

// osvZip is a one-record OSV archive, as osv.dev lays out all.zip.
func osvZip(tb testing.TB) string {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("DSA-5724-1.json")
	w.Write([]byte(`{"id":"DSA-5724-1","modified":"2024-07-01T12:00:00Z","upstream":["CVE-2024-6387"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssh"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:9.2p1-2+deb12u3"}]}]}]}`))
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// isRoute reports whether the mux sends r to one of the API's handlers (rather than answering
// itself with a redirect, 404 or 405).
func isRoute(mux *http.ServeMux, r *http.Request) bool {
	_, pattern := mux.Handler(r)
	return strings.Contains(pattern, " /")
}

func TestEveryRouteAnswersJSON(t *testing.T) {
	fx := newFixture(t, Config{})
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	for _, req := range fx.routes() {
		r := httptest.NewRequest(req.method, req.path, nil)
		_, pattern := fx.mux.Handler(r)
		if !isRoute(fx.mux, r) {
			t.Errorf("%s %s reaches no handler", req.method, req.path)
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		if ops, ok := doc.Paths[path]; !ok || ops[strings.ToLower(method)] == nil {
			t.Errorf("route %q is not documented in openapi.json", pattern)
		}
		w := fx.serve(req)
		if w.Code >= 300 {
			t.Errorf("%s %s: HTTP %d: %s", req.method, req.path, w.Code, w.Body)
			continue
		}
		if w.Code == http.StatusNoContent {
			continue
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(w.Body.Bytes()) {
			t.Errorf("%s %s: Content-Type %q, body %.200q", req.method, req.path, ct, w.Body)
		}
	}
	if !slices.Contains(fx.agents.disconnected, "h-2") {
		t.Errorf("revoked host not disconnected: %v", fx.agents.disconnected)
	}
	if !slices.Contains(fx.agents.notified, "h-1") {
		t.Errorf("agents not told of the new task: %v", fx.agents.notified)
	}
}
