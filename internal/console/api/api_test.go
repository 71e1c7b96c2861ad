package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

func loginBody(user, pw string) string {
	b, _ := json.Marshal(LoginRequest{User: user, Password: pw})
	return string(b)
}

func TestLoginLimiter(t *testing.T) {
	fx := newFixture(t, Config{})
	const attacker, other = "192.0.2.1:4000", "198.51.100.9:5000"
	for i := range loginMaxFails {
		fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", "wrong-password-"+string(rune('a'+i))), remote: attacker}, http.StatusUnauthorized)
	}
	// The address is blocked, even with the right password, and even from another port.
	fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: attacker}, http.StatusTooManyRequests)
	fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: "192.0.2.1:4001"}, http.StatusTooManyRequests)
	// Another address still logs in.
	out := fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: other}, http.StatusOK)
	if out["user"] != "admin" || out["role"] != "admin" || out["csrf_token"] == "" {
		t.Fatalf("login answer %v", out)
	}
	// Unknown users count as failures too.
	for range loginMaxFails {
		fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("nobody", testPassword), remote: "203.0.113.5:1"}, http.StatusUnauthorized)
	}
	fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: "203.0.113.5:1"}, http.StatusTooManyRequests)
	// Once the window passed, the address may try again.
	fx.advance(loginWindow + time.Minute)
	fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: attacker}, http.StatusOK)
}

func TestLoginLimiterBoundsMemory(t *testing.T) {
	var l loginLimiter
	now := time.Now()
	for i := range 100_002 {
		l.fail(string(rune(i))+"x", now)
	}
	if len(l.fails) > 100_001 {
		t.Fatalf("limiter holds %d addresses", len(l.fails))
	}
	if l.blocked("fresh", now) {
		t.Fatal("an address without failures is blocked")
	}
}

func TestLoginBadRequests(t *testing.T) {
	fx := newFixture(t, Config{})
	for _, body := range []string{``, `{`, `[]`, `{"user":"admin","password":"x","extra":1}`, `{"user":1}`} {
		fx.call(request{method: "POST", path: "/api/v1/login", body: body, remote: "192.0.2.50:1"}, http.StatusBadRequest)
	}
	fx.call(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", strings.Repeat("x", 100)), remote: "192.0.2.51:1"}, http.StatusUnauthorized)
}

// login logs in as admin and returns the session cookie and CSRF token.
func login(t *testing.T, fx *fixture, remote string) (*http.Cookie, string) {
	t.Helper()
	w := fx.serve(request{method: "POST", path: "/api/v1/login", body: loginBody("admin", testPassword), remote: remote})
	if w.Code != http.StatusOK {
		t.Fatalf("login: HTTP %d: %s", w.Code, w.Body)
	}
	var lr LoginResponse
	if err := json.Unmarshal(w.Body.Bytes(), &lr); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == SessionCookie {
			if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie flags: %+v", c)
			}
			return c, lr.CSRFToken
		}
	}
	t.Fatal("no session cookie")
	return nil, ""
}

func withCookie(c *http.Cookie, csrf string) http.Header {
	h := http.Header{"Cookie": {c.Name + "=" + c.Value}}
	if csrf != "" {
		h.Set(CSRFHeader, csrf)
	}
	return h
}

