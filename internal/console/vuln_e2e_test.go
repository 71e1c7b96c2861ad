package console_test

import (
	"archive/zip"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// osvArchive zips the engine's OSV test records (written from real advisories) as osv.dev
// lays out all.zip.
func osvArchive(t *testing.T) []byte {
	t.Helper()
	files, err := filepath.Glob("../detect/vuln/testdata/osv/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("OSV test records: %v", err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := zw.Create(filepath.Base(f))
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hostVulnsOf(tc *testConsole, host, query string) []store.HostVuln {
	var page api.Page[store.HostVuln]
	tc.call("GET", "/api/v1/hosts/"+host+"/vulns"+query, nil, &page)
	return page.Items
}

// vulnSet reports "advisory package" for each vulnerability.
func vulnSet(vs []store.HostVuln) map[string]store.HostVuln {
	out := map[string]store.HostVuln{}
	for _, v := range vs {
		out[v.Advisory+" "+v.Package] = v
	}
	return out
}

// TestVulnerabilitiesEndToEnd: an agent on a Debian 12 root sends its dpkg inventory; the
// console imports OSV data and shows the host's vulnerabilities; an upgrade seen by a
// collect-inventory task and a newly installed package seen by the database watch change them
// through inventory diffs; an acceptance hides one until it expires.
func TestVulnerabilitiesEndToEnd(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	root := debian12Root(t)
	ta.inventoryRoot = root
	ta.start()
	host := ta.a.HostID()

	var pkgs struct {
		api.Page[map[string]any]
		Inventory *store.HostInventory `json:"inventory"`
	}
	eventually(t, 10*time.Second, "inventory at the console", func() bool {
		tc.call("GET", "/api/v1/hosts/"+host+"/packages", nil, &pkgs)
		return pkgs.Total == 6
	})
	mustf(t, pkgs.Inventory != nil && pkgs.Inventory.OS.ID == "debian" && pkgs.Inventory.OS.VersionID == "12", "inventory head %+v", pkgs.Inventory)
	firstGen := pkgs.Inventory.Generation

	var imp vulndb.ImportResult
	code := doJSONRaw(t, tc, "/api/v1/vulndb/import?source=test", string(osvArchive(t)), &imp)
	mustf(t, code == http.StatusOK && imp.Records["Debian"] == 4 && imp.Name != "", "import: HTTP %d %+v", code, imp)

	var vs map[string]store.HostVuln
	eventually(t, 10*time.Second, "vulnerabilities matched", func() bool {
		vs = vulnSet(hostVulnsOf(tc, host, ""))
		return len(vs) == 4
	})
	for _, want := range []string{"DSA-5724-1 openssh-server", "DSA-5724-1 openssh-client", "DEBIAN-CVE-2023-38545 curl", "DEBIAN-CVE-2023-38545 libcurl4"} {
		if _, ok := vs[want]; !ok {
			t.Errorf("missing %s; have %v", want, keys(vs))
		}
	}
	sshd := vs["DSA-5724-1 openssh-server"]
	mustf(t, sshd.Installed == "1:9.2p1-2+deb12u2" && sshd.Fixed == "1:9.2p1-2+deb12u3" && sshd.FixCommand == "apt-get install --only-upgrade openssh-server" &&
		sshd.Emergency == "regreSSHion" && sshd.Status == "open" && sshd.FixAvailable, "openssh-server: %+v", sshd)
	mustf(t, vs["DEBIAN-CVE-2023-38545 curl"].Severity == "high", "curl severity from Debian's urgency: %+v", vs["DEBIAN-CVE-2023-38545 curl"])

	var emergencies api.Page[api.EmergencyView]
	tc.call("GET", "/api/v1/vulns/emergency", nil, &emergencies)
	for _, e := range emergencies.Items {
		want := map[bool]int{true: 1, false: 0}[e.Name == "regreSSHion"]
		mustf(t, e.Hosts == want, "emergency %s: %d hosts, want %d", e.Name, e.Hosts, want)
	}
	var events api.Page[store.Event]
	eventually(t, 5*time.Second, "emergency event", func() bool {
		tc.call("GET", "/api/v1/events?category=vuln", nil, &events)
		return events.Total == 1 && events.Items[0].RuleID == "vuln.emergency" && strings.Contains(events.Items[0].Title, "regreSSHion")
	})

	// The operator upgrades curl; a collect-inventory task makes the agent look at once.
	status, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	upgraded := strings.ReplaceAll(string(status), "7.88.1-10+deb12u3", "7.88.1-10+deb12u4")
	writeUnder(t, root, "var/lib/dpkg/status", upgraded)
	var tk store.Task
	code = tc.call("POST", "/api/v1/tasks", api.TaskRequest{Type: task.CollectInventory, Params: []byte(`{}`), Hosts: []string{host}}, &tk)
	mustf(t, code == http.StatusCreated, "collect-inventory task: HTTP %d", code)
	eventually(t, 10*time.Second, "curl's vulnerability gone", func() bool {
		vs = vulnSet(hostVulnsOf(tc, host, ""))
		_, curl := vs["DEBIAN-CVE-2023-38545 curl"]
		return len(vs) == 2 && !curl
	})
	eventually(t, 10*time.Second, "task done", func() bool {
		tc.call("GET", "/api/v1/tasks/"+tk.ID, nil, &tk)
		return tk.Hosts[0].State == store.TaskSucceeded
	})

	// A vulnerable package appears; the agent notices the dpkg database changed.
	added := upgraded + "Package: libcurl3-gnutls\nStatus: install ok installed\nArchitecture: amd64\nSource: curl\nVersion: 7.88.1-10+deb12u3\n" +
		"Description: easy-to-use client-side URL transfer library (GnuTLS flavour)\n\n"
	writeUnder(t, root, "var/lib/dpkg/status", added)
	eventually(t, 10*time.Second, "the new package's vulnerability", func() bool {
		vs = vulnSet(hostVulnsOf(tc, host, ""))
		_, ok := vs["DEBIAN-CVE-2023-38545 libcurl3-gnutls"]
		return ok && len(vs) == 3
	})
	tc.call("GET", "/api/v1/hosts/"+host+"/packages", nil, &pkgs)
	mustf(t, pkgs.Total == 7 && pkgs.Inventory.Generation == firstGen+2, "after two diffs: %d packages, generation %d (first %d)",
		pkgs.Total, pkgs.Inventory.Generation, firstGen)

	// Accepting regreSSHion on this host hides it from the open list until the acceptance ends.
	var acc store.Acceptance
	code = tc.call("POST", "/api/v1/vulns/accept", api.AcceptRequest{Advisory: "DSA-5724-1", Host: host, Until: "2s", Comment: "sshd only on the VPN"}, &acc)
	mustf(t, code == http.StatusCreated, "accept: HTTP %d", code)
	open := vulnSet(hostVulnsOf(tc, host, "?status=open"))
	_, still := open["DSA-5724-1 openssh-server"]
	mustf(t, !still && len(open) == 1, "open after accepting: %v", keys(open))
	var exposure api.Page[store.AdvisoryExposure]
	tc.call("GET", "/api/v1/vulns?emergency=true", nil, &exposure)
	mustf(t, exposure.Total == 1 && exposure.Items[0].Hosts == 0 && exposure.Items[0].AcceptedHosts == 1, "exposure while accepted: %+v", exposure.Items)
	eventually(t, 5*time.Second, "acceptance expired", func() bool {
		return len(vulnSet(hostVulnsOf(tc, host, "?status=open"))) == 3
	})
}

// writeUnder replaces a file under root atomically, as dpkg replaces its status file.
func writeUnder(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+"-new", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+"-new", p); err != nil {
		t.Fatal(err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// debian12Root is a file system root with the os-release and dpkg status of a small Debian 12
// host, for an agent's package inventory.
func debian12Root(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	status, err := os.ReadFile("../agent/inventory/testdata/debian12-dpkg-status")
	if err != nil {
		t.Fatal(err)
	}
	writeUnder(t, root, "etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n")
	writeUnder(t, root, "var/lib/dpkg/status", string(status))
	return root
}
