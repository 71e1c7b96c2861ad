package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

const (
	sshRule   = "bruteforce.ssh-password-guessing"
	shellPath = "/var/www/html/wp-content/uploads/2025/03/cache.php"
)

func sshKey(ip string) string { return sshRule + "|" + ip }

func TestIngestIsExactlyOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01.prod.example.com", "web-prod")

		var batch []finding.Finding
		ips := []string{"203.0.113.7", "198.51.100.23", "192.0.2.200"}
		for i := range 12 {
			batch = append(batch, sshFinding(fmt.Sprintf("f-ssh-%02d", i), ips[i%3], finding.SeverityMedium, t0.Add(time.Duration(i)*time.Second)))
		}
		batch = append(batch,
			webshellFinding("f-shell-1", shellPath, finding.SeverityCritical, t0.Add(20*time.Second)),
			webshellFinding("f-shell-2", "/var/www/html/xmlrpc-bak.php", finding.SeverityHigh, t0.Add(21*time.Second)),
			webshellFinding("f-shell-3", shellPath, finding.SeverityCritical, t0.Add(22*time.Second)),
		)

		first, err := s.IngestFindings(ctx, "h-7c1e", batch, time.Hour)
		must(t, err)
		if want := (IngestResult{New: 5, Aggregated: 10}); first != want {
			t.Errorf("first delivery: %+v, want %+v", first, want)
		}
		before := hostEvents(t, s, "h-7c1e")

		// The agent did not get the ack and sends the same batch again.
		again, err := s.IngestFindings(ctx, "h-7c1e", batch, time.Hour)
		must(t, err)
		if want := (IngestResult{Duplicate: len(batch)}); again != want {
			t.Errorf("redelivery: %+v, want %+v", again, want)
		}
		if n, err := s.FindingCount(ctx); err != nil || n != int64(len(batch)) {
			t.Errorf("FindingCount = %d, %v; want %d", n, err, len(batch))
		}
		after := hostEvents(t, s, "h-7c1e")
		if got, want := jsonOf(t, after), jsonOf(t, before); got != want {
			t.Errorf("redelivery changed events:\nbefore %s\nafter  %s", want, got)
		}
		if got := after[sshKey("203.0.113.7")]; len(got) != 1 || got[0].Count != 4 {
			t.Errorf("events of 203.0.113.7 = %+v, want one with count 4", got)
		}

		// A batch mixing redelivered and new findings, with one ID repeated inside it.
		mixed := []finding.Finding{
			batch[0],
			sshFinding("f-ssh-12", "203.0.113.7", finding.SeverityMedium, t0.Add(30*time.Second)),
			sshFinding("f-ssh-12", "203.0.113.7", finding.SeverityMedium, t0.Add(30*time.Second)),
		}
		res, err := s.IngestFindings(ctx, "h-7c1e", mixed, time.Hour)
		must(t, err)
		if want := (IngestResult{Aggregated: 1, Duplicate: 2}); res != want {
			t.Errorf("mixed batch: %+v, want %+v", res, want)
		}
		if n, _ := s.FindingCount(ctx); n != int64(len(batch)+1) {
			t.Errorf("FindingCount = %d, want %d", n, len(batch)+1)
		}
		if got := hostEvents(t, s, "h-7c1e")[sshKey("203.0.113.7")]; len(got) != 1 || got[0].Count != 5 {
			t.Errorf("events of 203.0.113.7 = %+v, want one with count 5", got)
		}
		for id, want := range map[string]bool{"f-ssh-00": true, "f-ssh-12": true, "f-never-sent": false} {
			if has, err := s.HasFinding(ctx, id); err != nil || has != want {
				t.Errorf("HasFinding(%s) = %v, %v; want %v", id, has, err, want)
			}
		}
	})
}

