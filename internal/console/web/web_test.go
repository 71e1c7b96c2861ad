package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
)

type noAgents struct{}

func (noAgents) Connected() []string       { return nil }
func (noAgents) Disconnect(string, string) {}
func (noAgents) NotifyTasks([]string)      {}
func (noAgents) NotifyPolicy()             {}

const testPassword = "correct-horse-battery"

type fixture struct {
	t       *testing.T
	st      *store.Store
	mux     *http.ServeMux
	eventID string
	agent   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := api.New(api.Config{TaskTypes: task.Types}, st, noAgents{}, log)
	agent := filepath.Join(t.TempDir(), "palisade-agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\necho agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fx := &fixture{t: t, st: st, mux: http.NewServeMux(), agent: agent}
	a.Register(fx.mux)
	New(Config{CAPin: "sha256:" + strings.Repeat("ab", 32), ServerKeyPin: "sha256//q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
		AgentPort: "8444", AgentBinary: agent, CACert: []byte("-----BEGIN CERTIFICATE-----\n")}, a, st, log).Register(fx.mux)

	for _, u := range []struct{ name, role string }{{"admin", store.RoleAdmin}, {"alice", store.RoleAnalyst}, {"victor", store.RoleViewer}} {
		hash, _ := api.HashPassword(testPassword)
		if err := st.CreateUser(ctx, store.User{ID: "u-" + u.name, Name: u.name, Role: u.role, PasswordHash: hash, CreatedAt: st.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	now := st.Now()
	if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-1", TokenHash: store.HashSecret("pe_1"), Group: "web-prod", CreatedBy: "admin",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnrollHost(ctx, store.HashSecret("pe_1"), store.Host{ID: "h-1", Hostname: "web-01.example.com", CertSerial: "1"}); err != nil {
		t.Fatal(err)
	}
	st.UpdateHostFacts(ctx, "h-1", finding.HostFacts{Hostname: "web-01.example.com", OSID: "debian", OSPretty: "Debian GNU/Linux 12 (bookworm)"})
	st.TouchHost(ctx, "h-1", finding.AgentStatus{Time: now})
	f := finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
		Severity: finding.SeverityCritical, Title: "SSH password guessing from 203.0.113.7 <script>alert(1)</script>", Time: now, DedupKey: "203.0.113.7",
		Evidence: finding.Evidence{SourceIP: "203.0.113.7", Users: []string{"root"}, Lines: []string{"Failed password for root from 203.0.113.7 port 52113 ssh2"}}}
	if _, err := st.IngestFindings(ctx, "h-1", []finding.Finding{f}, time.Hour); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := st.ListEvents(ctx, store.EventFilter{})
	fx.eventID = evs[0].ID
	return fx
}

type client struct {
	fx     *fixture
	cookie *http.Cookie
	csrf   string
}

func (fx *fixture) do(r *http.Request) *httptest.ResponseRecorder {
	r.Host = "console.example.com:8443"
	w := httptest.NewRecorder()
	fx.mux.ServeHTTP(w, r)
	return w
}

// login signs in through the form, as a browser does.
func (fx *fixture) login(user string) *client {
	fx.t.Helper()
	form := url.Values{"user": {user}, "password": {testPassword}}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := fx.do(r)
	if w.Code != http.StatusSeeOther {
		fx.t.Fatalf("login %s: HTTP %d: %s", user, w.Code, w.Body)
	}
	c := &client{fx: fx}
	for _, ck := range w.Result().Cookies() {
		if ck.Name == api.SessionCookie {
			c.cookie = ck
			if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
				fx.t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", ck)
			}
		}
	}
	page := c.get("/")
	m := regexp.MustCompile(`name="csrf_token" value="([0-9a-f]+)"`).FindStringSubmatch(page.Body.String())
	if m == nil {
		fx.t.Fatalf("no CSRF token on the dashboard")
	}
	c.csrf = m[1]
	return c
}

func (c *client) get(path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	if c.cookie != nil {
		r.AddCookie(c.cookie)
	}
	return c.fx.do(r)
}

func (c *client) post(path string, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.cookie != nil {
		r.AddCookie(c.cookie)
	}
	return c.fx.do(r)
}

func (c *client) form(kv ...string) url.Values {
	v := url.Values{"csrf_token": {c.csrf}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func TestEveryPageRendersForAnAdmin(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("admin")
	for path, want := range map[string]string{
		"/":      "hosts online",
		"/hosts": "web-01.example.com",
		"/hosts?search=web&online=true&group=web-prod&os=debian": "web-01.example.com",
		"/hosts/h-1": "Debian GNU/Linux 12",
		"/events":    "SSH password guessing",
		"/events?status=open&severity=high&category=bruteforce&host=h-1&since=24h": "SSH password guessing",
		"/events/" + fx.eventID: "Failed password for root",
		"/tasks":                "Start a task",
		"/onboarding":           "New enrollment token",
		"/settings":             "Notification webhooks",
		"/audit":                "login",
	} {
		w := c.get(path)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
			t.Errorf("GET %s: HTTP %d, want 200 with %q", path, w.Code, want)
		}
		if strings.Contains(w.Body.String(), "<script>alert(1)") {
			t.Errorf("GET %s: event title not escaped", path)
		}
	}
	if w := c.get("/events?category=ransomware"); w.Code != http.StatusBadRequest {
		t.Errorf("unknown category filter: HTTP %d, want 400", w.Code)
	}
}

func TestSignedOutBrowsersAreSentToTheLoginPage(t *testing.T) {
	fx := newFixture(t)
	anon := &client{fx: fx}
	if w := anon.get("/events"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" {
		t.Errorf("GET /events signed out: HTTP %d to %q", w.Code, w.Header().Get("Location"))
	}
	stale := &client{fx: fx, cookie: &http.Cookie{Name: api.SessionCookie, Value: "expired-session"}}
	if w := stale.get("/"); w.Header().Get("Location") != "/login?expired=1" {
		t.Errorf("expired session sent to %q, want /login?expired=1", w.Header().Get("Location"))
	}
	if w := anon.get("/login?expired=1"); !strings.Contains(w.Body.String(), "session expired") {
		t.Error("login page does not say the session expired")
	}
	r := httptest.NewRequest("POST", "/login", strings.NewReader("user=admin&password=wrong-password"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := fx.do(r); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "wrong user name or password") {
		t.Errorf("wrong password: HTTP %d", w.Code)
	}
	r = httptest.NewRequest("POST", "/login", strings.NewReader("user=admin&password="+testPassword))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://evil.example")
	if w := fx.do(r); w.Code != http.StatusForbidden {
		t.Errorf("cross-site login: HTTP %d, want 403", w.Code)
	}
}

func TestAnalystHandlesAnEventAndTheAuditLogSaysSo(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("alice")
	page := c.get("/events/" + fx.eventID).Body.String()
	for _, b := range []string{"Mark handled", "Ignore", "Allowlist", "Block IP"} {
		if !strings.Contains(page, b) {
			t.Errorf("analyst's event page lacks %q", b)
		}
	}
	if w := c.post("/events/"+fx.eventID+"/status", url.Values{"status": {"handled"}}); w.Code != http.StatusForbidden {
		t.Errorf("form without CSRF token: HTTP %d, want 403", w.Code)
	}
	w := c.post("/events/"+fx.eventID+"/status", c.form("status", "handled", "comment", "password auth disabled"))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("mark handled: HTTP %d: %s", w.Code, w.Body)
	}
	ev, _ := fx.st.EventByID(t.Context(), fx.eventID)
	if ev.Status != store.StatusHandled || ev.HandledBy != "alice" {
		t.Errorf("event after the form: %s by %q", ev.Status, ev.HandledBy)
	}
	w = c.post("/events/"+fx.eventID+"/block", c.form("ttl", "1h", "scope", "host"))
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/tasks/t-") {
		t.Fatalf("block IP: HTTP %d to %q: %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if w := c.get(strings.Split(w.Header().Get("Location"), "?")[0]); !strings.Contains(w.Body.String(), "203.0.113.7") {
		t.Error("block task page does not show the address")
	}
	entries, _ := fx.st.ListAudit(t.Context(), "alice", "", 100, 0)
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"event.handled", "task.create", "login"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit log of alice %v lacks %s", actions, want)
		}
	}
}

