package store

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// fleet enrolls five hosts and sets their last heartbeat relative to t0; the clock ends at t0.
//
//	h-7c1e web-01.prod.example.com  web-prod  seen t0-30s   online
//	h-9a02 web-02.prod.example.com  web-prod  seen t0-20m   offline
//	h-3bd4 db-01.prod.example.com   db-prod   seen t0-1m    online
//	h-55f0 build-runner-7           ci        never seen    offline
//	h-e81a legacy-ftp-01            web-prod  seen t0-10s   revoked
func fleet(t *testing.T, s *Store) *fakeClock {
	t.Helper()
	ctx := t.Context()
	clock := useClock(s, t0.Add(-24*time.Hour))
	for _, h := range []struct {
		id, name, group string
		seen            time.Duration // before t0; 0: never
	}{
		{"h-7c1e", "web-01.prod.example.com", "web-prod", 30 * time.Second},
		{"h-9a02", "web-02.prod.example.com", "web-prod", 20 * time.Minute},
		{"h-3bd4", "db-01.prod.example.com", "db-prod", time.Minute},
		{"h-55f0", "build-runner-7", "ci", 0},
		{"h-e81a", "legacy-ftp-01", "web-prod", 10 * time.Second},
	} {
		clock.Set(t0.Add(-24 * time.Hour))
		addHost(t, s, h.id, h.name, h.group)
		if h.seen > 0 {
			clock.Set(t0.Add(-h.seen))
			must(t, s.TouchHost(ctx, h.id, finding.AgentStatus{Time: t0.Add(-h.seen), CPUPercent: 0.4, BudgetMode: "normal"}))
		}
	}
	clock.Set(t0)
	must(t, s.RevokeHost(ctx, "h-e81a"))
	return clock
}

func TestListHostsFiltersAndPaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		fleet(t, s)
		yes, no := true, false
		since := t0.Add(-5 * time.Minute)
		cases := []struct {
			name      string
			filter    HostFilter
			want      []string // hostnames, in order
			wantTotal int      // when paging; else len(want)
		}{
			{name: "no filter lists all by hostname", filter: HostFilter{},
				want: []string{"build-runner-7", "db-01.prod.example.com", "legacy-ftp-01", "web-01.prod.example.com", "web-02.prod.example.com"}},
			{name: "search hostname substring", filter: HostFilter{Search: "web-0"},
				want: []string{"web-01.prod.example.com", "web-02.prod.example.com"}},
			{name: "search is case-insensitive", filter: HostFilter{Search: "WEB-0"},
				want: []string{"web-01.prod.example.com", "web-02.prod.example.com"}},
			{name: "search ID substring", filter: HostFilter{Search: "9a0"},
				want: []string{"web-02.prod.example.com"}},
			{name: "search domain", filter: HostFilter{Search: "prod.example.com"},
				want: []string{"db-01.prod.example.com", "web-01.prod.example.com", "web-02.prod.example.com"}},
			{name: "search LIKE wildcards are not wildcards", filter: HostFilter{Search: "w_b"}, want: nil},
			{name: "search with no match", filter: HostFilter{Search: "mail"}, want: nil},
			{name: "group", filter: HostFilter{Group: "web-prod"},
				want: []string{"legacy-ftp-01", "web-01.prod.example.com", "web-02.prod.example.com"}},
			{name: "unknown group", filter: HostFilter{Group: "staging"}, want: nil},
			{name: "online", filter: HostFilter{Online: &yes, OnlineSince: since},
				want: []string{"db-01.prod.example.com", "web-01.prod.example.com"}},
			{name: "offline includes never seen and revoked", filter: HostFilter{Online: &no, OnlineSince: since},
				want: []string{"build-runner-7", "legacy-ftp-01", "web-02.prod.example.com"}},
			{name: "online boundary is inclusive", filter: HostFilter{Online: &yes, OnlineSince: t0.Add(-time.Minute)},
				want: []string{"db-01.prod.example.com", "web-01.prod.example.com"}},
			{name: "group and offline", filter: HostFilter{Group: "web-prod", Online: &no, OnlineSince: since},
				want: []string{"legacy-ftp-01", "web-02.prod.example.com"}},
			{name: "search and online", filter: HostFilter{Search: "prod", Online: &yes, OnlineSince: since},
				want: []string{"db-01.prod.example.com", "web-01.prod.example.com"}},
			{name: "page", filter: HostFilter{Limit: 2, Offset: 1},
				want: []string{"db-01.prod.example.com", "legacy-ftp-01"}, wantTotal: 5},
			{name: "last page", filter: HostFilter{Limit: 2, Offset: 4},
				want: []string{"web-02.prod.example.com"}, wantTotal: 5},
			{name: "page past the end", filter: HostFilter{Limit: 2, Offset: 10}, want: nil, wantTotal: 5},
			{name: "page of a filtered list", filter: HostFilter{Group: "web-prod", Limit: 1, Offset: 1},
				want: []string{"web-01.prod.example.com"}, wantTotal: 3},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				hosts, total, err := s.ListHosts(ctx, tc.filter)
				must(t, err)
				var names []string
				for _, h := range hosts {
					names = append(names, h.Hostname)
					if tc.filter.Online != nil && h.Online != *tc.filter.Online {
						t.Errorf("%s: Online = %v under filter online=%v", h.Hostname, h.Online, *tc.filter.Online)
					}
				}
				if !slices.Equal(names, tc.want) {
					t.Errorf("hosts = %q, want %q", names, tc.want)
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

func TestHostOnlineFlagAgreesWithOnlineFilter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		fleet(t, s)
		// The API passes time.Now()-OfflineAfter, with sub-millisecond precision, while
		// last_seen is stored in milliseconds. web-01 was seen at t0-30s exactly.
		for _, since := range []time.Time{
			t0.Add(-30 * time.Second),
			t0.Add(-30*time.Second + 400*time.Microsecond),
			t0.Add(-30*time.Second + time.Millisecond),
			t0.Add(-30*time.Second - 400*time.Microsecond),
		} {
			for _, online := range []bool{true, false} {
				hosts, _, err := s.ListHosts(ctx, HostFilter{Online: &online, OnlineSince: since})
				must(t, err)
				for _, h := range hosts {
					if h.Online != online {
						t.Errorf("since %s: ListHosts(online=%v) returned %s with Online=%v",
							since.Format(time.RFC3339Nano), online, h.Hostname, h.Online)
					}
				}
			}
			for _, id := range []string{"h-7c1e", "h-9a02", "h-3bd4", "h-55f0", "h-e81a"} {
				h, err := s.HostByID(ctx, id, since)
				must(t, err)
				on := true
				hosts, _, err := s.ListHosts(ctx, HostFilter{Search: id, Online: &on, OnlineSince: since})
				must(t, err)
				if listed := len(hosts) == 1; listed != h.Online {
					t.Errorf("since %s: %s HostByID Online=%v but listed as online: %v",
						since.Format(time.RFC3339Nano), h.Hostname, h.Online, listed)
				}
			}
		}
	})
}

func TestHostFactsAndStatusRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")

		facts := finding.HostFacts{
			Hostname:     "web-01.prod.example.com",
			OSID:         "ubuntu",
			OSVersion:    "24.04",
			OSPretty:     "Ubuntu 24.04.1 LTS",
			Kernel:       "6.8.0-45-generic",
			Arch:         "arm64",
			IPAddresses:  []string{"10.0.4.11", "fd00:4::11", "203.0.113.80"},
			AgentVersion: "0.4.2",
			BootTime:     time.Date(2025, 3, 2, 4, 11, 9, 0, time.UTC),
			MachineID:    "3f1c2b9d8e7a4c6b9a0d1e2f3a4b5c6d",
		}
		clock.Advance(time.Minute)
		must(t, s.UpdateHostFacts(ctx, "h-7c1e", facts))
		h, err := s.HostByID(ctx, "h-7c1e", t0)
		must(t, err)
		if got, want := jsonOf(t, h.Facts), jsonOf(t, facts); got != want {
			t.Errorf("facts round trip:\n got %s\nwant %s", got, want)
		}
		if h.Hostname != facts.Hostname || !h.LastSeen.Equal(t0.Add(time.Minute)) || !h.Online {
			t.Errorf("after UpdateHostFacts: hostname %q, last seen %v, online %v", h.Hostname, h.LastSeen, h.Online)
		}

		status := finding.AgentStatus{
			Time:              t0.Add(2 * time.Minute),
			CPUPercent:        1.75,
			RSSBytes:          48 << 20,
			SpoolDepth:        12,
			SpoolBytes:        18432,
			SpoolDropped:      3,
			CPUBudgetPercent:  2,
			MemoryBudgetBytes: 128 << 20,
			BudgetMode:        "throttled",
			ThrottledMS:       5300,
			Components: []finding.ComponentState{
				{Name: "journal", Kind: "source", State: finding.StateRunning},
				{Name: "auditd", Kind: "source", State: finding.StateUnavailable, Reason: "auditd not installed"},
				{Name: "bruteforce", Kind: "engine", State: finding.StateDegraded, Reason: "CPU budget exceeded"},
			},
		}
		clock.Advance(time.Minute)
		must(t, s.TouchHost(ctx, "h-7c1e", status))
		h, err = s.HostByID(ctx, "h-7c1e", t0)
		must(t, err)
		if got, want := jsonOf(t, h.Status), jsonOf(t, status); got != want {
			t.Errorf("status round trip:\n got %s\nwant %s", got, want)
		}
		if got, want := jsonOf(t, h.Facts), jsonOf(t, facts); got != want {
			t.Errorf("heartbeat changed facts: %s", got)
		}
		if !h.LastSeen.Equal(t0.Add(2 * time.Minute)) {
			t.Errorf("last seen after heartbeat = %v, want %v", h.LastSeen, t0.Add(2*time.Minute))
		}
		// Online is relative to the caller's cutoff.
		if h, _ := s.HostByID(ctx, "h-7c1e", t0.Add(3*time.Minute)); h.Online {
			t.Error("host online although last seen before the cutoff")
		}

		wantErrIs(t, "TouchHost unknown", s.TouchHost(ctx, "h-nope", status), ErrNotFound)
		wantErrIs(t, "UpdateHostFacts unknown", s.UpdateHostFacts(ctx, "h-nope", facts), ErrNotFound)
		_, err = s.HostByID(ctx, "h-nope", t0)
		wantErrIs(t, "HostByID unknown", err, ErrNotFound)
	})
}

func TestRevokeHost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		must(t, s.TouchHost(ctx, "h-7c1e", finding.AgentStatus{Time: t0}))

		clock.Advance(time.Second)
		must(t, s.RevokeHost(ctx, "h-7c1e"))
		h, err := s.HostByID(ctx, "h-7c1e", t0)
		must(t, err)
		if !h.Revoked() || !h.RevokedAt.Equal(t0.Add(time.Second)) || h.Online {
			t.Errorf("revoked host: revoked at %v, online %v", h.RevokedAt, h.Online)
		}

		clock.Advance(time.Hour)
		wantErrIs(t, "second RevokeHost", s.RevokeHost(ctx, "h-7c1e"), ErrNotFound)
		h, err = s.HostByID(ctx, "h-7c1e", t0)
		must(t, err)
		if !h.RevokedAt.Equal(t0.Add(time.Second)) {
			t.Errorf("second revoke moved revoked_at to %v", h.RevokedAt)
		}
		wantErrIs(t, "RevokeHost unknown", s.RevokeHost(ctx, "h-nope"), ErrNotFound)
	})
}

func jsonOf(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