func TestSession(t *testing.T) {
	fx := newFixture(t, Config{SessionTTL: time.Hour})
	c, csrf := login(t, fx, "192.0.2.1:1")
	me := fx.call(request{method: "GET", path: "/api/v1/me", header: withCookie(c, "")}, http.StatusOK)
	if me["name"] != "admin" || me["password_hash"] != nil {
		t.Fatalf("me: %v", me)
	}
	// State-changing requests need the CSRF token.
	fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: `{}`, header: withCookie(c, "")}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: `{}`, header: withCookie(c, "wrong")}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: `{}`, header: withCookie(c, csrf)}, http.StatusCreated)
	// A bogus cookie is no session.
	fx.call(request{method: "GET", path: "/api/v1/me", header: http.Header{"Cookie": {SessionCookie + "=bogus"}}}, http.StatusUnauthorized)

	// Expiry.
	fx.advance(59 * time.Minute)
	fx.call(request{method: "GET", path: "/api/v1/me", header: withCookie(c, "")}, http.StatusOK)
	fx.advance(2 * time.Minute)
	out := fx.call(request{method: "GET", path: "/api/v1/me", header: withCookie(c, "")}, http.StatusUnauthorized)
	if !strings.Contains(out["error"].(string), "session expired") {
		t.Errorf("expired session: %v", out)
	}

	// Logout ends the session.
	c, csrf = login(t, fx, "192.0.2.1:1")
	fx.call(request{method: "POST", path: "/api/v1/logout", header: withCookie(c, "")}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/logout", header: withCookie(c, csrf)}, http.StatusOK)
	fx.call(request{method: "GET", path: "/api/v1/me", header: withCookie(c, "")}, http.StatusUnauthorized)
}

func TestAuthorizationHeader(t *testing.T) {
	fx := newFixture(t, Config{})
	for _, h := range []string{"Bearer", "Bearer ", "Basic YWRtaW46eA==", "bearer " + testUsers["admin"].token, "Bearer pal_wrong", "Bearer " + strings.TrimPrefix(testUsers["admin"].token, APITokenPrefix)} {
		fx.call(request{method: "GET", path: "/api/v1/me", auth: h}, http.StatusUnauthorized)
	}
	fx.call(request{method: "GET", path: "/api/v1/me"}, http.StatusUnauthorized)
	// Logout is for sessions: an API token is revoked by deleting it.
	fx.call(request{method: "POST", path: "/api/v1/logout", auth: "admin"}, http.StatusBadRequest)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "admin"}, http.StatusOK)
	// An API token needs no CSRF token.
	fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: `{}`, auth: "admin"}, http.StatusCreated)
}

func TestRoles(t *testing.T) {
	fx := newFixture(t, Config{})
	fx.call(request{method: "GET", path: "/api/v1/users", auth: "analyst"}, http.StatusForbidden)
	fx.call(request{method: "GET", path: "/api/v1/audit", auth: "viewer"}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/hosts/h-1/revoke", auth: "analyst"}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/events/" + fx.eventID + "/handle", body: `{"status":"handled"}`, auth: "viewer"}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/tasks", body: `{"type":"collect-facts","all":true}`, auth: "viewer"}, http.StatusForbidden)
	ev := fx.call(request{method: "POST", path: "/api/v1/events/" + fx.eventID + "/handle", body: `{"status":"ignored","comment":"lab"}`, auth: "analyst"}, http.StatusOK)
	if ev["status"] != "ignored" || ev["handled_by"] != "alice" || ev["comment"] != "lab" {
		t.Fatalf("handled event: %v", ev)
	}
	fx.call(request{method: "POST", path: "/api/v1/events/" + fx.eventID + "/handle", body: `{"status":"closed"}`, auth: "analyst"}, http.StatusBadRequest)
	fx.call(request{method: "POST", path: "/api/v1/events/" + fx.eventID + "/handle", body: `{"status":"open","comment":"` + strings.Repeat("c", 4097) + `"}`, auth: "analyst"}, http.StatusBadRequest)
	fx.call(request{method: "POST", path: "/api/v1/events/nonexistent/handle", body: `{"status":"open"}`, auth: "analyst"}, http.StatusNotFound)
	// Admins cannot delete themselves.
	fx.call(request{method: "DELETE", path: "/api/v1/users/u-admin", auth: "admin"}, http.StatusBadRequest)
}

