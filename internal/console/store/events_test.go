package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// eventSet stores five single-finding events on two hosts and returns their IDs by label.
//
//	label  host    category   severity  last seen
//	E1     web-01  bruteforce high      t0-50m
//	E2     web-01  webshell   critical  t0-30m
//	E3     db-01   bruteforce medium    t0-20m  (handled)
//	E4     db-01   vuln       low       t0-10m
//	E5     web-01  login      info      t0-5m
func eventSet(t *testing.T, s *Store) (map[string]string, map[string]finding.Finding) {
	t.Helper()
	ctx := t.Context()
	clock := useClock(s, t0.Add(-time.Hour))
	addHost(t, s, "h-7c1e", "web-01.prod.example.com", "web-prod")
	addHost(t, s, "h-3bd4", "db-01.prod.example.com", "db-prod")
	fs := map[string]finding.Finding{
		"E1": sshFinding("f-e1", "203.0.113.7", finding.SeverityHigh, t0.Add(-50*time.Minute)),
		"E2": webshellFinding("f-e2", shellPath, finding.SeverityCritical, t0.Add(-30*time.Minute)),
		"E3": sshFinding("f-e3", "198.51.100.23", finding.SeverityMedium, t0.Add(-20*time.Minute)),
		"E4": {ID: "f-e4", RuleID: "vuln.openssl-cve-2024-5535", Category: finding.CategoryVuln, Severity: finding.SeverityLow,
			Title: "OpenSSL 3.0.11 is affected by CVE-2024-5535", Time: t0.Add(-10 * time.Minute), DedupKey: "openssl",
			Action: "Upgrade openssl to 3.0.14 or later.", Evidence: finding.Evidence{Fields: map[string]string{"package": "openssl", "version": "3.0.11-1~deb12u2"}}},
		"E5": {ID: "f-e5", RuleID: "login.root-from-new-network", Category: finding.CategoryLogin, Severity: finding.SeverityInfo,
			Title: "root logged in from a network not seen before", Time: t0.Add(-5 * time.Minute), DedupKey: "192.0.2.0/24",
			Evidence: finding.Evidence{SourceIP: "192.0.2.44", Users: []string{"root"}}},
	}
	hostOf := map[string]string{"E1": "h-7c1e", "E2": "h-7c1e", "E3": "h-3bd4", "E4": "h-3bd4", "E5": "h-7c1e"}
	ids := map[string]string{}
	for _, label := range []string{"E1", "E2", "E3", "E4", "E5"} {
		_, err := s.IngestFindings(ctx, hostOf[label], []finding.Finding{fs[label]}, time.Hour)
		must(t, err)
		ids[label] = eventIDOf(t, s, fs[label].ID)
	}
	clock.Set(t0)
	must(t, s.HandleEvent(ctx, ids["E3"], StatusHandled, "alice", "source blocked at the edge firewall"))
	return ids, fs
}

func TestListEventsFilters(t *testing.T) {
	sev := func(v finding.Severity) *finding.Severity { return &v }
	cases := []struct {
		name      string
		filter    EventFilter
		want      []string
		wantTotal int // when paging; else len(want)
	}{
		{name: "all, most recent first", filter: EventFilter{}, want: []string{"E5", "E4", "E3", "E2", "E1"}},
		{name: "host", filter: EventFilter{HostID: "h-7c1e"}, want: []string{"E5", "E2", "E1"}},
		{name: "unknown host", filter: EventFilter{HostID: "h-nope"}, want: nil},
		{name: "category", filter: EventFilter{Category: "bruteforce"}, want: []string{"E3", "E1"}},
		{name: "min severity high", filter: EventFilter{MinSeverity: sev(finding.SeverityHigh)}, want: []string{"E2", "E1"}},
		{name: "min severity info is everything", filter: EventFilter{MinSeverity: sev(finding.SeverityInfo)}, want: []string{"E5", "E4", "E3", "E2", "E1"}},
		{name: "min severity critical", filter: EventFilter{MinSeverity: sev(finding.SeverityCritical)}, want: []string{"E2"}},
		{name: "status handled", filter: EventFilter{Status: StatusHandled}, want: []string{"E3"}},
		{name: "status open", filter: EventFilter{Status: StatusOpen}, want: []string{"E5", "E4", "E2", "E1"}},
		{name: "since is inclusive", filter: EventFilter{Since: t0.Add(-20 * time.Minute)}, want: []string{"E5", "E4", "E3"}},
		{name: "until is exclusive", filter: EventFilter{Until: t0.Add(-20 * time.Minute)}, want: []string{"E2", "E1"}},
		{name: "since and until", filter: EventFilter{Since: t0.Add(-30 * time.Minute), Until: t0.Add(-10 * time.Minute)}, want: []string{"E3", "E2"}},
		{name: "host and status", filter: EventFilter{HostID: "h-3bd4", Status: StatusOpen}, want: []string{"E4"}},
		{name: "host, category and severity", filter: EventFilter{HostID: "h-7c1e", Category: "webshell", MinSeverity: sev(finding.SeverityCritical)}, want: []string{"E2"}},
		{name: "first page", filter: EventFilter{Limit: 2}, want: []string{"E5", "E4"}, wantTotal: 5},
		{name: "second page", filter: EventFilter{Limit: 2, Offset: 2}, want: []string{"E3", "E2"}, wantTotal: 5},
		{name: "last page", filter: EventFilter{Limit: 2, Offset: 4}, want: []string{"E1"}, wantTotal: 5},
		{name: "past the end", filter: EventFilter{Limit: 2, Offset: 5}, want: nil, wantTotal: 5},
		{name: "page of a filtered list", filter: EventFilter{HostID: "h-7c1e", Limit: 1, Offset: 1}, want: []string{"E2"}, wantTotal: 3},
		{name: "limit above the maximum is capped, not an error", filter: EventFilter{Limit: 1_000_000}, want: []string{"E5", "E4", "E3", "E2", "E1"}},
	}
	forEachBackend(t, func(t *testing.T, s *Store) {
		ids, _ := eventSet(t, s)
		label := map[string]string{}
		for l, id := range ids {
			label[id] = l
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				evs, total, err := s.ListEvents(t.Context(), tc.filter)
				must(t, err)
				var got []string
				for _, e := range evs {
					got = append(got, label[e.ID])
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("events = %v, want %v", got, tc.want)
				}
				wantTotal := tc.wantTotal
				if wantTotal == 0 {
					wantTotal = len(tc.want)
				}
				if total != wantTotal {
					t.Errorf("total = %d, want %d", total, wantTotal)
				}
			})
		}
	})
}

