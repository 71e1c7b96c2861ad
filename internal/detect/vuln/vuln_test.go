package vuln

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/osv-scalibr/semantic"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// zipDir packs every file of dir into an in-memory zip, as osv.dev's all.zip is laid out.
func zipDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no OSV records in %s: %v", dir, err)
	}
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

func testIndex(t testing.TB) *Index {
	t.Helper()
	data := zipDir(t, "testdata/osv")
	b := NewBuilder(BuiltinEmergency())
	st, err := b.LoadArchive(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 1 {
		t.Errorf("skipped %d records, want 1 (the withdrawn one)", st.Skipped)
	}
	return b.Build()
}

func TestVersionOrderingPerEcosystem(t *testing.T) {
	tests := []struct {
		eco, lower, higher string
	}{
		{"Debian", "1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3"},
		{"Debian", "9.9p1-1", "1:8.0p1-1"},                      // epoch beats everything after it
		{"Debian", "1.0~rc1-1", "1.0-1"},                        // tilde sorts before the empty string
		{"Debian", "5.6.1-1", "5.6.1+really5.4.5-1"},            // the xz downgrade-by-name
		{"Debian", "2.36-9+deb12u2", "2.36-9+deb12u3"},          // stable updates
		{"Ubuntu", "1:8.9p1-3ubuntu0.7", "1:8.9p1-3ubuntu0.10"}, // numeric, not lexical
		{"Red Hat", "2.34-60.el9", "2.34-60.el9_2.7"},
		{"AlmaLinux", "2.0-1.el9", "1:1.0-1.el9"}, // RPM epoch
		{"Rocky Linux", "8.7p1-38.el9", "8.7p1-38.el9_4.1"},
		{"Alpine", "9.7_p1-r3", "9.7_p1-r4"},
		{"Alpine", "1.2.3_rc1-r0", "1.2.3-r0"},
		{"npm", "1.0.0-alpha", "1.0.0"},
		{"npm", "4.17.9", "4.17.21"},
		{"PyPI", "3.1.3rc1", "3.1.3"},
		{"PyPI", "3.1.2.post1", "3.1.3"},
		{"Maven", "2.0-beta9", "2.0"},
		{"Maven", "2.14.1", "2.15.0"},
	}
	for _, tt := range tests {
		lo, hi := parseVersion(tt.eco, tt.lower), parseVersion(tt.eco, tt.higher)
		if lo == nil || hi == nil {
			t.Errorf("%s: %q or %q does not parse", tt.eco, tt.lower, tt.higher)
			continue
		}
		if c := cmp(lo, hi); c >= 0 {
			t.Errorf("%s: %q vs %q = %d, want lower", tt.eco, tt.lower, tt.higher, c)
		}
	}
}

func TestRangeSemantics(t *testing.T) {
	rng := func(events ...Event) compiledRange {
		r, bad := compileRange("PyPI", Range{Type: "ECOSYSTEM", Events: events})
		if bad != 0 {
			t.Fatalf("bad versions in %v", events)
		}
		return r
	}
	tests := []struct {
		name      string
		r         compiledRange
		version   string
		affected  bool
		wantFixed string
	}{
		{"below introduced", rng(Event{Introduced: "1.0"}, Event{Fixed: "1.5"}), "0.9", false, ""},
		{"at introduced", rng(Event{Introduced: "1.0"}, Event{Fixed: "1.5"}), "1.0", true, "1.5"},
		{"at fixed", rng(Event{Introduced: "1.0"}, Event{Fixed: "1.5"}), "1.5", false, ""},
		{"introduced 0", rng(Event{Introduced: "0"}, Event{Fixed: "1.5"}), "0.0.1", true, "1.5"},
		{"last_affected inclusive", rng(Event{Introduced: "0"}, Event{LastAffected: "2.0"}), "2.0", true, ""},
		{"above last_affected", rng(Event{Introduced: "0"}, Event{LastAffected: "2.0"}), "2.0.1", false, ""},
		{"second interval", rng(Event{Introduced: "1.0"}, Event{Fixed: "1.2"}, Event{Introduced: "2.0"}, Event{Fixed: "2.3"}), "2.1", true, "2.3"},
		{"between intervals", rng(Event{Introduced: "1.0"}, Event{Fixed: "1.2"}, Event{Introduced: "2.0"}, Event{Fixed: "2.3"}), "1.5", false, ""},
		{"events out of order", rng(Event{Fixed: "2.3"}, Event{Introduced: "2.0"}), "2.1", true, "2.3"},
		{"no fix yet", rng(Event{Introduced: "0"}), "99", true, ""},
		{"limit excludes", rng(Event{Introduced: "0"}, Event{Limit: "3.0"}), "3.1", false, ""},
		{"limit includes", rng(Event{Introduced: "0"}, Event{Limit: "3.0"}), "2.9", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fixed := tt.r.affects(semantic.MustParse(tt.version, "PyPI"))
			if got != tt.affected || fixed != tt.wantFixed {
				t.Errorf("affects(%s) = %v, %q; want %v, %q", tt.version, got, fixed, tt.affected, tt.wantFixed)
			}
		})
	}
}

