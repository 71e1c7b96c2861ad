package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

func TestEnrollment(t *testing.T) {
	tc := startConsole(t)
	enroll := func(token, pin string) error {
		_, err := agent.Enroll(context.Background(), agent.EnrollOptions{DataDir: filepath.Join(t.TempDir(), "a"),
			Server: tc.agentAddr, Token: token, CAPin: pin, AgentVersion: "test"})
		return err
	}
	good := tc.enrollToken("1h")
	if err := enroll(good, tc.c.CA.Pin()); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	expired := tc.enrollToken("1h")
	tc.c.Store.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	errExpired := enroll(expired, tc.c.CA.Pin())
	tc.c.Store.Now = time.Now

	otherPin := "sha256:" + strings.Repeat("ab", 32)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"reused token", enroll(good, tc.c.CA.Pin()), "already used"},
		{"expired token", errExpired, "expired"},
		{"unknown token", enroll("pe_0123456789abcdef0123456789abcdef0123456789abcdef", tc.c.CA.Pin()), "unknown"},
		{"wrong CA pin", enroll(tc.enrollToken("1h"), otherPin), "does not match the pin"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", tt.err, tt.want)
			}
		})
	}
	var hosts api.Page[store.Host]
	tc.call("GET", "/api/v1/hosts", nil, &hosts)
	mustf(t, hosts.Total == 1, "want exactly the one good enrollment, got %d hosts", hosts.Total)
}

func TestHeartbeatOnlineOffline(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.start()
	id := ta.a.HostID()
	eventually(t, 10*time.Second, "host online", func() bool { return hostOnline(tc, id) })
	var h store.Host
	tc.call("GET", "/api/v1/hosts/"+id, nil, &h)
	mustf(t, h.Facts.Kernel != "" && h.Facts.AgentVersion != "", "facts missing: %+v", h.Facts)
	eventually(t, 5*time.Second, "heartbeat with cost and components", func() bool {
		tc.call("GET", "/api/v1/hosts/"+id, nil, &h)
		return h.Status.RSSBytes > 0 && len(h.Status.Components) > 0 && h.Status.BudgetMode != ""
	})
	ta.stop()
	eventually(t, 15*time.Second, "host offline after agent stopped", func() bool { return !hostOnline(tc, id) })
}

func TestRevocation(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.start()
	id := ta.a.HostID()
	eventually(t, 10*time.Second, "agent connected", func() bool { return len(tc.c.Agents.Connected()) == 1 })
	if code := tc.call("POST", "/api/v1/hosts/"+id+"/revoke", struct{}{}, nil); code != http.StatusOK {
		t.Fatalf("revoke: HTTP %d", code)
	}
	eventually(t, 5*time.Second, "stream cut", func() bool { return len(tc.c.Agents.Connected()) == 0 })
	// The agent keeps trying; every attempt must be refused.
	ta.stop()
	ta.start()
	time.Sleep(1500 * time.Millisecond)
	mustf(t, len(tc.c.Agents.Connected()) == 0, "revoked agent reconnected")
	st, err := agent.ReadStatus(ta.dir)
	mustf(t, err == nil && strings.Contains(st.LastError, "revoked"), "agent status should say revoked, got %+v (%v)", st, err)
	mustf(t, tc.call("POST", "/api/v1/hosts/"+id+"/revoke", struct{}{}, nil) == http.StatusNotFound, "second revoke should be 404")
}

