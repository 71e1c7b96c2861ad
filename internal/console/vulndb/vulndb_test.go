package vulndb

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

func osvZip(t *testing.T, records ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, r := range records {
		w, _ := zw.Create(filepath.Join("x", string(rune('a'+i))+".json"))
		w.Write([]byte(r))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const (
	dsa = `{"id":"DSA-5724-1","modified":"2024-07-01T12:00:00Z","upstream":["CVE-2024-6387"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssh"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:9.2p1-2+deb12u3"}]}]}]}`
	// The same advisory corrected later: the fix landed one update later.
	dsaFixedLater = `{"id":"DSA-5724-1","modified":"2024-07-09T12:00:00Z","upstream":["CVE-2024-6387"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssh"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:9.2p1-2+deb12u4"}]}]}]}`
)

func newManager(t *testing.T, dir string, cfg Config) (*Manager, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(dir, "console.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Dir = filepath.Join(dir, "vulndb")
	m, err := Open(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return m, st
}

func enroll(t *testing.T, st *store.Store, id string, pkgs ...finding.Package) {
	t.Helper()
	ctx := context.Background()
	now := st.Now()
	if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-" + id, TokenHash: store.HashSecret("pe_" + id), Group: "web",
		CreatedBy: "t", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnrollHost(ctx, store.HashSecret("pe_"+id), store.Host{ID: id, Hostname: id, CertSerial: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReplaceInventory(ctx, id, 1, store.OSRelease{ID: "debian", VersionID: "12"}, pkgs); err != nil {
		t.Fatal(err)
	}
}

var sshd = finding.Package{Ecosystem: "Debian:12", Name: "openssh-server", SourceName: "openssh", Version: "1:9.2p1-2+deb12u3", Location: "/var/lib/dpkg/status"}

// TestImportRematchAndRestart: a corrected advisory, imported again, changes a host's result
// without the host being asked anything; the archive is reloaded after a restart.
func TestImportRematchAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, st := newManager(t, dir, Config{})
	enroll(t, st, "h-1", sshd)

	res, err := m.Import(ctx, bytes.NewReader(osvZip(t, dsa)), "test", "admin")
	if err != nil || res.Name != "Debian.zip" || res.Records["Debian"] != 1 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if _, err := m.RematchFleet(ctx); err != nil {
		t.Fatal(err)
	}
	if vs, _, _ := st.HostVulns(ctx, store.VulnFilter{HostID: "h-1"}); len(vs) != 0 {
		t.Fatalf("fixed version reported vulnerable: %+v", vs)
	}
	if again, err := m.Import(ctx, bytes.NewReader(osvZip(t, dsa)), "test", "admin"); err != nil || !again.Unchanged {
		t.Errorf("same archive again: %+v, %v", again, err)
	}
	if _, err := m.Import(ctx, bytes.NewReader(osvZip(t, dsaFixedLater)), "test", "admin"); err != nil {
		t.Fatal(err)
	}
	st2, err := m.RematchFleet(ctx)
	if err != nil || st2.Hosts != 1 || st2.Matches != 1 {
		t.Fatalf("rematch: %+v, %v", st2, err)
	}
	vs, _, _ := st.HostVulns(ctx, store.VulnFilter{HostID: "h-1"})
	if len(vs) != 1 || vs[0].Fixed != "1:9.2p1-2+deb12u4" || vs[0].Emergency != "regreSSHion" {
		t.Fatalf("after the corrected advisory: %+v", vs)
	}
	events, _, err := st.ListEvents(ctx, store.EventFilter{Category: string(finding.CategoryVuln), Limit: 10})
	if err != nil || len(events) != 1 || events[0].RuleID != "vuln.emergency" {
		t.Fatalf("emergency event: %+v, %v", events, err)
	}

	if _, err := m.Import(ctx, bytes.NewReader([]byte("not a zip")), "test", "admin"); err == nil {
		t.Error("a non-zip was imported")
	}
	if _, err := m.Import(ctx, bytes.NewReader(osvZip(t, `{"id":"X"}`)), "test", "admin"); err == nil {
		t.Error("an archive without usable records was imported")
	}

	restarted, _ := newManagerOn(t, dir, st)
	if a, ok := restarted.Advisory("DSA-5724-1"); !ok || a.Emergency == nil {
		t.Errorf("archive not reloaded after a restart: %+v", a)
	}
}

// TestRematchFleetBatches: a fleet of several batches is matched and stored completely, each
// host once; a cancelled rematch reports it.
func TestRematchFleetBatches(t *testing.T) {
	ctx := context.Background()
	m, st := newManager(t, t.TempDir(), Config{})
	const hosts = 2*fleetBatch + 3
	for i := range hosts {
		enroll(t, st, fmt.Sprintf("h-%03d", i), sshd)
	}
	if _, err := m.Import(ctx, bytes.NewReader(osvZip(t, dsaFixedLater)), "test", "admin"); err != nil {
		t.Fatal(err)
	}
	res, err := m.RematchFleet(ctx)
	if err != nil || res.Hosts != hosts || res.Matches != hosts {
		t.Fatalf("rematch: %+v, %v", res, err)
	}
	if _, n, _ := st.HostVulns(ctx, store.VulnFilter{}); n != hosts {
		t.Errorf("%d vulnerabilities stored, want one per host", n)
	}
	events, _, err := st.ListEvents(ctx, store.EventFilter{Category: string(finding.CategoryVuln), Limit: 100})
	if err != nil || len(events) != hosts {
		t.Errorf("%d emergency events, want one per host: %v", len(events), err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.RematchFleet(cancelled); err == nil {
		t.Error("a cancelled rematch reported success")
	}
}

func newManagerOn(t *testing.T, dir string, st *store.Store) (*Manager, error) {
	m, err := Open(Config{Dir: filepath.Join(dir, "vulndb")}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return m, err
}

// TestScheduledFetch: configured sources, a URL and a file, are fetched when Run starts.
func TestScheduledFetch(t *testing.T) {
	archive := osvZip(t, dsa)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/Debian/all.zip" {
			http.NotFound(w, r)
			return
		}
		w.Write(archive)
	}))
	defer srv.Close()
	dir := t.TempDir()
	pypi := filepath.Join(dir, "pypi.zip")
	os.WriteFile(pypi, osvZip(t, `{"id":"GHSA-h5c8-rqwp-cp95","modified":"2024-01-11T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"jinja2"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.3"}]}]}]}`), 0o644)
	m, _ := newManager(t, dir, Config{Sources: []string{srv.URL + "/Debian/all.zip", srv.URL + "/missing/all.zip", pypi}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := m.Status(context.Background())
		if err == nil && st.Records["Debian"] == 1 && st.Records["PyPI"] == 1 && len(st.Archives) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sources not fetched: %+v, %v", st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
