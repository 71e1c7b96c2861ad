package web

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// seedVulns gives h-1 an inventory with openssh (regreSSHion, DSA-5724-1, high, fixable), a
// summary holding markup, and extra low-severity advisories without a fix.
func seedVulns(t *testing.T, fx *fixture, extra int) {
	t.Helper()
	ctx := context.Background()
	sshd := finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u2", Location: "/var/lib/dpkg/status"}
	pkgs := []finding.Package{sshd}
	for i := range extra {
		pkgs = append(pkgs, finding.Package{Ecosystem: "Debian:12", Name: fmt.Sprintf("libfoo%d", i), Version: "1.0-1"})
	}
	if err := fx.st.ReplaceInventory(ctx, "h-1", 1, store.OSRelease{ID: "debian", VersionID: "12", Pretty: "Debian GNU/Linux 12 (bookworm)"}, pkgs); err != nil {
		t.Fatal(err)
	}
	hv := store.NewHostVuln("h-1", sshd)
	hv.Advisory, hv.Aliases, hv.Summary = "DSA-5724-1", []string{"CVE-2024-6387"}, "openssh <script>alert(1)</script> security update"
	hv.Severity, hv.Score, hv.Fixed, hv.Emergency = "high", 8.1, "1:9.2p1-2+deb12u3", "regreSSHion"
	hv.FixCommand = "apt-get install --only-upgrade openssh-server"
	vs := []store.HostVuln{hv}
	for i, p := range pkgs[1:] {
		v := store.NewHostVuln("h-1", p)
		v.Advisory, v.Severity, v.Summary = fmt.Sprintf("DLA-%04d-1", i), "low", "libfoo issue"
		vs = append(vs, v)
	}
	if _, _, err := fx.st.ReplaceHostVulns(ctx, "h-1", vs); err != nil {
		t.Fatal(err)
	}
}

func TestVulnerabilityPagesRender(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("victor")
	// Before any inventory: every emergency answers "0 hosts", the host page says so.
	page := c.get("/vulns").Body.String()
	for _, want := range []string{"Emergency vulnerabilities", "regreSSHion", "Log4Shell", "0 hosts", "No vulnerabilities match", `aria-current="page">Vulnerabilities`} {
		if !strings.Contains(page, want) {
			t.Errorf("/vulns without data lacks %q", want)
		}
	}
	if body := c.get("/hosts/h-1").Body.String(); !strings.Contains(body, "No inventory yet") {
		t.Error("host page without an inventory does not say so")
	}

	seedVulns(t, fx, 2)
	w := c.get("/vulns")
	page = w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("/vulns: HTTP %d", w.Code)
	}
	for _, want := range []string{`<a href="/vulns/DSA-5724-1">DSA-5724-1</a>`, "CVE-2024-6387", "8.1", "DLA-0001-1", "Advisories 1–3 of 3", "1 host"} {
		if !strings.Contains(page, want) {
			t.Errorf("/vulns lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("/vulns: advisory summary not escaped")
	}
	// The emergency section comes first, the table after it.
	if e, a := strings.Index(page, "Emergency vulnerabilities"), strings.Index(page, "Advisories 1–3"); e < 0 || a < e {
		t.Error("emergency section is not first")
	}
	for path, want := range map[string][]string{
		"/vulns?severity=high":               {"Advisories 1–1 of 1", "DSA-5724-1"},
		"/vulns?fixable=true":                {"Advisories 1–1 of 1"},
		"/vulns?emergency=true&severity=low": {"Advisories 1–1 of 1"},
		"/vulns?host=h-1":                    {"on <a href=\"/hosts/h-1\">web-01.example.com</a>", "Advisories 1–3 of 3"},
		"/vulns/DSA-5724-1":                  {"CVE-2024-6387", "openssh-server", "1:9.2p1-2&#43;deb12u3", "apt-get install --only-upgrade openssh-server", `<a href="/hosts/h-1">web-01.example.com</a>`, "Not accepted on any host"},
		"/hosts/h-1":                         {"3 open, 0 accepted", "3 packages</a> on Debian GNU/Linux 12 (bookworm)", `<a href="/vulns/DSA-5724-1">DSA-5724-1</a>`, "apt-get install --only-upgrade openssh-server"},
	} {
		w := c.get(path)
		for _, s := range want {
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), s) {
				t.Errorf("GET %s: HTTP %d, want 200 with %q", path, w.Code, s)
			}
		}
		if strings.Contains(w.Body.String(), "<script>alert(1)") {
			t.Errorf("GET %s: summary not escaped", path)
		}
	}
	if w := c.get("/vulns?severity=urgent"); w.Code != http.StatusBadRequest {
		t.Errorf("unknown severity filter: HTTP %d, want 400", w.Code)
	}
	if w := c.get("/vulns/DSA-0000-0"); w.Code != http.StatusNotFound {
		t.Errorf("unknown advisory: HTTP %d, want 404", w.Code)
	}
	if w := c.get("/vulns?host=h-none"); w.Code != http.StatusNotFound {
		t.Errorf("unknown host filter: HTTP %d, want 404", w.Code)
	}
}