func TestIngestStormOfOneKeyIsOneEvent(t *testing.T) {
	const n = 1000
	// Severity is low except for a few; the highest must be kept whichever finding carries it.
	storm := func() []finding.Finding {
		fs := make([]finding.Finding, n)
		for i := range fs {
			sev := finding.SeverityLow
			switch i {
			case 100, 800:
				sev = finding.SeverityHigh
			case 617:
				sev = finding.SeverityCritical
			}
			f := sshFinding(fmt.Sprintf("f-storm-%04d", i), "203.0.113.7", sev, t0.Add(time.Duration(i)*time.Second))
			f.Evidence.Users = []string{fmt.Sprintf("user%d", i)}
			fs[i] = f
		}
		return fs
	}
	batches := func(fs []finding.Finding, size int) [][]finding.Finding {
		var out [][]finding.Finding
		for len(fs) > 0 {
			k := min(size, len(fs))
			out = append(out, fs[:k])
			fs = fs[k:]
		}
		return out
	}
	cases := []struct {
		name    string
		deliver func() [][]finding.Finding
	}{
		{"one batch", func() [][]finding.Finding { return [][]finding.Finding{storm()} }},
		{"batches of 100 in order", func() [][]finding.Finding { return batches(storm(), 100) }},
		{"batches of 250 out of order", func() [][]finding.Finding {
			fs := storm()
			rand.New(rand.NewPCG(7, 11)).Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
			return batches(fs, 250)
		}},
		{"newest first, one by one", func() [][]finding.Finding {
			fs := storm()
			var out [][]finding.Finding
			for i := len(fs) - 1; i >= 0; i-- {
				out = append(out, fs[i:i+1])
			}
			return out
		}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				host := fmt.Sprintf("h-storm-%d", i)
				addHost(t, s, host, host+".example.com", "web-prod")
				var total IngestResult
				for _, b := range tc.deliver() {
					// Finding IDs are global: give each case its own.
					fs := make([]finding.Finding, len(b))
					for j, f := range b {
						f.ID = host + "-" + f.ID
						fs[j] = f
					}
					r, err := s.IngestFindings(ctx, host, fs, time.Hour)
					must(t, err)
					total.New += r.New
					total.Aggregated += r.Aggregated
					total.Duplicate += r.Duplicate
				}
				if want := (IngestResult{New: 1, Aggregated: n - 1}); total != want {
					t.Errorf("results = %+v, want %+v", total, want)
				}
				evs := hostEvents(t, s, host)
				if len(evs) != 1 || len(evs[sshKey("203.0.113.7")]) != 1 {
					t.Fatalf("events = %v, want exactly one for %s", evs, sshKey("203.0.113.7"))
				}
				e := evs[sshKey("203.0.113.7")][0]
				last := t0.Add((n - 1) * time.Second)
				if e.Count != n || !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(last) || e.Severity != "critical" {
					t.Errorf("event: count %d first %v last %v severity %s; want %d, %v, %v, critical",
						e.Count, e.FirstSeen, e.LastSeen, e.Severity, n, t0, last)
				}
				// Title and evidence are the latest finding's.
				if len(e.Evidence.Users) != 1 || e.Evidence.Users[0] != fmt.Sprintf("user%d", n-1) ||
					!strings.Contains(e.Evidence.Lines[0], last.Format(time.Stamp)) {
					t.Errorf("event evidence is not the latest finding's: %+v", e.Evidence)
				}
				if e.Status != StatusOpen || e.RuleID != sshRule || e.Category != finding.CategoryBruteForce {
					t.Errorf("event %+v", e)
				}
			})
		}
	})
}