func TestEventByIDJoinsHostname(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ids, fs := eventSet(t, s)
		e, err := s.EventByID(ctx, ids["E2"])
		must(t, err)
		f := fs["E2"]
		if e.ID != ids["E2"] || e.HostID != "h-7c1e" || e.Hostname != "web-01.prod.example.com" ||
			e.Key != "webshell.php-eval-post|"+shellPath || e.RuleID != f.RuleID || e.Category != f.Category ||
			e.Severity != "critical" || e.Title != f.Title || e.Action != f.Action || !slices.Equal(e.MITRE, f.MITRE) ||
			e.Count != 1 || !e.FirstSeen.Equal(f.Time) || !e.LastSeen.Equal(f.Time) || e.Status != StatusOpen ||
			e.HandledBy != "" || !e.HandledAt.IsZero() || e.Comment != "" {
			t.Errorf("EventByID = %+v", e)
		}
		if got, want := jsonOf(t, e.Evidence), jsonOf(t, f.Evidence); got != want {
			t.Errorf("evidence:\n got %s\nwant %s", got, want)
		}
		// Every listed event carries its host's name.
		evs, _, err := s.ListEvents(ctx, EventFilter{})
		must(t, err)
		for _, e := range evs {
			want := map[string]string{"h-7c1e": "web-01.prod.example.com", "h-3bd4": "db-01.prod.example.com"}[e.HostID]
			if e.Hostname != want {
				t.Errorf("event %s of %s: hostname %q, want %q", e.ID, e.HostID, e.Hostname, want)
			}
		}
		_, err = s.EventByID(ctx, "no-such-event")
		wantErrIs(t, "EventByID unknown", err, ErrNotFound)
	})
}

func TestHandleEvent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ids, _ := eventSet(t, s)

		e, err := s.EventByID(ctx, ids["E3"])
		must(t, err)
		if e.Status != StatusHandled || e.HandledBy != "alice" || !e.HandledAt.Equal(t0) || e.Comment != "source blocked at the edge firewall" {
			t.Errorf("handled event: %+v", e)
		}

		for _, bad := range []string{"resolved", "", "OPEN", "handled; DROP TABLE events"} {
			err := s.HandleEvent(ctx, ids["E1"], bad, "bob", "x")
			if err == nil {
				t.Errorf("HandleEvent(status %q) succeeded", bad)
			} else if errors.Is(err, ErrNotFound) {
				t.Errorf("HandleEvent(status %q) = %v; want a bad-status error, not not-found", bad, err)
			}
		}
		e, err = s.EventByID(ctx, ids["E1"])
		must(t, err)
		if e.Status != StatusOpen || e.HandledBy != "" || e.Comment != "" {
			t.Errorf("bad status changed the event: %+v", e)
		}
		wantErrIs(t, "HandleEvent unknown", s.HandleEvent(ctx, "no-such-event", StatusIgnored, "bob", ""), ErrNotFound)

		// Reopening works and is recorded.
		useClock(s, t0.Add(time.Hour))
		must(t, s.HandleEvent(ctx, ids["E3"], StatusOpen, "bob", "came back"))
		e, err = s.EventByID(ctx, ids["E3"])
		must(t, err)
		if e.Status != StatusOpen || e.HandledBy != "bob" || !e.HandledAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("reopened event: %+v", e)
		}

		counts, err := s.EventCounts(ctx)
		must(t, err)
		want := map[string]int{"info": 1, "low": 1, "medium": 1, "high": 1, "critical": 1}
		if jsonOf(t, counts) != jsonOf(t, want) {
			t.Errorf("EventCounts = %v, want %v", counts, want)
		}
	})
}