func TestAPITokenExpiry(t *testing.T) {
	fx := newFixture(t, Config{})
	for _, body := range []string{`{"name":"x","ttl":"0s"}`, `{"name":"x","ttl":"-1h"}`, `{"name":"x","ttl":"soon"}`, `{"name":"","ttl":"1h"}`, `{"name":"a b"}`} {
		fx.call(request{method: "POST", path: "/api/v1/api-tokens", body: body, auth: "viewer"}, http.StatusBadRequest)
	}
	out := fx.call(request{method: "POST", path: "/api/v1/api-tokens", body: `{"name":"short","ttl":"1h"}`, auth: "viewer"}, http.StatusCreated)
	tok, _ := out["token"].(string)
	if !strings.HasPrefix(tok, APITokenPrefix) || out["expires_at"] == nil || out["user_id"] != "u-viewer" {
		t.Fatalf("token answer %v", out)
	}
	never := fx.call(request{method: "POST", path: "/api/v1/api-tokens", body: `{"name":"forever"}`, auth: "viewer"}, http.StatusCreated)
	if never["expires_at"] != nil {
		t.Errorf("token without ttl expires: %v", never)
	}
	me := fx.call(request{method: "GET", path: "/api/v1/me", auth: "Bearer " + tok}, http.StatusOK)
	if me["name"] != "victor" {
		t.Fatalf("token acts as %v", me["name"])
	}
	fx.advance(61 * time.Minute)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "Bearer " + tok}, http.StatusUnauthorized)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "Bearer " + never["token"].(string)}, http.StatusOK)
}

func TestDeleteAPITokens(t *testing.T) {
	fx := newFixture(t, Config{})
	mine := fx.call(request{method: "POST", path: "/api/v1/api-tokens", body: `{"name":"mine"}`, auth: "viewer"}, http.StatusCreated)
	// A viewer sees only their own tokens.
	list := fx.call(request{method: "GET", path: "/api/v1/api-tokens", auth: "viewer"}, http.StatusOK)
	for _, it := range list["items"].([]any) {
		if it.(map[string]any)["user_id"] != "u-viewer" {
			t.Errorf("viewer sees %v", it)
		}
	}
	if n := len(list["items"].([]any)); n != 2 {
		t.Errorf("viewer sees %d tokens, want 2", n)
	}
	all := fx.call(request{method: "GET", path: "/api/v1/api-tokens", auth: "admin"}, http.StatusOK)
	if n := len(all["items"].([]any)); n != 4 {
		t.Errorf("admin sees %d tokens, want 4", n)
	}
	// Another user's token is not found for a non-admin: not deleted, and still working.
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/at-admin", auth: "viewer"}, http.StatusNotFound)
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/at-analyst", auth: "viewer"}, http.StatusNotFound)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "admin"}, http.StatusOK)
	// Own tokens can be deleted.
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/" + mine["id"].(string), auth: "viewer"}, http.StatusNoContent)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "Bearer " + mine["token"].(string)}, http.StatusUnauthorized)
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/" + mine["id"].(string), auth: "viewer"}, http.StatusNotFound)
	// An admin may delete anyone's.
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/at-analyst", auth: "admin"}, http.StatusNoContent)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "analyst"}, http.StatusUnauthorized)
	// A user's own token may delete itself.
	fx.call(request{method: "DELETE", path: "/api/v1/api-tokens/at-viewer", auth: "viewer"}, http.StatusNoContent)
	fx.call(request{method: "GET", path: "/api/v1/me", auth: "viewer"}, http.StatusUnauthorized)
}

