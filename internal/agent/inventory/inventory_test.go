package inventory

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// writeFile writes data under root, creating directories.
func writeFile(t *testing.T, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jar builds a Java archive holding the Maven coordinates as a real build writes them, and
// any nested archives.
func jar(t *testing.T, group, artifact, version string, nested map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("META-INF/MANIFEST.MF")
	w.Write([]byte("Manifest-Version: 1.0\r\nCreated-By: Maven JAR Plugin 3.2.0\r\n\r\n"))
	if group != "" {
		w, _ = zw.Create("META-INF/maven/" + group + "/" + artifact + "/pom.properties")
		w.Write([]byte("artifactId=" + artifact + "\ngroupId=" + group + "\nversion=" + version + "\n"))
	}
	for name, b := range nested {
		w, _ = zw.Create(name)
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func find(pkgs []finding.Package, eco, name string) (finding.Package, bool) {
	for _, p := range pkgs {
		if p.Ecosystem == eco && p.Name == name {
			return p, true
		}
	}
	return finding.Package{}, false
}

func TestCollectDebianWithLanguagePackages(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"))
	writeFile(t, root, "var/lib/dpkg/status", testdata(t, "debian12-dpkg-status"))
	log4j := jar(t, "org.apache.logging.log4j", "log4j-core", "2.14.1", nil)
	writeFile(t, root, "opt/shop/shop.war", jar(t, "", "", "", map[string][]byte{"WEB-INF/lib/log4j-core-2.14.1.jar": log4j}))
	writeFile(t, root, "opt/venv/lib/python3.11/site-packages/Jinja2-3.1.2.dist-info/METADATA", []byte("Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\nSummary: A very fast and expressive template engine.\n"))
	writeFile(t, root, "srv/web/node_modules/lodash/package.json", []byte(`{"name":"lodash","version":"4.17.20","license":"MIT","main":"lodash.js"}`))
	goBinary(t, filepath.Join(root, "usr/local/bin/hello"))

	inv, err := Collect(context.Background(), Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if inv.OS.ID != "debian" || inv.OS.VersionID != "12" {
		t.Errorf("os-release %+v", inv.OS)
	}
	ssh, ok := find(inv.Packages, "Debian:12", "openssh-server")
	if !ok || ssh.SourceName != "openssh" || ssh.Version != "1:9.2p1-2+deb12u2" || ssh.Arch != "amd64" || ssh.Location != "/var/lib/dpkg/status" {
		t.Errorf("openssh-server = %+v, %v", ssh, ok)
	}
	if c, ok := find(inv.Packages, "Debian:12", "curl"); !ok || c.SourceName != "" {
		t.Errorf("curl = %+v, %v (its source has its own name, so none is recorded)", c, ok)
	}
	if _, ok := find(inv.Packages, "Debian:12", "vim-tiny"); ok {
		t.Error("a removed package (config files only) is listed")
	}
	l, ok := find(inv.Packages, "Maven", "org.apache.logging.log4j:log4j-core")
	if !ok || l.Version != "2.14.1" || !strings.Contains(l.Location, "shop.war") {
		t.Errorf("log4j nested in a war = %+v, %v", l, ok)
	}
	if j, ok := find(inv.Packages, "PyPI", "Jinja2"); !ok || j.Version != "3.1.2" {
		t.Errorf("Jinja2 = %+v, %v", j, ok)
	}
	if n, ok := find(inv.Packages, "npm", "lodash"); !ok || n.Version != "4.17.20" {
		t.Errorf("lodash = %+v, %v", n, ok)
	}
	if g, ok := find(inv.Packages, "Go", "stdlib"); !ok || g.Location != "/usr/local/bin/hello" {
		t.Errorf("Go binary's stdlib = %+v, %v", g, ok)
	}
}

// goBinary builds a tiny Go program, so that its build information is real.
func goBinary(t *testing.T, out string) {
	t.Helper()
	src := t.TempDir()
	writeFile(t, src, "go.mod", []byte("module example.com/hello\n\ngo 1.22\n"))
	writeFile(t, src, "main.go", []byte("package main\n\nfunc main() { println(\"hello\") }\n"))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build a Go binary here: %v\n%s", err, b)
	}
}

func TestCollectRockyRPMSQLite(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", []byte("NAME=\"Rocky Linux\"\nVERSION=\"9.2 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.2\"\nPRETTY_NAME=\"Rocky Linux 9.2 (Blue Onyx)\"\n"))
	writeFile(t, root, "var/lib/rpm/rpmdb.sqlite", testdata(t, "rocky9-rpmdb.sqlite"))
	inv, err := Collect(context.Background(), Config{Root: root, LanguageDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := find(inv.Packages, "Rocky Linux:9", "glibc")
	if !ok || g.Version != "2.34-60.el9" || g.SourceName != "" || g.Arch != "x86_64" {
		t.Errorf("glibc = %+v, %v", g, ok)
	}
	if c, ok := find(inv.Packages, "Rocky Linux:9", "glibc-common"); !ok || c.SourceName != "glibc" {
		t.Errorf("glibc-common = %+v, %v (source rpm glibc)", c, ok)
	}
}

func TestCollectRPMBerkeleyDBWithEpoch(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", []byte("NAME=Fedora\nID=fedora\nVERSION_ID=32\n"))
	writeFile(t, root, "var/lib/rpm/Packages", testdata(t, "fedora32-epoch-Packages"))
	inv, err := Collect(context.Background(), Config{Root: root, LanguageDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := find(inv.Packages, "Fedora:32", "hello"); !ok || h.Version != "1:0.0.1-rls" {
		t.Errorf("hello = %+v, %v (epoch 1 written into the version)", h, ok)
	}
}

func TestCollectAlpine(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.18.0\nPRETTY_NAME=\"Alpine Linux v3.18\"\n"))
	writeFile(t, root, "lib/apk/db/installed", testdata(t, "alpine318-apk-installed"))
	inv, err := Collect(context.Background(), Config{Root: root, LanguageDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := find(inv.Packages, "Alpine:v3.18", "libssl3"); !ok || p.SourceName != "openssl" || p.Version != "3.1.0-r4" {
		t.Errorf("libssl3 = %+v, %v", p, ok)
	}
	if len(inv.Packages) != 15 {
		t.Errorf("%d packages, want the 15 of the captured database", len(inv.Packages))
	}
}

func TestDiff(t *testing.T) {
	a := finding.Package{Ecosystem: "Debian:12", Name: "a", Version: "1"}
	b := finding.Package{Ecosystem: "Debian:12", Name: "b", Version: "1"}
	b2 := finding.Package{Ecosystem: "Debian:12", Name: "b", Version: "2"}
	c := finding.Package{Ecosystem: "Debian:12", Name: "c", Version: "1"}
	added, removed := Diff([]finding.Package{a, b}, []finding.Package{a, b2, c})
	if !slices.Equal(added, []finding.Package{b2, c}) || !slices.Equal(removed, []finding.Package{b}) {
		t.Errorf("added %v removed %v", added, removed)
	}
}

// TestCollectRPMNDB reads the NDB database osv-scalibr's tests captured from the opensuse/leap:15.5
// image (4.6 MB, so it is read from the module cache rather than copied here).
func TestCollectRPMNDB(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/google/osv-scalibr").Output()
	if err != nil {
		t.Skipf("osv-scalibr module not found: %v", err)
	}
	db, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "extractor/filesystem/os/rpm/testdata/Packages.db"))
	if err != nil {
		t.Skipf("osv-scalibr test data not in the module cache: %v", err)
	}
	root := t.TempDir()
	writeFile(t, root, "etc/os-release", []byte("NAME=\"openSUSE Leap\"\nVERSION=\"15.5\"\nID=\"opensuse-leap\"\nVERSION_ID=\"15.5\"\n"))
	writeFile(t, root, "usr/lib/sysimage/rpm/Packages.db", db)
	inv, err := Collect(context.Background(), Config{Root: root, LanguageDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := find(inv.Packages, "openSUSE:Leap 15.5", "bash"); !ok || b.Version != "4.4-150400.25.22" || b.SourceName != "" {
		t.Errorf("bash = %+v, %v", b, ok)
	}
	if len(inv.Packages) < 100 {
		t.Errorf("%d packages from the NDB database", len(inv.Packages))
	}
}