func TestViewerSeesNoActionsAndCannotAct(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("victor")
	for _, path := range []string{"/events/" + fx.eventID, "/tasks", "/settings"} {
		body := c.get(path).Body.String()
		for _, b := range []string{"Mark handled", "Block IP", "Start task", "Add user", "Add webhook", "Save and push"} {
			if strings.Contains(body, b) {
				t.Errorf("viewer sees %q on %s", b, path)
			}
		}
	}
	if w := c.post("/events/"+fx.eventID+"/status", c.form("status", "handled")); w.Code != http.StatusForbidden {
		t.Errorf("viewer marking handled: HTTP %d, want 403", w.Code)
	}
	if w := c.get("/onboarding"); w.Code != http.StatusForbidden {
		t.Errorf("viewer on onboarding: HTTP %d, want 403", w.Code)
	}
	ev, _ := fx.st.EventByID(t.Context(), fx.eventID)
	if ev.Status != store.StatusOpen {
		t.Errorf("event status %s after a viewer's attempt", ev.Status)
	}
}

func TestOnboardingShowsTheOneLinerAndTheScriptHoldsNoSecret(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("admin")
	w := c.post("/onboarding", c.form("group", "web-prod", "ttl", "1h"))
	body := w.Body.String()
	m := regexp.MustCompile(`--token &#39;(pe_[0-9a-f]+)&#39;`).FindStringSubmatch(body)
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("onboarding: HTTP %d, no one-liner with a token in %s", w.Code, body)
	}
	if !strings.Contains(body, "curl -fsS --proto &#39;=https&#39; -k --pinnedpubkey &#39;sha256//") ||
		!strings.Contains(body, "https://console.example.com:8443/install.sh") {
		t.Errorf("one-liner lacks the pinned curl to this console")
	}

	anon := &client{fx: fx}
	script := anon.get("/install.sh")
	if script.Code != http.StatusOK {
		t.Fatalf("install.sh: HTTP %d", script.Code)
	}
	s := script.Body.String()
	bin, _ := os.ReadFile(fx.agent)
	sum := sha256.Sum256(bin)
	for _, want := range []string{hex.EncodeToString(sum[:]), "AGENT_SERVER='console.example.com:8444'", "CA_PIN='sha256:abab",
		"KEY_PIN='sha256//", "ExecStart=/usr/local/bin/palisade-agent", "--ca-pin \"$CA_PIN\""} {
		if !strings.Contains(s, want) {
			t.Errorf("install.sh lacks %q", want)
		}
	}
	if strings.Contains(s, m[1]) || regexp.MustCompile(`pe_[0-9a-f]{8,}`).MatchString(s) {
		t.Error("install.sh embeds an enrollment token")
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		f := filepath.Join(t.TempDir(), "install.sh")
		os.WriteFile(f, []byte(s), 0o600)
		if out, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("install.sh does not parse: %v: %s", err, out)
		}
	}
	if got := anon.get("/download/palisade-agent"); got.Code != http.StatusOK || got.Body.String() != string(bin) {
		t.Errorf("agent download: HTTP %d", got.Code)
	}
	r := httptest.NewRequest("GET", "/install.sh", nil)
	w2 := httptest.NewRecorder()
	r.Host = "evil.example';rm -rf /;'"
	fx.mux.ServeHTTP(w2, r)
	if w2.Code != http.StatusBadRequest {
		t.Errorf("install.sh for a Host with shell syntax: HTTP %d, want 400", w2.Code)
	}
}