func TestHostPageListsTheMostUrgentFiftyAndLinksToTheRest(t *testing.T) {
	fx := newFixture(t)
	seedVulns(t, fx, 60)
	c := fx.login("victor")
	body := c.get("/hosts/h-1").Body.String()
	if n := strings.Count(body, `<a href="/vulns/D`); n != hostVulnLimit {
		t.Errorf("host page lists %d vulnerabilities, want %d", n, hostVulnLimit)
	}
	if i, j := strings.Index(body, "DSA-5724-1"), strings.Index(body, "DLA-"); i < 0 || j < i {
		t.Error("the high-severity advisory is not listed before the low ones")
	}
	for _, want := range []string{"61 open, 0 accepted", `<a href="/vulns?host=h-1">`, "11 more"} {
		if !strings.Contains(body, want) {
			t.Errorf("host page lacks %q", want)
		}
	}
	if w := c.get("/vulns?host=h-1&offset=50"); !strings.Contains(w.Body.String(), "Advisories 51–61 of 61") || !strings.Contains(w.Body.String(), `rel="prev"`) {
		t.Errorf("second page of the host's advisories: HTTP %d", w.Code)
	}
}

func TestAnalystAcceptsAndWithdrawsARiskFromTheAdvisoryPage(t *testing.T) {
	fx := newFixture(t)
	seedVulns(t, fx, 1)
	ctx := t.Context()
	c := fx.login("alice")
	page := c.get("/vulns/DSA-5724-1").Body.String()
	for _, want := range []string{`action="/vulns/DSA-5724-1/accept"`, `<option value="h-1">web-01.example.com</option>`, "Accept risk", `name="csrf_token"`} {
		if !strings.Contains(page, want) {
			t.Errorf("analyst's advisory page lacks %q", want)
		}
	}
	if w := c.post("/vulns/DSA-5724-1/accept", c.form("scope", "h-1", "until", "720h", "comment", " ")); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), "comment is required") {
		t.Errorf("accept without a comment: HTTP %d, want 400", w.Code)
	}
	if w := c.post("/vulns/DSA-5724-1/accept", c.form("scope", "h-1", "until", "9000h", "comment", "firewalled")); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), "at most 366 days") {
		t.Errorf("accept for too long: HTTP %d, want the API's 400", w.Code)
	}
	if w := c.post("/vulns/DSA-5724-1/accept", c.form("scope", "", "until", "720h", "comment", "no scope chosen")); w.Code != http.StatusBadRequest {
		t.Errorf("accept without a scope: HTTP %d, want 400", w.Code)
	}
	if w := c.post("/vulns/DSA-5724-1/accept", c.form("scope", "h-none", "until", "720h", "comment", "x")); w.Code != http.StatusNotFound {
		t.Errorf("accept on an unknown host: HTTP %d, want 404", w.Code)
	}
	w := c.post("/vulns/DSA-5724-1/accept", c.form("scope", "h-1", "until", "720h", "comment", "sshd only on the VPN"))
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/vulns/DSA-5724-1?done=accepted" {
		t.Fatalf("accept: HTTP %d to %q: %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	vs, _, _ := fx.st.HostVulns(ctx, store.VulnFilter{HostID: "h-1", Advisory: "DSA-5724-1"})
	if len(vs) != 1 || vs[0].Status != "accepted" || vs[0].Acceptance.CreatedBy != "alice" || vs[0].Acceptance.Comment != "sshd only on the VPN" {
		t.Fatalf("after accepting: %+v", vs)
	}
	if d := time.Until(vs[0].Acceptance.Until); d < 719*time.Hour || d > 721*time.Hour {
		t.Errorf("accepted until %v, want 720h from now", vs[0].Acceptance.Until)
	}
	page = c.get("/vulns/DSA-5724-1?done=accepted").Body.String()
	for _, want := range []string{"Risk accepted", "sshd only on the VPN", "accepted until", `action="/vulns/acceptances/` + vs[0].Acceptance.ID + `/withdraw"`} {
		if !strings.Contains(page, want) {
			t.Errorf("advisory page after accepting lacks %q", want)
		}
	}
	if body := c.get("/hosts/h-1").Body.String(); !strings.Contains(body, "1 open, 1 accepted") {
		t.Error("host page does not count the accepted vulnerability")
	}
	if body := c.get("/vulns").Body.String(); !regexp.MustCompile(`regreSSHion</th>\s*<td><code>CVE-2024-6387</code></td>\s*<td class="num">0 hosts</td>\s*<td class="num">1 host</td>`).MatchString(body) {
		t.Error("emergency section does not show regreSSHion as 0 exposed, 1 accepted")
	}

	// All hosts, until a date.
	until := time.Now().UTC().AddDate(0, 2, 0).Format(time.DateOnly)
	if w := c.post("/vulns/DLA-0000-1/accept", c.form("scope", "all", "until", until, "comment", "no exploit path")); w.Code != http.StatusSeeOther {
		t.Fatalf("accept on all hosts until %s: HTTP %d: %s", until, w.Code, w.Body)
	}
	acc, _ := fx.st.Acceptances(ctx, false)
	var all store.Acceptance
	for _, a := range acc {
		if a.Advisory == "DLA-0000-1" {
			all = a
		}
	}
	if all.HostID != "" || all.Until.Format(time.DateOnly) != until {
		t.Errorf("acceptance on all hosts: %+v, want until %s", all, until)
	}
	if !strings.Contains(c.get("/vulns/DLA-0000-1").Body.String(), "all hosts") {
		t.Error("advisory page does not show the acceptance on all hosts")
	}

	if w := c.post("/vulns/acceptances/"+vs[0].Acceptance.ID+"/withdraw", c.form()); w.Code != http.StatusSeeOther ||
		w.Header().Get("Location") != "/vulns/DSA-5724-1?done=withdrawn" {
		t.Fatalf("withdraw: HTTP %d to %q", w.Code, w.Header().Get("Location"))
	}
	if vs, _, _ = fx.st.HostVulns(ctx, store.VulnFilter{HostID: "h-1", Advisory: "DSA-5724-1"}); vs[0].Status != "open" {
		t.Errorf("after withdrawing: status %s", vs[0].Status)
	}
	if w := c.post("/vulns/acceptances/va-none/withdraw", c.form()); w.Code != http.StatusNotFound {
		t.Errorf("withdraw an unknown acceptance: HTTP %d, want 404", w.Code)
	}
	// The page actions are audited exactly like the API's.
	for action, target := range map[string]string{"vuln.accept": "DSA-5724-1 on h-1", "vuln.accept-delete": "DSA-5724-1 on h-1"} {
		es, _ := fx.st.ListAudit(ctx, "alice", action, 10, 0)
		found := false
		for _, e := range es {
			found = found || e.Target == target
		}
		if !found {
			t.Errorf("audit of alice has no %s on %q: %+v", action, target, es)
		}
	}
	if es, _ := fx.st.ListAudit(ctx, "alice", "vuln.accept", 10, 0); len(es) != 2 {
		t.Errorf("audit entries vuln.accept: %d, want 2 (host and all hosts)", len(es))
	}
}