func TestIngestAggregationWindow(t *testing.T) {
	const window = 10 * time.Minute
	cases := []struct {
		name       string
		times      []time.Duration // after t0, in delivery order
		oneBatch   bool
		wantCounts []int64 // per event, most recent first
	}{
		{"same batch, at the window's edge", []time.Duration{0, window}, true, []int64{2}},
		{"same batch, 1ms past the window", []time.Duration{0, window + time.Millisecond}, true, []int64{1, 1}},
		{"separate batches, at the window's edge", []time.Duration{0, window}, false, []int64{2}},
		{"separate batches, 1ms past the window", []time.Duration{0, window + time.Millisecond}, false, []int64{1, 1}},
		{"the window slides with the last finding", []time.Duration{0, 8 * time.Minute, 16 * time.Minute, 24 * time.Minute}, false, []int64{4}},
		{"a quiet spell splits, same batch", []time.Duration{0, time.Minute, 30 * time.Minute, 31 * time.Minute, 32 * time.Minute}, true, []int64{3, 2}},
		{"a quiet spell splits, separate batches", []time.Duration{0, time.Minute, 30 * time.Minute, 31 * time.Minute, 32 * time.Minute}, false, []int64{3, 2}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				host := fmt.Sprintf("h-win-%d", i)
				addHost(t, s, host, host, "web-prod")
				var fs []finding.Finding
				for j, d := range tc.times {
					fs = append(fs, sshFinding(fmt.Sprintf("%s-f%d", host, j), "198.51.100.23", finding.SeverityMedium, t0.Add(d)))
				}
				if tc.oneBatch {
					_, err := s.IngestFindings(ctx, host, fs, window)
					must(t, err)
				} else {
					for _, f := range fs {
						_, err := s.IngestFindings(ctx, host, []finding.Finding{f}, window)
						must(t, err)
					}
				}
				evs := hostEvents(t, s, host)[sshKey("198.51.100.23")]
				var counts []int64
				var sum int64
				for _, e := range evs {
					counts = append(counts, e.Count)
					sum += e.Count
				}
				if fmt.Sprint(counts) != fmt.Sprint(tc.wantCounts) {
					t.Errorf("event counts = %v, want %v", counts, tc.wantCounts)
				}
				// Every finding points at the event it was counted in.
				perEvent := map[string]int64{}
				for _, f := range fs {
					perEvent[eventIDOf(t, s, f.ID)]++
				}
				for _, e := range evs {
					if perEvent[e.ID] != e.Count {
						t.Errorf("event %s count %d, but %d findings point to it", e.ID, e.Count, perEvent[e.ID])
					}
				}
				// Events never overlap: the newer starts after the older ends.
				for j := 1; j < len(evs); j++ {
					if !evs[j].LastSeen.Before(evs[j-1].FirstSeen) {
						t.Errorf("events overlap: %v-%v and %v-%v", evs[j].FirstSeen, evs[j].LastSeen, evs[j-1].FirstSeen, evs[j-1].LastSeen)
					}
				}
			})
		}
	})
}

func TestIngestLateFindingFoldsIntoOpenEvent(t *testing.T) {
	// Findings reach the console out of order (one engine is slower, a spool is replayed
	// after a reconnect). A late finding still counts in the open event, without replacing
	// the newer evidence.
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01.prod.example.com", "web-prod")

		newer := sshFinding("f-newer", "203.0.113.7", finding.SeverityMedium, t0.Add(5*time.Minute))
		_, err := s.IngestFindings(ctx, "h-7c1e", []finding.Finding{newer}, time.Hour)
		must(t, err)
		late1 := sshFinding("f-late-1", "203.0.113.7", finding.SeverityHigh, t0.Add(time.Minute))
		late1.Evidence.Count = 6
		late2 := sshFinding("f-late-2", "203.0.113.7", finding.SeverityLow, t0.Add(2*time.Minute))
		res, err := s.IngestFindings(ctx, "h-7c1e", []finding.Finding{late1, late2}, time.Hour)
		must(t, err)
		if want := (IngestResult{Aggregated: 2}); res != want {
			t.Errorf("late batch: %+v, want %+v", res, want)
		}

		evs := hostEvents(t, s, "h-7c1e")[sshKey("203.0.113.7")]
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		e := evs[0]
		if e.Count != 8 || !e.FirstSeen.Equal(t0.Add(time.Minute)) || !e.LastSeen.Equal(t0.Add(5*time.Minute)) || e.Severity != "high" {
			t.Errorf("event: count %d first %v last %v severity %s; want 8, %v, %v, high",
				e.Count, e.FirstSeen, e.LastSeen, e.Severity, t0.Add(time.Minute), t0.Add(5*time.Minute))
		}
		if got, want := jsonOf(t, e.Evidence), jsonOf(t, newer.Evidence); got != want {
			t.Errorf("late findings replaced the newer evidence:\n got %s\nwant %s", got, want)
		}
	})
}