func TestCreateTaskValidation(t *testing.T) {
	fx := newFixture(t, Config{MaxTaskTTL: 48 * time.Hour})
	tests := []struct {
		name, body, want string
	}{
		{"unknown type", `{"type":"rm-rf","hosts":["h-1"]}`, "unknown task type"},
		{"no type", `{"hosts":["h-1"]}`, "unknown task type"},
		{"params array", `{"type":"collect-facts","params":[1],"hosts":["h-1"]}`, "params must be a JSON object"},
		{"params string", `{"type":"collect-facts","params":"x","hosts":["h-1"]}`, "params must be a JSON object"},
		{"params null", `{"type":"collect-facts","params":null,"hosts":["h-1"]}`, "params must be a JSON object"},
		{"params number", `{"type":"collect-facts","params":1,"hosts":["h-1"]}`, "params must be a JSON object"},
		{"ttl too long", `{"type":"collect-facts","hosts":["h-1"],"ttl":"49h"}`, "ttl"},
		{"ttl zero", `{"type":"collect-facts","hosts":["h-1"],"ttl":"0s"}`, "ttl"},
		{"ttl negative", `{"type":"collect-facts","hosts":["h-1"],"ttl":"-1h"}`, "ttl"},
		{"ttl junk", `{"type":"collect-facts","hosts":["h-1"],"ttl":"a while"}`, "ttl"},
		{"no targets", `{"type":"collect-facts"}`, "name the hosts"},
		{"revoked host", `{"type":"collect-facts","hosts":["h-1","h-revoked"]}`, "revoked"},
		{"unknown host", `{"type":"collect-facts","hosts":["h-nope"]}`, "not found"},
		{"empty group", `{"type":"collect-facts","group":"nobody-here"}`, "no hosts match"},
		{"unknown field", `{"type":"collect-facts","all":true,"force":true}`, "unknown field"},
		{"not JSON", `type=collect-facts`, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := fx.call(request{method: "POST", path: "/api/v1/tasks", body: tt.body, auth: "analyst"}, http.StatusBadRequest)
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}

	task := fx.call(request{method: "POST", path: "/api/v1/tasks", body: `{"type":"collect-facts","hosts":["h-1","h-2","h-1"],"ttl":"48h"}`, auth: "analyst"}, http.StatusCreated)
	if hosts := task["hosts"].([]any); len(hosts) != 2 {
		t.Errorf("task hosts %v, want h-1 and h-2 once each", hosts)
	}
	if task["created_by"] != "alice" || string(mustMarshal(t, task["params"])) != "{}" {
		t.Errorf("task %v", task)
	}
	// A group or all hosts skip revoked hosts.
	all := fx.call(request{method: "POST", path: "/api/v1/tasks", body: `{"type":"collect-facts","all":true,"params":{}}`, auth: "analyst"}, http.StatusCreated)
	if hosts := all["hosts"].([]any); len(hosts) != 2 {
		t.Errorf("task for all hosts went to %v", hosts)
	}
	web := fx.call(request{method: "POST", path: "/api/v1/tasks", body: `{"type":"collect-facts","group":"web"}`, auth: "analyst"}, http.StatusCreated)
	if hosts := web["hosts"].([]any); len(hosts) != 1 || hosts[0].(map[string]any)["host_id"] != "h-1" {
		t.Errorf("task for group web went to %v", hosts)
	}
	got := fx.call(request{method: "GET", path: "/api/v1/tasks/" + task["id"].(string), auth: "viewer"}, http.StatusOK)
	if got["id"] != task["id"] {
		t.Errorf("task %v", got)
	}
	fx.call(request{method: "GET", path: "/api/v1/tasks/t-nope", auth: "viewer"}, http.StatusNotFound)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestListEventsFilters(t *testing.T) {
	fx := newFixture(t, Config{})
	bad := []string{
		"severity=bogus", "severity=", "category=ransomware", "category=BruteForce", "status=closed",
		"limit=-1", "limit=ten", "limit=1.5", "offset=-3", "offset=x", "since=yesterday", "until=2025-13-01T00:00:00Z",
		"since=24h&until=later",
	}
	for _, q := range bad {
		w := fx.serve(request{method: "GET", path: "/api/v1/events?" + q, auth: "viewer"})
		if q == "severity=" { // an empty value is no filter
			if w.Code != http.StatusOK {
				t.Errorf("%s: HTTP %d", q, w.Code)
			}
			continue
		}
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400: %s", q, w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: not a JSON error: %s", q, w.Body)
		}
	}
	count := func(q string) int {
		t.Helper()
		out := fx.call(request{method: "GET", path: "/api/v1/events?" + q, auth: "viewer"}, http.StatusOK)
		return len(out["items"].([]any))
	}
	for q, want := range map[string]int{
		"": 1, "severity=HIGH": 1, "severity=critical": 0, "severity=info": 1, "category=bruteforce": 1, "category=malware": 0,
		"status=open": 1, "status=handled": 0, "host=h-1": 1, "host=h-2": 0, "since=1h": 1, "until=1h": 0,
		"since=2000-01-01T00:00:00Z": 1, "limit=0": 1, "offset=1": 0, "limit=100000": 1,
	} {
		if got := count(q); got != want {
			t.Errorf("events?%s: %d items, want %d", q, got, want)
		}
	}
	for _, q := range []string{"online=maybe", "limit=x", "offset=-1"} {
		fx.call(request{method: "GET", path: "/api/v1/hosts?" + q, auth: "viewer"}, http.StatusBadRequest)
	}
	for _, p := range []string{"/api/v1/tasks?limit=x", "/api/v1/tasks?offset=-1", "/api/v1/audit?limit=-5"} {
		fx.call(request{method: "GET", path: p, auth: "admin"}, http.StatusBadRequest)
	}
}