func TestAcceptFormsNeedCSRFAndTheAnalystRole(t *testing.T) {
	fx := newFixture(t)
	seedVulns(t, fx, 0)
	ctx := t.Context()
	a := fx.login("alice")
	if w := a.post("/vulns/DSA-5724-1/accept", map[string][]string{"scope": {"h-1"}, "until": {"720h"}, "comment": {"x"}}); w.Code != http.StatusForbidden {
		t.Errorf("accept without CSRF token: HTTP %d, want 403", w.Code)
	}
	if w := a.post("/vulns/DSA-5724-1/accept", map[string][]string{"csrf_token": {strings.Repeat("0", len(a.csrf))}, "scope": {"h-1"}, "until": {"720h"}, "comment": {"x"}}); w.Code != http.StatusForbidden {
		t.Errorf("accept with a wrong CSRF token: HTTP %d, want 403", w.Code)
	}
	_, err := fx.st.AcceptVuln(ctx, store.Acceptance{ID: "va-1", Advisory: "DSA-5724-1", HostID: "h-1", Until: fx.st.Now().Add(time.Hour), CreatedBy: "admin", Comment: "seeded"})
	if err != nil {
		t.Fatal(err)
	}
	if w := a.post("/vulns/acceptances/va-1/withdraw", map[string][]string{}); w.Code != http.StatusForbidden {
		t.Errorf("withdraw without CSRF token: HTTP %d, want 403", w.Code)
	}

	v := fx.login("victor")
	page := v.get("/vulns/DSA-5724-1").Body.String()
	for _, no := range []string{"Accept risk", "Withdraw", "/accept\"", "/withdraw\""} {
		if strings.Contains(page, no) {
			t.Errorf("viewer sees %q on the advisory page", no)
		}
	}
	if !strings.Contains(page, "seeded") {
		t.Error("viewer does not see the current acceptance")
	}
	if w := v.post("/vulns/DSA-5724-1/accept", v.form("scope", "all", "until", "720h", "comment", "forged")); w.Code != http.StatusForbidden {
		t.Errorf("viewer accepting: HTTP %d, want 403", w.Code)
	}
	if w := v.post("/vulns/acceptances/va-1/withdraw", v.form()); w.Code != http.StatusForbidden {
		t.Errorf("viewer withdrawing: HTTP %d, want 403", w.Code)
	}
	as, _ := fx.st.Acceptances(ctx, true)
	if len(as) != 1 || as[0].ID != "va-1" {
		t.Errorf("acceptances after the refused forms: %+v", as)
	}
	if es, _ := fx.st.ListAudit(ctx, "", "vuln.accept", 10, 0); len(es) != 0 {
		t.Errorf("refused forms were audited as accepted: %+v", es)
	}
}