func TestIngestHandledEventIsNotReused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		for i, status := range []string{StatusHandled, StatusIgnored} {
			t.Run(status, func(t *testing.T) {
				host := fmt.Sprintf("h-handled-%d", i)
				addHost(t, s, host, host, "web-prod")
				ingest := func(id string, at time.Time) IngestResult {
					t.Helper()
					r, err := s.IngestFindings(ctx, host, []finding.Finding{webshellFinding(host+id, shellPath, finding.SeverityCritical, at)}, time.Hour)
					must(t, err)
					return r
				}
				ingest("-f1", t0)
				ingest("-f2", t0.Add(time.Minute))
				old := eventIDOf(t, s, host+"-f1")
				clock.Set(t0.Add(2 * time.Minute))
				must(t, s.HandleEvent(ctx, old, status, "alice", "file quarantined, WordPress plugin updated"))

				// The web shell comes back a minute later: a new event, the handled one is left alone.
				if r := ingest("-f3", t0.Add(3*time.Minute)); r != (IngestResult{New: 1}) {
					t.Errorf("finding after handling: %+v, want a new event", r)
				}
				fresh := eventIDOf(t, s, host+"-f3")
				if fresh == old {
					t.Fatal("finding folded into the handled event")
				}
				if r := ingest("-f4", t0.Add(4*time.Minute)); r != (IngestResult{Aggregated: 1}) {
					t.Errorf("next finding: %+v, want aggregated into the new open event", r)
				}
				if got := eventIDOf(t, s, host+"-f4"); got != fresh {
					t.Errorf("next finding went to %s, want the new event %s", got, fresh)
				}
				e, err := s.EventByID(ctx, old)
				must(t, err)
				if e.Count != 2 || e.Status != status || !e.LastSeen.Equal(t0.Add(time.Minute)) {
					t.Errorf("handled event changed: count %d status %s last %v", e.Count, e.Status, e.LastSeen)
				}
				e, err = s.EventByID(ctx, fresh)
				must(t, err)
				if e.Count != 2 || e.Status != StatusOpen || !e.FirstSeen.Equal(t0.Add(3*time.Minute)) {
					t.Errorf("new event: count %d status %s first %v", e.Count, e.Status, e.FirstSeen)
				}
			})
		}
	})
}

func TestIngestDifferentHostsNeverAggregate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		hosts := []string{"h-7c1e", "h-9a02", "h-3bd4"}
		for _, h := range hosts {
			addHost(t, s, h, h+".prod.example.com", "web-prod")
		}
		// The same attacker sweeps the fleet, in one pass and then again.
		for round := range 2 {
			for i, h := range hosts {
				at := t0.Add(time.Duration(round*10+i) * time.Second)
				r, err := s.IngestFindings(ctx, h, []finding.Finding{sshFinding(fmt.Sprintf("f-%s-%d", h, round), "203.0.113.7", finding.SeverityHigh, at)}, time.Hour)
				must(t, err)
				want := IngestResult{New: 1}
				if round > 0 {
					want = IngestResult{Aggregated: 1}
				}
				if r != want {
					t.Errorf("round %d host %s: %+v, want %+v", round, h, r, want)
				}
			}
		}
		all, total, err := s.ListEvents(ctx, EventFilter{})
		must(t, err)
		if total != 3 {
			t.Errorf("%d events, want one per host", total)
		}
		seen := map[string]bool{}
		for _, e := range all {
			if seen[e.HostID] || e.Count != 2 || e.Key != sshKey("203.0.113.7") {
				t.Errorf("event %s host %s count %d key %s", e.ID, e.HostID, e.Count, e.Key)
			}
			seen[e.HostID] = true
			if e.Hostname != e.HostID+".prod.example.com" {
				t.Errorf("event of %s has hostname %q", e.HostID, e.Hostname)
			}
		}
	})
}

func TestIngestEvidenceCountAddsUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		// The engine already folded 37 failed logins into the first finding.
		counts := []int{37, 0, 1, 120, -3}
		var fs []finding.Finding
		for i, c := range counts {
			f := sshFinding(fmt.Sprintf("f-%d", i), "203.0.113.7", finding.SeverityMedium, t0.Add(time.Duration(i)*time.Minute))
			f.Evidence.Count = c
			fs = append(fs, f)
		}
		_, err := s.IngestFindings(ctx, "h-7c1e", fs[:2], time.Hour)
		must(t, err)
		_, err = s.IngestFindings(ctx, "h-7c1e", fs[2:], time.Hour)
		must(t, err)
		// 37 + 1 (none given) + 1 + 120 + 1 (nonsense counts as one)
		evs := hostEvents(t, s, "h-7c1e")[sshKey("203.0.113.7")]
		if len(evs) != 1 || evs[0].Count != 160 {
			t.Errorf("events = %+v, want one with count 160", evs)
		}

		spool := finding.Finding{
			ID: "f-spool", RuleID: "agent.spool-overflow", Category: finding.CategoryAgent, Severity: finding.SeverityHigh,
			Title: "Agent spool full: findings were dropped on the host", Time: t0, DedupKey: "spool",
			Evidence: finding.Evidence{Count: 5120, Fields: map[string]string{"dropped_total": "5120"}},
		}
		_, err = s.IngestFindings(ctx, "h-7c1e", []finding.Finding{spool}, time.Hour)
		must(t, err)
		if e := hostEvents(t, s, "h-7c1e")["agent.spool-overflow|spool"]; len(e) != 1 || e[0].Count != 5120 {
			t.Errorf("spool overflow events = %+v, want one with count 5120", e)
		}
	})
}

func TestIngestMixedKeysInOneBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		kernel := func(id string, at time.Time) finding.Finding {
			return finding.Finding{ID: id, RuleID: "vuln.kernel-eol", Category: finding.CategoryVuln, Severity: finding.SeverityLow,
				Title: "Kernel 5.10.0-8 is past end of life", Time: at, Action: "Upgrade the kernel and reboot."}
		}
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		batch := []finding.Finding{
			sshFinding("f1", "198.51.100.23", finding.SeverityMedium, at(0)),
			sshFinding("f2", "203.0.113.7", finding.SeverityMedium, at(1)),
			webshellFinding("f3", shellPath, finding.SeverityCritical, at(2)),
			sshFinding("f4", "198.51.100.23", finding.SeverityHigh, at(3)),
			kernel("f5", at(4)),
			sshFinding("f6", "198.51.100.23", finding.SeverityMedium, at(5)),
			webshellFinding("f7", shellPath, finding.SeverityCritical, at(6)),
			kernel("f8", at(7)),
		}
		r, err := s.IngestFindings(ctx, "h-7c1e", batch, time.Hour)
		must(t, err)
		if want := (IngestResult{New: 4, Aggregated: 4}); r != want {
			t.Errorf("result %+v, want %+v", r, want)
		}
		want := map[string]struct {
			count       int64
			first, last int
			severity    string
			findings    []string
		}{
			sshKey("198.51.100.23"):               {3, 0, 5, "high", []string{"f1", "f4", "f6"}},
			sshKey("203.0.113.7"):                 {1, 1, 1, "medium", []string{"f2"}},
			"webshell.php-eval-post|" + shellPath: {2, 2, 6, "critical", []string{"f3", "f7"}},
			"vuln.kernel-eol":                     {2, 4, 7, "low", []string{"f5", "f8"}},
		}
		evs := hostEvents(t, s, "h-7c1e")
		if len(evs) != len(want) {
			t.Errorf("event keys %v, want %d keys", evs, len(want))
		}
		for key, w := range want {
			if len(evs[key]) != 1 {
				t.Errorf("key %s: %d events, want 1", key, len(evs[key]))
				continue
			}
			e := evs[key][0]
			if e.Count != w.count || !e.FirstSeen.Equal(at(w.first)) || !e.LastSeen.Equal(at(w.last)) || e.Severity != w.severity {
				t.Errorf("key %s: count %d first %v last %v severity %s; want %d, %v, %v, %s",
					key, e.Count, e.FirstSeen, e.LastSeen, e.Severity, w.count, at(w.first), at(w.last), w.severity)
			}
			for _, id := range w.findings {
				if got := eventIDOf(t, s, id); got != e.ID {
					t.Errorf("finding %s recorded in event %s, want %s (%s)", id, got, e.ID, key)
				}
			}
		}
	})
}

func TestIngestUnknownHostFails(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		_, err := s.IngestFindings(ctx, "h-never-enrolled", []finding.Finding{sshFinding("f-1", "203.0.113.7", finding.SeverityHigh, t0)}, time.Hour)
		if err == nil {
			t.Fatal("findings for an unknown host were stored")
		}
		// Nothing of the failed batch remains, so a retry is not taken for a duplicate.
		if n, err := s.FindingCount(ctx); err != nil || n != 0 {
			t.Errorf("FindingCount after a failed batch = %d, %v; want 0", n, err)
		}
	})
}