func TestWebhookAndUserFormsAreAudited(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("admin")
	w := c.post("/settings/webhooks", c.form("name", "soc", "url", "https://hooks.example.com/x", "min_severity", "high", "category", "malware"))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "whsec_") {
		t.Fatalf("create webhook: HTTP %d", w.Code)
	}
	hooks, _ := fx.st.Webhooks(t.Context())
	if w := c.post("/settings/webhooks/"+hooks[0].ID+"/enabled", c.form("enabled", "false")); w.Code != http.StatusSeeOther {
		t.Errorf("disable webhook: HTTP %d", w.Code)
	}
	if hooks, _ = fx.st.Webhooks(t.Context()); hooks[0].Enabled {
		t.Error("webhook still enabled after the form")
	}
	if w := c.post("/settings/users", c.form("name", "bob", "role", "viewer", "password", testPassword)); w.Code != http.StatusSeeOther {
		t.Errorf("create user: HTTP %d: %s", w.Code, w.Body)
	}
	for _, action := range []string{"webhook.create", "webhook.disable", "user.create"} {
		if es, _ := fx.st.ListAudit(t.Context(), "admin", action, 10, 0); len(es) != 1 {
			t.Errorf("audit entries for %s: %d, want 1", action, len(es))
		}
	}
}

// The console's Content-Security-Policy forbids inline scripts, handlers and styles.
func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	inline := regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|\sstyle=|<style`)
	names, _ := filepathGlob()
	for _, n := range names {
		b, _ := files.ReadFile(n)
		if loc := inline.FindIndex(b); loc != nil {
			t.Errorf("%s: inline script or style at %q", n, b[loc[0]:min(loc[1]+20, len(b))])
		}
	}
}

// Every form control must have a label: an id that a <label for> names, or a wrapping label.
func TestEveryFormControlHasALabel(t *testing.T) {
	control := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	names, _ := filepathGlob()
	for _, n := range names {
		b, _ := files.ReadFile(n)
		s := string(b)
		for _, m := range control.FindAllStringIndex(s, -1) {
			tag := s[m[0]:m[1]]
			if strings.Contains(tag, `type="hidden"`) {
				continue
			}
			if id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(tag); id != nil && strings.Contains(s, `for="`+id[1]+`"`) {
				continue
			}
			if open := strings.LastIndex(s[:m[0]], "<label>"); open >= 0 && !strings.Contains(s[open:m[0]], "</label>") {
				continue
			}
			t.Errorf("%s: control without a label: %s", n, tag)
		}
	}
}

func filepathGlob() ([]string, error) {
	var out []string
	entries, err := files.ReadDir("templates")
	for _, e := range entries {
		out = append(out, "templates/"+e.Name())
	}
	return out, err
}

func TestGroupPolicyIsSavedFromTheSettingsPage(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("admin")
	page := c.get("/settings?scope=group:web-prod").Body.String()
	if !strings.Contains(page, "follows the fleet") {
		t.Fatal("group without a policy is not shown as following the fleet's")
	}
	m := regexp.MustCompile(`(?s)<textarea id="policy"[^>]*>(.*?)</textarea>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no policy editor")
	}
	doc := strings.NewReplacer("&#34;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#39;", "'").Replace(m[1])
	w := c.post("/settings/policy", c.form("scope", "group:web-prod", "policy", doc))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("save group policy: HTTP %d: %s", w.Code, w.Body)
	}
	if p, err := fx.st.Policy(t.Context(), "group:web-prod"); err != nil || p.UpdatedBy != "admin" {
		t.Errorf("group policy after saving: %+v, %v", p, err)
	}
	if w := c.post("/settings/policy", c.form("scope", "fleet", "policy", `{"no_such_engine":{}}`)); w.Code != http.StatusBadRequest {
		t.Errorf("policy with an unknown field: HTTP %d, want 400", w.Code)
	}
	if es, _ := fx.st.ListAudit(t.Context(), "admin", "policy.set", 10, 0); len(es) != 1 || es[0].Target != "group:web-prod" {
		t.Errorf("audit entries for policy.set: %+v", es)
	}
}

