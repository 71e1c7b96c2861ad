package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Every test in this package runs against both backends through forEachBackend: SQLite on a
// fresh file, and PostgreSQL on a fresh database of a throwaway server shared by the test
// binary (skipped without PostgreSQL, failed under CI=true).

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest.StopShared:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// forEachDSN runs fn as subtest "sqlite" with the path of a fresh SQLite file and as subtest
// "postgres" with the DSN of a fresh PostgreSQL database.
func forEachDSN(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, filepath.Join(t.TempDir(), "console.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, pgtest.RequireDatabase(t))
	})
}

// forEachBackend runs fn as subtests "sqlite" and "postgres", each with a freshly opened,
// migrated, empty store that is closed when the subtest ends.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	forEachDSN(t, func(t *testing.T, dsn string) {
		fn(t, openStore(t, dsn))
	})
}

func openStore(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open(%q): %v", dsn, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// t0 is the fixed "now" tests start at (whole milliseconds, as the store keeps them).
var t0 = time.Date(2025, time.March, 14, 9, 26, 53, 0, time.UTC)

// fakeClock is a settable clock for Store.Now; safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// useClock makes s read time from a fake clock starting at start.
func useClock(s *Store, start time.Time) *fakeClock {
	c := &fakeClock{now: start}
	s.Now = c.Now
	return c
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func wantErrIs(tb testing.TB, what string, err, target error) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("%s: err = %v, want errors.Is(err, %v)", what, err, target)
	}
}

// addHost enrolls a host through a fresh single-use enrollment token, as an agent would.
func addHost(tb testing.TB, s *Store, id, hostname, group string) Host {
	tb.Helper()
	ctx := context.Background()
	secret := "pal_enroll_" + id
	now := s.Now()
	must(tb, s.CreateEnrollToken(ctx, EnrollToken{
		ID: "et-" + id, TokenHash: HashSecret(secret), Group: group,
		CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour),
	}))
	h, err := s.EnrollHost(ctx, HashSecret(secret), Host{
		ID: id, Hostname: hostname, CertSerial: "7f3a9c" + id,
		Facts: finding.HostFacts{Hostname: hostname, OSID: "debian", OSVersion: "12", Arch: "amd64", AgentVersion: "0.4.1"},
	})
	if err != nil {
		tb.Fatalf("enroll %s: %v", id, err)
	}
	return h
}

// sshFinding is a brute-force finding like the SSH engine produces: one source address is the
// dedup key.
func sshFinding(id, srcIP string, sev finding.Severity, at time.Time) finding.Finding {
	return finding.Finding{
		ID:       id,
		RuleID:   "bruteforce.ssh-password-guessing",
		Category: finding.CategoryBruteForce,
		Severity: sev,
		Title:    "SSH password guessing from " + srcIP,
		Time:     at,
		DedupKey: srcIP,
		Action:   "Block " + srcIP + " at the firewall and check for successful logins from it.",
		MITRE:    []string{"T1110.001"},
		Evidence: finding.Evidence{
			Lines: []string{at.Format(time.Stamp) + " web-01 sshd[2211]: Failed password for invalid user admin from " +
				srcIP + " port 52144 ssh2"},
			Source:   "journal:sshd.service",
			SourceIP: srcIP,
			Users:    []string{"admin"},
		},
	}
}

// webshellFinding is a file finding keyed by path.
func webshellFinding(id, path string, sev finding.Severity, at time.Time) finding.Finding {
	return finding.Finding{
		ID:       id,
		RuleID:   "webshell.php-eval-post",
		Category: finding.CategoryWebshell,
		Severity: sev,
		Title:    "PHP web shell: eval of request data in " + path,
		Time:     at,
		DedupKey: path,
		Action:   "Quarantine " + path + " and review the web server's access log for requests to it.",
		MITRE:    []string{"T1505.003"},
		Evidence: finding.Evidence{
			Path:   path,
			Hashes: map[string]string{"sha256": "5f1d8e0c3b7a9e4f2d6c8b0a1e3f5d7c9b1a3e5f7d9c1b3a5e7f9d1c3b5a7e9f"},
			Fields: map[string]string{"matched": `eval($_POST["cmd"])`},
		},
	}
}

// eventIDOf returns the event a stored finding was folded into.
func eventIDOf(tb testing.TB, s *Store, findingID string) string {
	tb.Helper()
	var id string
	if err := s.queryRow(context.Background(), `SELECT event_id FROM finding_ids WHERE id = ?`, findingID).Scan(&id); err != nil {
		tb.Fatalf("event of finding %s: %v", findingID, err)
	}
	return id
}

// hostEvents returns all events of a host by aggregation key, each key's events most recent
// first.
func hostEvents(tb testing.TB, s *Store, hostID string) map[string][]Event {
	tb.Helper()
	evs, total, err := s.ListEvents(context.Background(), EventFilter{HostID: hostID, Limit: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	if total != len(evs) {
		tb.Fatalf("host %s: total %d, got %d events", hostID, total, len(evs))
	}
	out := map[string][]Event{}
	for _, e := range evs {
		out[e.Key] = append(out[e.Key], e)
	}
	return out
}
