package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
)

// TestBrowserVulnerabilities: an agent on a Debian 12 root sends its dpkg inventory, an admin
// imports OSV data through the API, and in headless Chromium the vulnerability page lists the
// advisory and regreSSHion's exposed host, the host page shows the host's vulnerabilities and
// inventory, and the advisory page accepts the risk on the host and withdraws it again, both in
// the audit log; a viewer sees the advisory but no form.
func TestBrowserVulnerabilities(t *testing.T) {
	tc := startConsole(t)
	code := tc.call("POST", "/api/v1/users", map[string]string{"name": "victor", "role": "viewer", "password": "correct-horse-battery"}, nil)
	mustf(t, code == http.StatusCreated, "create viewer: HTTP %d", code)
	b := newBrowser(t, tc)

	ta := enrollAgent(t, tc)
	root := debian12Root(t)
	ta.inventoryRoot = root
	ta.start()
	host := ta.a.HostID()

	b.login("admin", "correct-horse-battery")
	hostPage := b.waitFor("/hosts/"+host, "6 packages on Debian GNU/Linux 12 (bookworm)", 15*time.Second)
	mustf(t, strings.Contains(hostPage, "No known vulnerabilities"), "host page before any data:\n%s", hostPage)

	var imp vulndb.ImportResult
	code = doJSONRaw(t, tc, "/api/v1/vulndb/import?source=test", string(osvArchive(t)), &imp)
	mustf(t, code == http.StatusOK && imp.Records["Debian"] == 4, "import: HTTP %d %+v", code, imp)

	page := b.waitFor("/vulns", "DEBIAN-CVE-2023-38545", 15*time.Second)
	mustf(t, strings.Contains(page, "DSA-5724-1") && strings.Contains(page, "Advisories 1–2 of 2"), "/vulns:\n%s", page)
	row := b.eval(`(function(){ var r = [...document.querySelectorAll("table.emergencies tbody tr")].find(function(tr){ return tr.querySelector("th").textContent === "regreSSHion"; });
		return r ? [...r.querySelectorAll("td")].map(function(td){ return td.textContent.trim(); }).join("|") : ""; })()`)
	mustf(t, row == "CVE-2024-6387|1 host|0 hosts|DSA-5724-1", "regreSSHion row: %q", row)
	mustf(t, strings.Contains(b.eval(`document.querySelector('nav a[aria-current="page"]').textContent`), "Vulnerabilities"), "navigation does not mark the page")
	b.screenshot("/vulns", "vulns")

	hostPage = b.open("/hosts/" + host)
	for _, want := range []string{"4 open, 0 accepted", "DSA-5724-1", "openssh-server", "1:9.2p1-2+deb12u3", "apt-get install --only-upgrade openssh-server"} {
		mustf(t, strings.Contains(hostPage, want), "host page lacks %q:\n%s", want, hostPage)
	}
	b.screenshot("/hosts/"+host, "host-vulns")

	// Accept the risk of regreSSHion on this host from the advisory page.
	b.do("open the advisory", chromedp.Click(chromedp.CSS(`main table a[href="/vulns/DSA-5724-1"]`)), chromedp.WaitVisible(chromedp.ID("acc-h")))
	adv := b.text("main")
	mustf(t, strings.Contains(adv, "CVE-2024-6387") && strings.Contains(adv, "openssh-client") && strings.Contains(adv, "Not accepted on any host"), "advisory page:\n%s", adv)
	b.do("accept the risk",
		chromedp.SetValue(chromedp.ID("acc-scope"), host),
		chromedp.SetValue(chromedp.ID("acc-until"), "720h"),
		chromedp.SendKeys(chromedp.ID("acc-comment"), "sshd only reachable over the VPN"),
		chromedp.Click(chromedp.CSS(`form[action="/vulns/DSA-5724-1/accept"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")))
	adv = b.text("main")
	mustf(t, strings.Contains(adv, "Risk accepted") && strings.Contains(adv, "sshd only reachable over the VPN") && strings.Contains(adv, "accepted until"),
		"advisory page after accepting:\n%s", adv)
	b.screenshot(b.eval(`location.pathname`), "vuln")
	vs := hostVulnsOf(tc, host, "?status=accepted")
	mustf(t, len(vs) == 2 && vs[0].Acceptance != nil && vs[0].Acceptance.CreatedBy == "admin", "accepted through the page: %+v", vs)

	for _, path := range []string{"/vulns", "/vulns/DSA-5724-1", "/hosts/" + host} {
		b.open(path)
		if bad := b.eval(accessibilityProblems); bad != "" {
			t.Errorf("accessibility on %s: %s", path, bad)
		}
	}

	// A viewer sees the acceptance but no form; the admin withdraws it.
	b.logout()
	b.login("victor", "correct-horse-battery")
	viewer := b.open("/vulns/DSA-5724-1")
	mustf(t, strings.Contains(viewer, "sshd only reachable over the VPN") && !strings.Contains(viewer, "Accept risk") && !strings.Contains(viewer, "Withdraw"),
		"viewer's advisory page:\n%s", viewer)
	b.logout()
	b.login("admin", "correct-horse-battery")
	b.open("/vulns/DSA-5724-1")
	b.do("withdraw", chromedp.Click(chromedp.CSS(`form[action$="/withdraw"] button`)), chromedp.WaitVisible(chromedp.CSS("p.notice")))
	mustf(t, strings.Contains(b.text("main"), "Not accepted on any host"), "after withdrawing:\n%s", b.text("main"))
	mustf(t, len(hostVulnsOf(tc, host, "?status=accepted")) == 0, "still accepted after withdrawing")
	audit := b.open("/audit?action=vuln.accept")
	mustf(t, strings.Contains(audit, fmt.Sprintf("DSA-5724-1 on %s", host)) && strings.Contains(audit, "sshd only reachable over the VPN"), "audit log:\n%s", audit)
	audit = b.open("/audit?action=vuln.accept-delete")
	mustf(t, strings.Contains(audit, fmt.Sprintf("DSA-5724-1 on %s", host)), "audit log of the withdrawal:\n%s", audit)
}