func TestTaskRoundTrip(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	// The host is offline: the task waits for it.
	var task store.Task
	hostID := mustHostID(t, ta)
	if code := tc.call("POST", "/api/v1/tasks", api.TaskRequest{Type: "collect-facts", Hosts: []string{hostID}}, &task); code != http.StatusCreated {
		t.Fatalf("create task: HTTP %d", code)
	}
	mustf(t, task.Hosts[0].State == store.TaskPending, "offline host: want pending, got %s", task.Hosts[0].State)
	ta.start()
	eventually(t, 10*time.Second, "task succeeded", func() bool {
		tc.call("GET", "/api/v1/tasks/"+task.ID, nil, &task)
		return task.Hosts[0].State == store.TaskSucceeded
	})
	var facts finding.HostFacts
	mustf(t, jsonInto(task.Hosts[0].Result, &facts) == nil && facts.Kernel != "", "result should hold facts: %s", task.Hosts[0].Result)

	// Unknown types never reach an agent; there is no remote shell.
	code := tc.call("POST", "/api/v1/tasks", map[string]any{"type": "shell", "hosts": []string{hostID}, "params": map[string]string{"cmd": "id"}}, nil)
	mustf(t, code == http.StatusBadRequest, "unknown task type: want 400, got %d", code)

	// A task for a host that never comes back expires.
	ta.stop()
	eventually(t, 10*time.Second, "host offline", func() bool { return !hostOnline(tc, hostID) })
	var short store.Task
	tc.call("POST", "/api/v1/tasks", api.TaskRequest{Type: "collect-facts", Hosts: []string{hostID}, TTL: "1s"}, &short)
	time.Sleep(1100 * time.Millisecond)
	if _, err := tc.c.Store.ExpireTasks(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.call("GET", "/api/v1/tasks/"+short.ID, nil, &short)
	mustf(t, short.Hosts[0].State == store.TaskExpired, "want expired, got %s", short.Hosts[0].State)
}

func mustHostID(t *testing.T, ta *testAgent) string {
	id, err := agent.LoadIdentity(ta.dir)
	if err != nil {
		t.Fatal(err)
	}
	return id.HostID
}

func TestRBACAndAudit(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.start()
	if err := ta.a.Emit(finding.Finding{RuleID: "test.rbac", Category: finding.CategoryBehavior, Severity: finding.SeverityHigh, Title: "test finding"}); err != nil {
		t.Fatal(err)
	}
	var events api.Page[store.Event]
	eventually(t, 10*time.Second, "event stored", func() bool {
		tc.call("GET", "/api/v1/events", nil, &events)
		return events.Total == 1
	})
	evID := events.Items[0].ID

	for _, u := range []api.UserRequest{{Name: "vera", Role: "viewer", Password: "viewer-password"}, {Name: "ana", Role: "analyst", Password: "analyst-password"}} {
		mustf(t, tc.call("POST", "/api/v1/users", u, nil) == http.StatusCreated, "create user %s", u.Name)
	}
	login := func(user, pw string) (*testSession, int) {
		s := &testSession{tc: tc, hc: newHTTPClient(t, filepath.Join(tc.cfg.DataDir, "ca.crt"))}
		var lr api.LoginResponse
		code := doJSON(t, s.hc, "POST", tc.c.APIURL()+"/api/v1/login", api.LoginRequest{User: user, Password: pw}, &lr)
		s.csrf = lr.CSRFToken
		return s, code
	}
	_, code := login("vera", "wrong-password")
	mustf(t, code == http.StatusUnauthorized, "wrong password: want 401, got %d", code)
	vera, code := login("vera", "viewer-password")
	mustf(t, code == http.StatusOK, "viewer login: %d", code)
	mustf(t, vera.do("GET", "/api/v1/events", nil) == http.StatusOK, "viewer can read events")
	mustf(t, vera.do("POST", "/api/v1/events/"+evID+"/handle", api.HandleRequest{Status: "handled"}) == http.StatusForbidden, "viewer must not handle events")
	mustf(t, vera.do("POST", "/api/v1/tasks", api.TaskRequest{Type: "collect-facts", All: true}) == http.StatusForbidden, "viewer must not create tasks")
	mustf(t, vera.do("GET", "/api/v1/users", nil) == http.StatusForbidden, "viewer must not list users")

	ana, _ := login("ana", "analyst-password")
	saved := ana.csrf
	ana.csrf = ""
	mustf(t, ana.do("POST", "/api/v1/events/"+evID+"/handle", api.HandleRequest{Status: "handled"}) == http.StatusForbidden, "session without CSRF token must be refused")
	ana.csrf = saved
	mustf(t, ana.do("POST", "/api/v1/events/"+evID+"/handle", api.HandleRequest{Status: "handled", Comment: "patched"}) == http.StatusOK, "analyst handles event")
	mustf(t, ana.do("POST", "/api/v1/hosts/"+ta.a.HostID()+"/revoke", struct{}{}) == http.StatusForbidden, "analyst must not revoke hosts")
	mustf(t, ana.do("POST", "/api/v1/logout", nil) == http.StatusOK, "logout")
	mustf(t, ana.do("GET", "/api/v1/events", nil) == http.StatusUnauthorized, "session must end at logout")

	var audit api.Page[store.AuditEntry]
	tc.call("GET", "/api/v1/audit?action=event.handled", nil, &audit)
	mustf(t, len(audit.Items) == 1 && audit.Items[0].Actor == "ana" && audit.Items[0].Target == evID && audit.Items[0].Detail == "patched",
		"audit log should record ana handling the event: %+v", audit.Items)
	var ev store.Event
	tc.call("GET", "/api/v1/events/"+evID, nil, &ev)
	mustf(t, ev.Status == "handled" && ev.HandledBy == "ana", "event state: %+v", ev)
}

func TestUnauthenticatedRoutes(t *testing.T) {
	tc := startConsole(t)
	anon := newHTTPClient(t, filepath.Join(tc.cfg.DataDir, "ca.crt"))
	mustf(t, doJSON(t, anon, "GET", tc.c.APIURL()+"/healthz", nil, nil) == http.StatusOK, "healthz is open")
	for _, r := range []struct{ method, path string }{
		{"GET", "/metrics"}, {"GET", "/api/v1/hosts"}, {"GET", "/api/v1/events"}, {"GET", "/api/v1/openapi.json"},
		{"POST", "/api/v1/tasks"}, {"GET", "/api/v1/audit"}, {"POST", "/api/v1/enroll-tokens"}, {"GET", "/api/v1/users"},
	} {
		code := doJSON(t, anon, r.method, tc.c.APIURL()+r.path, nil, nil)
		mustf(t, code == http.StatusUnauthorized, "%s %s without credentials: want 401, got %d", r.method, r.path, code)
		code = doJSON(t, anon, r.method, tc.c.APIURL()+r.path, nil, nil, "Authorization", "Bearer pal_bogus")
		mustf(t, code == http.StatusUnauthorized, "%s %s with a bogus token: want 401, got %d", r.method, r.path, code)
	}
	mustf(t, tc.call("GET", "/metrics", nil, nil) == http.StatusOK, "metrics with a token")
}

// testSession is a browser-style session: cookie plus CSRF header.
type testSession struct {
	tc   *testConsole
	hc   *http.Client
	csrf string
}

func (s *testSession) do(method, path string, in any) int {
	return doJSON(s.tc.t, s.hc, method, s.tc.c.APIURL()+path, in, nil, api.CSRFHeader, s.csrf)
}

func jsonInto(b []byte, v any) error {
	if len(b) == 0 {
		return errors.New("empty")
	}
	return json.Unmarshal(b, v)
}