func TestHostPackagesPage(t *testing.T) {
	fx := newFixture(t)
	c := fx.login("victor")
	seedVulns(t, fx, 60)
	host := c.get("/hosts/h-1").Body.String()
	if !strings.Contains(host, `href="/hosts/h-1/packages">61 packages</a>`) {
		t.Errorf("host page does not link its 61 packages")
	}
	page := c.get("/hosts/h-1/packages").Body.String()
	for _, want := range []string{"Packages 1–50 of 61", "libfoo0", "Debian:12", `rel="next"`} {
		if !strings.Contains(page, want) {
			t.Errorf("packages page lacks %q", want)
		}
	}
	page = c.get("/hosts/h-1/packages?offset=50").Body.String() // ordered by name: openssh last
	for _, want := range []string{"Packages 51–61 of 61", "openssh-server", "1:9.2p1-2", "<td>openssh</td>", "/var/lib/dpkg/status"} {
		if !strings.Contains(page, want) {
			t.Errorf("second page lacks %q", want)
		}
	}
	if page := c.get("/hosts/h-1/packages?name=ssh").Body.String(); !strings.Contains(page, "Packages 1–1 of 1") || strings.Contains(page, "libfoo") {
		t.Errorf("name filter: %s", page)
	}
	if w := c.get("/hosts/nope/packages"); w.Code != http.StatusNotFound {
		t.Errorf("unknown host: HTTP %d", w.Code)
	}
}
