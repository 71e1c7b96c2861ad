package console_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/notify"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// browser is a headless Debian Chromium driven over the DevTools protocol.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

// newBrowser starts Chromium for the console at base, trusting only the console's own HTTPS key
// (by its SPKI hash, as the install one-liner's curl does). Skipped without /usr/bin/chromium
// (scripts/test.sh installs it).
func newBrowser(t *testing.T, tc *testConsole) *browser {
	t.Helper()
	exe := os.Getenv("PALISADE_CHROMIUM")
	if exe == "" {
		exe = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exe); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found at %s", exe)
		}
		t.Skipf("chromium not found at %s (scripts/test.sh installs it)", exe)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(tc.cfg.DataDir, "server.crt"), filepath.Join(tc.cfg.DataDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return &browser{t: t, ctx: ctx, base: tc.c.APIURL()}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// open navigates to path and returns the text of the page's main landmark.
func (b *browser) open(path string) string {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main")))
	return b.text("main")
}

func (b *browser) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return s
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", js, err)
	}
	return s
}

// waitFor reloads path until its main text contains want.
func (b *browser) waitFor(path, want string, within time.Duration) string {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := b.open(path)
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %s waiting for %q on %s; page says:\n%s", within, want, path, s)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	b.open("/login")
	b.do("sign in as "+user,
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`main button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("section.cards")))
}

func (b *browser) logout() {
	b.t.Helper()
	b.do("sign out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.ID("user")))
}

// screenshot saves the page as PNG into $PALISADE_SCREENSHOTS, when set (scripts/screenshots.sh).
func (b *browser) screenshot(path, name string) {
	b.t.Helper()
	dir := os.Getenv("PALISADE_SCREENSHOTS")
	if dir == "" {
		return
	}
	b.open(path)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestBrowserOperatorDay: in headless Chromium, an admin signs in with the keyboard, adds a
// webhook, watches a host appear when its agent enrolls, sees the malware finding of a real
// detection (which the webhook receives too), marks it handled, finds that in the audit log and
// runs a scan task on the host; a viewer sees the event but no way to act on it.
func TestBrowserOperatorDay(t *testing.T) {
	tc := startConsole(t, func(c *console.Config) { c.AgentBinary = os.Getenv("PALISADE_AGENT_BINARY") })
	var created map[string]any
	for _, u := range []struct{ name, role string }{{"victor", "viewer"}} {
		code := tc.call("POST", "/api/v1/users", map[string]string{"name": u.name, "role": u.role, "password": "correct-horse-battery"}, &created)
		mustf(t, code == 201, "create %s: HTTP %d", u.name, code)
	}
	b := newBrowser(t, tc)

	// Keyboard: the sign-in form is reachable and usable with Tab and Enter alone.
	b.open("/login")
	mustf(t, b.eval(`document.documentElement.lang`) == "en", "page has no lang attribute")
	mustf(t, b.eval(`document.activeElement.id`) == "user", "focus does not start on the user field")
	b.do("tab once", chromedp.KeyEvent("\t")) // to the password field
	mustf(t, b.eval(`getComputedStyle(document.activeElement).outlineStyle`) != "none", "the focused element has no visible outline")
	b.do("focus the user field", chromedp.Focus(chromedp.ID("user")))
	b.do("type the user name", chromedp.KeyEvent("admin\t"))
	mustf(t, b.eval(`document.activeElement.id`) == "password", "Tab from user does not reach password")
	b.do("type the password", chromedp.KeyEvent("correct-horse-battery\t"))
	mustf(t, b.eval(`document.activeElement.textContent.trim()`) == "Sign in", "Tab from password does not reach the button")
	b.do("press Enter", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("section.cards")))
	mustf(t, strings.Contains(b.text("header"), "admin"), "header does not show the signed-in user")

	// A webhook for malware events, added on the settings page; the secret is shown once.
	hook := newHookReceiver(t)
	b.open("/settings")
	b.do("add a webhook",
		chromedp.SendKeys(chromedp.ID("wh-name"), "soc"),
		chromedp.SendKeys(chromedp.ID("wh-url"), hook.srv.URL+"/palisade"),
		chromedp.Click(chromedp.CSS(`input[name="category"][value="malware"]`)),
		chromedp.Click(chromedp.CSS(`form[action="/settings/webhooks"] button`)),
		chromedp.WaitVisible(chromedp.ID("new-secret")))
	hook.secret = b.text("#new-secret")

	hosts := b.open("/hosts")
	mustf(t, strings.Contains(hosts, "No hosts match"), "hosts before enrolling: %s", hosts)

	// A real agent with a real-time malware watch enrolls...
	ta := enrollAgent(t, tc)
	sigs, watched := t.TempDir(), t.TempDir()
	sum := md5.Sum(eicar)
	os.WriteFile(filepath.Join(sigs, "test.hdb"), fmt.Appendf(nil, "%s:%d:Eicar-Test-Signature\n", hex.EncodeToString(sum[:]), len(eicar)), 0o644)
	ta.malware = agent.MalwareConfig{Signatures: []string{sigs}, Realtime: []string{watched}}
	ta.start()
	host := ta.a.HostID()
	page := b.waitFor("/hosts?online=true", "Hosts 1–1 of 1", 15*time.Second)
	mustf(t, b.eval(fmt.Sprintf(`String(document.querySelector('a[href="/hosts/%s"]') !== null)`, host)) == "true", "host %s not listed: %s", host, page)

	// ...and detects a file dropped into the watched directory.
	time.Sleep(200 * time.Millisecond)
	dropped := filepath.Join(watched, "invoice.pdf.exe")
	if err := os.WriteFile(dropped, eicar, 0o755); err != nil {
		t.Fatal(err)
	}
	b.waitFor("/events?status=open&category=malware", "invoice.pdf.exe", 15*time.Second) // the filter form names "malware" anyway
	b.do("open the event", chromedp.Click(chromedp.CSS(`table.events tbody a[href^="/events/"]`)), chromedp.WaitVisible(chromedp.ID("evi-h")))
	evPath := b.eval(`location.pathname`)
	evidence := b.text("main")
	mustf(t, strings.Contains(evidence, dropped) && strings.Contains(evidence, "sha256"), "event page lacks the file and its hash:\n%s", evidence)
	mustf(t, strings.Contains(b.text("#act-h"), "Actions") && strings.Contains(evidence, "Quarantine file"), "admin sees no actions")
	b.screenshot(evPath, "event")

	// The webhook got the same event, signed with the secret the page showed.
	evID := strings.TrimPrefix(evPath, "/events/")
	eventually(t, 15*time.Second, "webhook delivery", func() bool { return hook.got(evID) })

	b.do("mark handled",
		chromedp.SendKeys(chromedp.ID("comment"), "test file from the browser test"),
		chromedp.Click(chromedp.CSS(`button[value="handled"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")))
	mustf(t, b.text("#event-status") == "handled", "status after marking: %q", b.text("#event-status"))
	audit := b.open("/audit?action=event.handled")
	mustf(t, strings.Contains(audit, "event.handled") && strings.Contains(audit, evID) && strings.Contains(audit, "test file from the browser test"),
		"audit log lacks the page action:\n%s", audit)

	// A custom scan of the watched directory, started for the host from the tasks page; its
	// page shows the host's progress until the agent reports the result.
	b.open("/tasks")
	b.do("start a scan",
		chromedp.SetValue(chromedp.ID("t-mode"), "custom"),
		chromedp.SendKeys(chromedp.ID("t-paths"), watched),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="host"][value="%s"]`, host))),
		chromedp.Click(chromedp.CSS(`form[action="/tasks"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("task-hosts")))
	taskPath := b.eval(`location.pathname`)
	mustf(t, strings.HasPrefix(taskPath, "/tasks/t-"), "after starting a task: %s", taskPath)
	done := b.waitFor(taskPath, "succeeded", 20*time.Second)
	result := b.eval(`document.querySelector("#task-hosts details pre").textContent`)
	mustf(t, strings.Contains(done, "100%") && strings.Contains(result, "invoice.pdf.exe"), "scan task page:\n%s\nresult: %s", done, result)
	b.screenshot(taskPath, "task")

	if os.Getenv("PALISADE_SCREENSHOTS") != "" {
		seedDemoEvents(t, tc, host)
	}
	for _, path := range []string{"/", "/hosts", "/hosts/" + host, "/events", evPath, "/tasks", taskPath, "/settings", "/onboarding", "/audit"} {
		b.open(path)
		if bad := b.eval(accessibilityProblems); bad != "" {
			t.Errorf("accessibility on %s: %s", path, bad)
		}
	}

	b.screenshot("/", "dashboard")
	b.screenshot("/hosts", "hosts")
	b.screenshot("/hosts/"+host, "host")
	b.screenshot("/events", "events")
	b.screenshot("/tasks", "tasks")
	b.screenshot("/settings", "settings")
	if os.Getenv("PALISADE_SCREENSHOTS") != "" {
		b.open("/onboarding")
		b.do("create a token", chromedp.Click(chromedp.CSS(`form[action="/onboarding"] button`)), chromedp.WaitVisible(chromedp.ID("oneliner")))
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		mustf(t, err == nil, "screenshot: %v", err)
		os.WriteFile(filepath.Join(os.Getenv("PALISADE_SCREENSHOTS"), "onboarding.png"), png, 0o644)
	}

	// A viewer reads the same event but has no button to act, and a forged form is refused.
	b.logout()
	b.login("victor", "correct-horse-battery")
	viewerPage := b.open(evPath)
	mustf(t, strings.Contains(viewerPage, "handled") && !strings.Contains(viewerPage, "Mark handled") &&
		!strings.Contains(viewerPage, "Quarantine file") && !strings.Contains(viewerPage, "Block IP"), "viewer's event page:\n%s", viewerPage)
	forged := b.eval(fmt.Sprintf(`(function(){
		var f = document.createElement("form"); f.method = "post"; f.action = %q;
		var c = document.createElement("input"); c.name = "csrf_token"; c.value = document.querySelector('input[name="csrf_token"]').value; f.appendChild(c);
		var s = document.createElement("input"); s.name = "status"; s.value = "open"; f.appendChild(s);
		document.body.appendChild(f); f.submit(); return "sent"; })()`, evPath+"/status"))
	mustf(t, forged == "sent", "forged form not sent")
	b.do("wait for the refusal", chromedp.WaitVisible(chromedp.CSS("p.error")))
	mustf(t, strings.Contains(b.text("main"), "may not do this"), "viewer's forged form: %s", b.text("main"))
	var ev struct {
		Status string `json:"status"`
	}
	tc.call("GET", "/api/v1"+evPath, nil, &ev)
	mustf(t, ev.Status == "handled", "event status after the viewer's attempt: %s", ev.Status)
	if n := b.open("/onboarding"); !strings.Contains(n, "may not do this") {
		t.Errorf("viewer reached onboarding: %s", n)
	}
}

// seedDemoEvents adds two weeks of plausible findings to the host, so screenshots of the
// dashboard show a trend; only for scripts/screenshots.sh, never in the test's assertions.
func seedDemoEvents(t *testing.T, tc *testConsole, host string) {
	now := time.Now()
	var fs []finding.Finding
	ips := []string{"203.0.113.7", "198.51.100.23", "192.0.2.44", "203.0.113.81", "198.51.100.9"}
	for day := range 14 {
		for i := range (day*7)%5 + 1 {
			ip := ips[(day+i)%len(ips)]
			at := now.Add(-time.Duration(day)*24*time.Hour - time.Duration(i)*time.Hour)
			fs = append(fs, finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
				Severity: finding.SeverityHigh, Title: "SSH password guessing from " + ip, Time: at, DedupKey: fmt.Sprintf("%s-%d-%d", ip, day, i),
				Evidence: finding.Evidence{SourceIP: ip, Users: []string{"root", "admin"}, Count: 40 + i,
					Lines: []string{"Failed password for root from " + ip + " port 52113 ssh2"}}})
		}
	}
	fs = append(fs, finding.Finding{ID: finding.NewID(), RuleID: "login.root-from-new-network", Category: finding.CategoryLogin,
		Severity: finding.SeverityMedium, Title: "root logged in from a network not seen before", Time: now.Add(-3 * time.Hour),
		DedupKey: "192.0.2.0/24", Evidence: finding.Evidence{SourceIP: "192.0.2.44", Users: []string{"root"}}})
	if _, err := tc.c.Store.IngestFindings(context.Background(), host, fs, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// hookReceiver is a webhook endpoint that records the events whose signature checks out.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events map[string]bool
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{events: map[string]bool{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.secret == "" || r.Header.Get(notify.SignatureHeader) != notify.Sign(h.secret, body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p notify.Payload
		if json.Unmarshal(body, &p) == nil && p.Event.Category == finding.CategoryMalware {
			h.events[p.Event.ID] = true
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) got(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[id]
}

// accessibilityProblems lists, in the page, form controls without an accessible name, images
// and SVG charts without a text alternative, and a missing lang or main landmark.
const accessibilityProblems = `(function(){
	var bad = [];
	document.querySelectorAll("input, select, textarea, button").forEach(function(el){
		if (el.type === "hidden") return;
		var named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim());
		if (!named) bad.push(el.tagName.toLowerCase() + (el.name ? "[name=" + el.name + "]" : ""));
	});
	document.querySelectorAll("img").forEach(function(el){ if (!el.hasAttribute("alt")) bad.push("img without alt"); });
	document.querySelectorAll("svg").forEach(function(el){ if (!el.getAttribute("aria-labelledby") && !el.getAttribute("aria-label")) bad.push("svg without a label"); });
	if (!document.documentElement.lang) bad.push("no lang");
	if (document.querySelectorAll("main").length !== 1) bad.push("not one main landmark");
	return bad.join(", ");
})()`