func TestIngestLargeBatchAcrossStatementChunks(t *testing.T) {
	// IngestFindings works in multi-row statements of a few hundred rows; batches larger than
	// that must behave like small ones.
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		path := func(i int) string { return fmt.Sprintf("/var/www/html/wp-content/uploads/2025/03/img-%03d.php", i) }
		const keys = 450
		var first []finding.Finding
		for i := range keys {
			first = append(first, webshellFinding(fmt.Sprintf("f-a-%03d", i), path(i), finding.SeverityHigh, t0.Add(time.Duration(i)*time.Millisecond)))
		}
		r, err := s.IngestFindings(ctx, "h-7c1e", first, time.Hour)
		must(t, err)
		if want := (IngestResult{New: keys}); r != want {
			t.Errorf("first batch: %+v, want %+v", r, want)
		}

		// Redelivery of the whole first batch, a repeat of every key, 101 new keys and one ID
		// twice: 1,002 findings.
		second := append([]finding.Finding{}, first...)
		for i := range keys {
			second = append(second, webshellFinding(fmt.Sprintf("f-b-%03d", i), path(i), finding.SeverityCritical, t0.Add(time.Minute+time.Duration(i)*time.Millisecond)))
		}
		for i := keys; i < keys+101; i++ {
			second = append(second, webshellFinding(fmt.Sprintf("f-c-%03d", i), path(i), finding.SeverityLow, t0.Add(2*time.Minute)))
		}
		second = append(second, second[len(second)-1])
		r, err = s.IngestFindings(ctx, "h-7c1e", second, time.Hour)
		must(t, err)
		if want := (IngestResult{New: 101, Aggregated: keys, Duplicate: keys + 1}); r != want {
			t.Errorf("second batch: %+v, want %+v", r, want)
		}
		if n, err := s.FindingCount(ctx); err != nil || n != 2*keys+101 {
			t.Errorf("FindingCount = %d, %v; want %d", n, err, 2*keys+101)
		}
		evs := hostEvents(t, s, "h-7c1e")
		if len(evs) != keys+101 {
			t.Errorf("%d event keys, want %d", len(evs), keys+101)
		}
		for i := range keys + 101 {
			es := evs["webshell.php-eval-post|"+path(i)]
			want, sev := int64(2), "critical"
			if i >= keys {
				want, sev = 1, "low"
			}
			if len(es) != 1 || es[0].Count != want || es[0].Severity != sev {
				t.Errorf("key %d: %+v, want one event, count %d, %s", i, es, want, sev)
				break
			}
		}
	})
}

func TestIngestConcurrentRedeliveryStoresOnce(t *testing.T) {
	// After a reconnect the same batch can arrive on two streams at once. Each finding must be
	// stored once: a delivery that loses the race may fail (and be redelivered), never double
	// count.
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		g := newFindingGen(42)
		batch := make([]finding.Finding, 300)
		for i := range batch {
			batch[i] = g.next()
		}
		const streams = 4
		results := make([]IngestResult, streams)
		errs := make([]error, streams)
		start := make(chan struct{})
		done := make(chan int)
		for i := range streams {
			go func() {
				<-start
				results[i], errs[i] = s.IngestFindings(ctx, "h-7c1e", batch, time.Hour)
				done <- i
			}()
		}
		close(start)
		for range streams {
			<-done
		}
		stored := 0
		for i := range streams {
			if errs[i] != nil {
				t.Logf("stream %d: %v (the agent redelivers)", i, errs[i])
				continue
			}
			r := results[i]
			if r.Duplicate != 0 && r.Duplicate != len(batch) {
				t.Errorf("stream %d: %+v: a batch is stored whole or not at all", i, r)
			}
			if r.Duplicate == 0 {
				stored++
			}
		}
		if stored != 1 {
			t.Errorf("%d deliveries stored the batch, want exactly 1 (results %+v, errors %v)", stored, results, errs)
		}
		r, err := s.IngestFindings(ctx, "h-7c1e", batch, time.Hour)
		must(t, err)
		if r != (IngestResult{Duplicate: len(batch)}) {
			t.Errorf("late redelivery: %+v, want all duplicates", r)
		}
		if n, err := s.FindingCount(ctx); err != nil || n != int64(len(batch)) {
			t.Errorf("FindingCount = %d, %v; want %d", n, err, len(batch))
		}
		var sum int64
		for _, es := range hostEvents(t, s, "h-7c1e") {
			for _, e := range es {
				sum += e.Count
			}
		}
		if sum != int64(len(batch)) {
			t.Errorf("event counts add up to %d, want %d", sum, len(batch))
		}
	})
}