func TestHostsAndRevoke(t *testing.T) {
	fx := newFixture(t, Config{})
	out := fx.call(request{method: "GET", path: "/api/v1/hosts", auth: "viewer"}, http.StatusOK)
	if out["total"].(float64) != 3 {
		t.Fatalf("hosts %v", out)
	}
	online := fx.call(request{method: "GET", path: "/api/v1/hosts?online=true", auth: "viewer"}, http.StatusOK)
	if items := online["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != "h-1" {
		t.Errorf("online hosts %v", items)
	}
	fx.call(request{method: "GET", path: "/api/v1/hosts/h-nope", auth: "viewer"}, http.StatusNotFound)
	fx.call(request{method: "POST", path: "/api/v1/hosts/h-1/revoke", auth: "admin"}, http.StatusOK)
	fx.call(request{method: "POST", path: "/api/v1/hosts/h-1/revoke", auth: "admin"}, http.StatusNotFound)
	fx.call(request{method: "POST", path: "/api/v1/hosts/h-nope/revoke", auth: "admin"}, http.StatusNotFound)
	if len(fx.agents.disconnected) != 1 || fx.agents.disconnected[0] != "h-1" {
		t.Errorf("disconnected %v", fx.agents.disconnected)
	}
	h := fx.call(request{method: "GET", path: "/api/v1/hosts/h-1", auth: "viewer"}, http.StatusOK)
	if h["revoked_at"] == nil || h["online"] != false {
		t.Errorf("revoked host %v", h)
	}
}

func TestUsersAndEnrollTokens(t *testing.T) {
	fx := newFixture(t, Config{})
	for _, body := range []string{`{"name":"bo b","role":"viewer","password":"` + testPassword + `"}`, `{"name":"bob","role":"root","password":"` + testPassword + `"}`,
		`{"name":"bob","role":"viewer","password":"short"}`, `{"name":"bob","role":"viewer","password":"` + strings.Repeat("p", 73) + `"}`} {
		fx.call(request{method: "POST", path: "/api/v1/users", body: body, auth: "admin"}, http.StatusBadRequest)
	}
	fx.call(request{method: "POST", path: "/api/v1/users", body: `{"name":"alice","role":"viewer","password":"` + testPassword + `"}`, auth: "admin"}, http.StatusConflict)
	fx.call(request{method: "PATCH", path: "/api/v1/users/u-nope", body: `{"role":"viewer"}`, auth: "admin"}, http.StatusNotFound)
	fx.call(request{method: "PATCH", path: "/api/v1/users/u-viewer", body: `{"role":"god"}`, auth: "admin"}, http.StatusBadRequest)
	fx.call(request{method: "DELETE", path: "/api/v1/users/u-nope", auth: "admin"}, http.StatusNotFound)
	for _, body := range []string{`{"ttl":"0s"}`, `{"ttl":"721h"}`, `{"group":"a b"}`, `{"group":"` + strings.Repeat("g", 65) + `"}`} {
		fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: body, auth: "admin"}, http.StatusBadRequest)
	}
	tok := fx.call(request{method: "POST", path: "/api/v1/enroll-tokens", body: `{}`, auth: "admin"}, http.StatusCreated)
	if !strings.HasPrefix(tok["token"].(string), "pe_") || tok["group"] != "default" {
		t.Errorf("enrollment token %v", tok)
	}
	fx.call(request{method: "DELETE", path: "/api/v1/enroll-tokens/" + tok["id"].(string), auth: "admin"}, http.StatusNoContent)
	fx.call(request{method: "DELETE", path: "/api/v1/enroll-tokens/" + tok["id"].(string), auth: "admin"}, http.StatusNotFound)
}