func TestLiveCountersAnswerJSON(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("victor")
	w := c.get("/live")
	var got map[string]int
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/live: %v, %s", err, w.Body)
	}
	if got["hosts-online"] != 1 || got["open-critical"] != 1 {
		t.Errorf("/live = %v, want one host online and one critical event open", got)
	}
	if w := (&client{fx: fx}).get("/live"); w.Code != http.StatusSeeOther {
		t.Errorf("/live signed out: HTTP %d", w.Code)
	}
}

func TestAllowlistAndQuarantineFormsUseTheAPIActions(t *testing.T) {
	fx := newFixture(t)
	ctx := t.Context()
	c := fx.login("alice")
	if w := c.post("/events/"+fx.eventID+"/allowlist", c.form("comment", "our scanner")); w.Code != http.StatusSeeOther {
		t.Fatalf("allowlist: HTTP %d: %s", w.Code, w.Body)
	}
	ev, _ := fx.st.EventByID(ctx, fx.eventID)
	p, err := fx.st.Policy(ctx, store.FleetScope)
	if ev.Status != store.StatusIgnored || err != nil || !strings.Contains(p.Body, "203.0.113.7") {
		t.Errorf("after allowlisting: event %s, fleet policy %q, %v", ev.Status, p.Body, err)
	}

	sum := strings.Repeat("ab", 32)
	f := finding.Finding{ID: finding.NewID(), RuleID: "malware.signature", Category: finding.CategoryMalware, Severity: finding.SeverityHigh,
		Title: "Malware found in /tmp/x.bin", Time: fx.st.Now(), DedupKey: "/tmp/x.bin",
		Evidence: finding.Evidence{Path: "/tmp/x.bin", Hashes: map[string]string{"sha256": sum}}}
	if _, err := fx.st.IngestFindings(ctx, "h-1", []finding.Finding{f}, time.Hour); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := fx.st.ListEvents(ctx, store.EventFilter{Category: string(finding.CategoryMalware)})
	if !strings.Contains(c.get("/events/"+evs[0].ID).Body.String(), "Quarantine file") {
		t.Fatal("malware event page offers no quarantine")
	}
	w := c.post("/events/"+evs[0].ID+"/quarantine", c.form())
	if w.Code != http.StatusSeeOther {
		t.Fatalf("quarantine: HTTP %d: %s", w.Code, w.Body)
	}
	id := strings.TrimPrefix(strings.Split(w.Header().Get("Location"), "?")[0], "/tasks/")
	tk, err := fx.st.TaskByID(ctx, id)
	if err != nil || tk.Type != task.Quarantine || !strings.Contains(string(tk.Params), sum) || tk.Hosts[0].HostID != "h-1" {
		t.Errorf("quarantine task %+v, %v", tk, err)
	}
	es, _ := fx.st.ListAudit(ctx, "alice", "", 100, 0)
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"event.allowlisted", "policy.set", "task.create"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit of alice %v lacks %s", actions, want)
		}
	}
}