func TestMatchPackages(t *testing.T) {
	idx := testIndex(t)
	tests := []struct {
		name    string
		pkg     finding.Package
		want    []string // advisory IDs
		fixed   string
		command string
	}{
		{"debian binary package matched by source name",
			finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u2"},
			[]string{"DSA-5724-1"}, "1:9.2p1-2+deb12u3", "apt-get install --only-upgrade openssh-server"},
		{"debian fixed version installed",
			finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u3"}, nil, "", ""},
		{"debian other release not matched",
			finding.Package{Ecosystem: "Debian:11", Name: "openssh-server", SourceName: "openssh", Version: "1:8.4p1-5+deb11u1"}, nil, "", ""},
		{"debian per-release fixed version",
			finding.Package{Ecosystem: "Debian:11", Name: "libc6", SourceName: "glibc", Version: "2.31-13+deb11u6"},
			[]string{"DEBIAN-CVE-2023-4911"}, "2.31-13+deb11u7", "apt-get install --only-upgrade libc6"},
		{"debian source equals binary",
			finding.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10+deb12u3"}, []string{"DEBIAN-CVE-2023-38545"}, "7.88.1-10+deb12u4", "apt-get install --only-upgrade curl"},
		{"xz backdoor only from 5.6.0",
			finding.Package{Ecosystem: "Debian:13", Name: "liblzma5", SourceName: "xz-utils", Version: "5.4.5-0.3"}, nil, "", ""},
		{"xz backdoor version",
			finding.Package{Ecosystem: "Debian:13", Name: "liblzma5", SourceName: "xz-utils", Version: "5.6.1-1"},
			[]string{"DEBIAN-CVE-2024-3094"}, "5.6.1+really5.4.5-1", "apt-get install --only-upgrade liblzma5"},
		{"ubuntu LTS suffix ignored",
			finding.Package{Ecosystem: "Ubuntu:22.04", Name: "openssh-client", SourceName: "openssh", Version: "1:8.9p1-3ubuntu0.7"},
			[]string{"UBUNTU-CVE-2024-6387"}, "1:8.9p1-3ubuntu0.10", "apt-get install --only-upgrade openssh-client"},
		{"ubuntu pro records do not apply to plain releases",
			finding.Package{Ecosystem: "Ubuntu:18.04", Name: "openssh-client", SourceName: "openssh", Version: "1:7.6p1-4ubuntu0.7"}, nil, "", ""},
		{"alpine origin and -rN",
			finding.Package{Ecosystem: "Alpine:v3.20", Name: "openssh-server", SourceName: "openssh", Version: "9.7_p1-r3"},
			[]string{"ALPINE-CVE-2024-6387"}, "9.7_p1-r4", "apk upgrade openssh-server"},
		{"alpine patch release normalised",
			finding.Package{Ecosystem: "Alpine:3.19.1", Name: "openssh", Version: "9.6_p1-r0"}, []string{"ALPINE-CVE-2024-6387"}, "9.6_p1-r1", "apk upgrade openssh"},
		{"rocky binary rpm names, minor release ignored",
			finding.Package{Ecosystem: "Rocky Linux:9.4", Name: "openssh-server", SourceName: "openssh", Version: "8.7p1-38.el9"},
			[]string{"RLSA-2024:4312"}, "8.7p1-38.el9_4.1", "dnf upgrade openssh-server"},
		{"alma glibc looney tunables",
			finding.Package{Ecosystem: "AlmaLinux:9", Name: "glibc", Version: "2.34-60.el9"}, []string{"ALSA-2023:5453"}, "2.34-60.el9_2.7", "dnf upgrade glibc"},
		{"rpm epoch makes it newer",
			finding.Package{Ecosystem: "AlmaLinux:9", Name: "glibc", Version: "1:2.34-60.el9"}, nil, "", ""},
		{"log4j 2.14.1", finding.Package{Ecosystem: "Maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1"},
			[]string{"GHSA-jfh8-c2jp-5v3q"}, "2.15.0", "upgrade org.apache.logging.log4j:log4j-core to 2.15.0 in the application that bundles it, then redeploy"},
		{"log4j 2.12.1 in the older interval", finding.Package{Ecosystem: "Maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.12.1"},
			[]string{"GHSA-jfh8-c2jp-5v3q"}, "2.12.2", "upgrade org.apache.logging.log4j:log4j-core to 2.12.2 in the application that bundles it, then redeploy"},
		{"log4j 2.12.4 between intervals", finding.Package{Ecosystem: "Maven", Name: "org.apache.logging.log4j:log4j-core", Version: "2.12.4"}, nil, "", ""},
		{"pypi prerelease of the fix is affected", finding.Package{Ecosystem: "PyPI", Name: "Jinja2", Version: "3.1.3rc1"},
			[]string{"GHSA-h5c8-rqwp-cp95"}, "3.1.3", "pip install --upgrade 'Jinja2>=3.1.3'"},
		{"npm semver", finding.Package{Ecosystem: "npm", Name: "lodash", Version: "4.17.20"}, []string{"GHSA-35jh-r3h4-6jhm"}, "4.17.21", "npm install lodash@4.17.21"},
		{"go module with v prefix", finding.Package{Ecosystem: "Go", Name: "golang.org/x/net", Version: "v0.15.0"}, []string{"GO-2023-2102"}, "0.17.0", "go get golang.org/x/net@v0.17.0 && rebuild the binary"},
		{"unknown ecosystem", finding.Package{Ecosystem: "Fedora:40", Name: "openssh", Version: "9.6p1-1.fc40"}, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms := idx.MatchPackages([]finding.Package{tt.pkg})
			var ids []string
			for _, m := range ms {
				ids = append(ids, m.Advisory.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("matched %v, want %v", ids, tt.want)
			}
			if len(ms) == 1 && (ms[0].Fixed != tt.fixed || ms[0].FixCommand != tt.command) {
				t.Errorf("fixed %q, command %q; want %q, %q", ms[0].Fixed, ms[0].FixCommand, tt.fixed, tt.command)
			}
		})
	}
}

func TestSeverityAndEmergency(t *testing.T) {
	idx := testIndex(t)
	tests := []struct {
		id, severity string
		score        float64
		emergency    string
	}{
		{"GHSA-jfh8-c2jp-5v3q", "critical", 10.0, "Log4Shell"},
		{"UBUNTU-CVE-2024-6387", "high", 8.1, "regreSSHion"},
		{"DSA-5724-1", "unknown", 0, "regreSSHion"},
		{"DEBIAN-CVE-2023-38545", "high", 0, ""},
		{"ALSA-2023:5453", "unknown", 0, "Looney Tunables"},
		{"DEBIAN-CVE-2024-3094", "unknown", 0, "XZ Utils backdoor"},
		{"GHSA-35jh-r3h4-6jhm", "high", 7.2, ""},
		{"GHSA-h5c8-rqwp-cp95", "medium", 5.4, ""},
	}
	for _, tt := range tests {
		a, ok := idx.Advisory(tt.id)
		if !ok {
			t.Errorf("%s not indexed", tt.id)
			continue
		}
		name := ""
		if a.Emergency != nil {
			name = a.Emergency.Name
		}
		if a.Severity != tt.severity || a.Score != tt.score || name != tt.emergency {
			t.Errorf("%s: severity %s score %v emergency %q; want %s %v %q", tt.id, a.Severity, a.Score, name, tt.severity, tt.score, tt.emergency)
		}
	}
}

func TestCVSS3BaseScore(t *testing.T) {
	tests := []struct {
		vector string
		want   float64
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8}, // PwnKit, Looney Tunables
		{"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1}, // regreSSHion
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1}, // typical XSS
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6},
	}
	for _, tt := range tests {
		got, err := CVSS3BaseScore(tt.vector)
		if err != nil || got != tt.want {
			t.Errorf("%s = %v, %v; want %v", tt.vector, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "CVSS:2.0/AV:N", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"} {
		if _, err := CVSS3BaseScore(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewerRecordReplacesOlder(t *testing.T) {
	b := NewBuilder(nil)
	old, _ := ParseRecord([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"}]}]}]}`))
	fresh, _ := ParseRecord([]byte(`{"id":"X-1","modified":"2024-02-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.0"}]}]}]}`))
	b.AddRecord(fresh)
	b.AddRecord(old)
	ms := b.Build().MatchPackages([]finding.Package{{Ecosystem: "PyPI", Name: "a", Version: "1.5"}})
	if len(ms) != 1 || ms[0].Fixed != "2.0" {
		t.Fatalf("got %+v, want the newer record (fixed 2.0)", ms)
	}
	if st := b.Build().Stats(); st.Records["PyPI"] != 1 {
		t.Errorf("records %v, want PyPI 1", st.Records)
	}
}

func TestEmergencyListIsStrict(t *testing.T) {
	if len(BuiltinEmergency().All()) < 10 {
		t.Error("built-in emergency list lost entries")
	}
	for _, bad := range []string{"- id: CVE-2024-1\n  name: x\n  description: y\n", "- id: CVE-2024-6387\n  name: x\n  description: y\n  typo: 1\n",
		"- id: CVE-2024-6387\n  name: x\n  description: y\n- id: CVE-2024-6387\n  name: x\n  description: y\n"} {
		if _, err := ParseEmergency([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