// FuzzAPIInput sends arbitrary requests, as any kind of caller, to the API's handlers over a real
// store. Nothing may crash the server or answer 500, and every answer from an API handler is
// JSON (or an empty 204).
func FuzzAPIInput(f *testing.F) {
	fx := newFixture(f, Config{MaxTaskTTL: 48 * time.Hour})
	methods := []string{"GET", "POST", "PATCH", "DELETE", "HEAD", "PUT", "OPTIONS"}
	auths := []string{"admin", "analyst", "viewer", "", "Bearer pal_bogus", "Basic eDp5", "session", "session-no-csrf"}
	for _, r := range fx.routes() {
		path, query, _ := strings.Cut(r.path, "?")
		auth := 0
		for i, a := range auths {
			if a == r.auth {
				auth = i
			}
		}
		for i, m := range methods {
			if m == r.method {
				f.Add(uint8(i), uint8(auth), path, query, []byte(r.body))
			}
		}
	}
	f.Add(uint8(0), uint8(0), "/api/v1/hosts/../users", "", []byte(nil))
	f.Add(uint8(0), uint8(0), "api/v1/hosts", "", []byte(nil))
	f.Add(uint8(0), uint8(0), "/api/v1/events", "severity=%zz&limit=9223372036854775807&offset=9223372036854775807", []byte(nil))
	f.Add(uint8(0), uint8(0), "/api/v1/events", "since=-2562047h&until=0000-01-01T00:00:00Z", []byte(nil))
	f.Add(uint8(1), uint8(1), "/api/v1/tasks", "", []byte(`{"type":"collect-facts","params":null,"group":"web","ttl":"1ns"}`))
	f.Add(uint8(1), uint8(0), "/api/v1/api-tokens", "", []byte(`{"name":"x","ttl":"2562047h"}`))
	f.Add(uint8(2), uint8(0), "/api/v1/users/u-admin", "", []byte(`{"role":"viewer"}`))
	f.Add(uint8(1), uint8(1), "/api/v1/events/x%2Fy/handle", "", []byte(`{"status":"open","comment":"\u0000\xff"}`))

	f.Fuzz(func(t *testing.T, method, auth uint8, path, query string, body []byte) {
		m := methods[int(method)%len(methods)]
		if !strings.HasPrefix(path, "/") {
			path = "/api/v1/" + path
		}
		r := httptest.NewRequest(m, "http://console.test/", bytes.NewReader(body))
		r.URL = &url.URL{Path: path, RawQuery: query}
		r.RequestURI = r.URL.RequestURI()
		r.RemoteAddr = "192.0.2.77:1234"
		setAuth(r, auths[int(auth)%len(auths)])
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		fx.mux.ServeHTTP(w, r)
		defer fx.ensureUsers()

		if w.Code >= 500 {
			t.Fatalf("%s %s?%s: HTTP %d: %s", m, path, query, w.Code, w.Body)
		}
		if w.Code/100 == 3 {
			// Only the mux redirects (to the clean path); no handler does.
			if w.Header().Get("Location") == "" {
				t.Fatalf("%s %s: HTTP %d without Location", m, path, w.Code)
			}
			return
		}
		if !isRoute(fx.mux, r) {
			switch w.Code {
			case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
				http.StatusNotFound, http.StatusMethodNotAllowed:
			default:
				t.Fatalf("%s %s: mux answered HTTP %d", m, path, w.Code)
			}
			return
		}
		if w.Code == http.StatusNoContent {
			if w.Body.Len() != 0 {
				t.Fatalf("%s %s: 204 with a body", m, path)
			}
			return
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s?%s: HTTP %d with Content-Type %q", m, path, query, w.Code, ct)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s?%s: HTTP %d with invalid JSON %.300q", m, path, query, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s %s: error answer without a message: %s", m, path, w.Body)
			}
		}
	})
}

func TestChangeOwnPassword(t *testing.T) {
	fx := newFixture(t, Config{})
	fx.call(request{method: "POST", path: "/api/v1/me/password", auth: store.RoleViewer,
		body: `{"current_password":"wrong-password","new_password":"a-new-password"}`}, http.StatusForbidden)
	fx.call(request{method: "POST", path: "/api/v1/me/password", auth: store.RoleViewer,
		body: `{"current_password":"` + testPassword + `","new_password":"short"}`}, http.StatusBadRequest)
	fx.call(request{method: "POST", path: "/api/v1/me/password", auth: store.RoleViewer,
		body: `{"current_password":"` + testPassword + `","new_password":"a-new-password"}`}, http.StatusOK)
	fx.call(request{method: "POST", path: "/api/v1/login", remote: "192.0.2.9:1",
		body: `{"user":"victor","password":"` + testPassword + `"}`}, http.StatusUnauthorized)
	fx.call(request{method: "POST", path: "/api/v1/login", remote: "192.0.2.9:1",
		body: `{"user":"victor","password":"a-new-password"}`}, http.StatusOK)
	entries, err := fx.st.ListAudit(context.Background(), "victor", "", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if !slices.Contains(actions, "user.password") || !slices.Contains(actions, "user.password.failed") {
		t.Errorf("audit actions for victor: %v", actions)
	}
}

func TestLoginAllowClosesCoveredEvents(t *testing.T) {
	fx := newFixture(t, Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	mk := func(user, src, country string) finding.Finding {
		return finding.Finding{ID: finding.NewID(), RuleID: "login.region-not-allowed", Category: finding.CategoryLogin,
			Severity: finding.SeverityHigh, Title: "Login of " + user + " from " + src, Time: now, DedupKey: user + "|" + src,
			Evidence: finding.Evidence{SourceIP: src, Users: []string{user}, Fields: map[string]string{"country": country}}}
	}
	if _, err := fx.st.IngestFindings(ctx, "h-1", []finding.Finding{mk("alice", "198.51.100.7", "DE"), mk("bob", "203.0.113.9", "CN")}, time.Hour); err != nil {
		t.Fatal(err)
	}
	pushes := fx.agents.policyPushes
	out := fx.call(request{method: "POST", path: "/api/v1/login-allow", auth: store.RoleAnalyst,
		body: `{"entry":{"users":["alice"],"places":["DE"],"comment":"alice travels"},"close_covered":true}`}, http.StatusOK)
	closed, _ := out["closed"].([]any)
	if len(closed) != 1 {
		t.Fatalf("closed %v, want alice's event only", out["closed"])
	}
	open, _, err := fx.st.ListEvents(ctx, store.EventFilter{Category: "login", Status: store.StatusOpen})
	if err != nil || len(open) != 1 || open[0].Evidence.Users[0] != "bob" {
		t.Errorf("open login events: %+v (%v)", open, err)
	}
	handled, err := fx.st.EventByID(ctx, closed[0].(string))
	if err != nil || handled.Status != store.StatusHandled || !strings.Contains(handled.Comment, "alice travels") {
		t.Errorf("closed event: %+v (%v)", handled, err)
	}
	allow := out["policy"].(map[string]any)["policy"].(map[string]any)["login"].(map[string]any)["allow"].([]any)
	if len(allow) != 1 || fx.agents.policyPushes != pushes+1 {
		t.Errorf("policy allow list %v, pushes %d", allow, fx.agents.policyPushes-pushes)
	}
	fx.call(request{method: "POST", path: "/api/v1/login-allow", auth: store.RoleAnalyst, body: `{"entry":{"comment":"everything"}}`}, http.StatusBadRequest)
	fx.call(request{method: "POST", path: "/api/v1/login-allow", auth: store.RoleViewer, body: `{"entry":{"users":["x"]}}`}, http.StatusForbidden)
}

func TestAllowlistEvent(t *testing.T) {
	fx := newFixture(t, Config{})
	ctx := context.Background()
	sha := strings.Repeat("ab", 32)
	fs := []finding.Finding{
		{ID: finding.NewID(), RuleID: "malware.signature", Category: finding.CategoryMalware, Severity: finding.SeverityHigh, Title: "EICAR in /tmp/x",
			Time: time.Now(), DedupKey: "m", Evidence: finding.Evidence{Path: "/tmp/x", Hashes: map[string]string{"sha256": sha}}},
		{ID: finding.NewID(), RuleID: "bruteforce.password-guessing", Category: finding.CategoryBruteForce, Severity: finding.SeverityHigh, Title: "guessing",
			Time: time.Now(), DedupKey: "b", Evidence: finding.Evidence{SourceIP: "198.51.100.20"}},
		{ID: finding.NewID(), RuleID: "login.new-source", Category: finding.CategoryLogin, Severity: finding.SeverityMedium, Title: "new source",
			Time: time.Now(), DedupKey: "l", Evidence: finding.Evidence{SourceIP: "203.0.113.5", Users: []string{"deploy"}}},
		{ID: finding.NewID(), RuleID: "behavior.miner-known-binary", Category: finding.CategoryBehavior, Severity: finding.SeverityHigh, Title: "miner",
			Time: time.Now(), DedupKey: "x", Evidence: finding.Evidence{Process: []finding.Process{{PID: 9, Exe: "/opt/bench/xmrig"}, {PID: 1, Exe: "/sbin/init"}}}},
	}
	if _, err := fx.st.IngestFindings(ctx, "h-1", fs, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		// The fixture holds a brute-force event of its own, possibly within the same millisecond.
		evs, _, _ := fx.st.ListEvents(ctx, store.EventFilter{Category: string(f.Category)})
		i := slices.IndexFunc(evs, func(e store.Event) bool { return e.RuleID == f.RuleID })
		if i < 0 {
			t.Fatalf("no event of rule %s", f.RuleID)
		}
		out := fx.call(request{method: "POST", path: "/api/v1/events/" + evs[i].ID + "/allowlist", auth: store.RoleAnalyst, body: `{"comment":"known"}`}, http.StatusOK)
		if out["status"] != "ignored" || !strings.Contains(out["comment"].(string), "allowlisted") {
			t.Errorf("%s: event after allowlisting: %v", f.Category, out)
		}
	}
	v := fx.call(request{method: "GET", path: "/api/v1/policies/fleet", auth: store.RoleViewer}, http.StatusOK)
	pol := mustMarshal(t, v["policy"])
	for _, want := range []string{sha, `"198.51.100.20"`, `"deploy"`, `"203.0.113.5/32"`, `"exe":["/opt/bench/xmrig"],"rules":["behavior.miner-known-binary"]`} {
		if !strings.Contains(string(pol), want) {
			t.Errorf("fleet policy lacks %s: %s", want, pol)
		}
	}
}
