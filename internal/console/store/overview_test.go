package store

import (
	"slices"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

func TestOverviewCountsTheEventSet(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		ids, _ := eventSet(t, s)

		sevs, cats, err := s.OpenEvents(ctx)
		must(t, err)
		if sevs["critical"] != 1 || sevs["high"] != 1 || sevs["medium"] != 0 {
			t.Errorf("open events by severity = %v (E3, the medium one, is handled)", sevs)
		}
		want := map[finding.Category]int{finding.CategoryBruteForce: 1, finding.CategoryWebshell: 1, finding.CategoryVuln: 1, finding.CategoryLogin: 1}
		for c, n := range want {
			if cats[c] != n {
				t.Errorf("open %s events = %d, want %d (all: %v)", c, cats[c], n, cats)
			}
		}

		trend, err := s.EventTrend(ctx, t0.Add(-2*time.Hour), time.Hour)
		must(t, err)
		total := 0
		for _, p := range trend {
			total += p.Count
		}
		if total != len(ids) {
			t.Errorf("trend counts %d events, want %d: %+v", total, len(ids), trend)
		}
		if len(trend) < 2 || !trend[0].Start.Before(trend[1].Start) {
			t.Errorf("trend is not oldest first with hourly buckets: %+v", trend)
		}

		top, err := s.TopSources(ctx, t0.Add(-24*time.Hour), 10)
		must(t, err)
		var ips []string
		for _, c := range top {
			ips = append(ips, c.IP)
		}
		for _, ip := range []string{"203.0.113.7", "198.51.100.23", "192.0.2.44"} {
			if !slices.Contains(ips, ip) {
				t.Errorf("top sources %v lack %s", ips, ip)
			}
		}

		hc, err := s.CountHosts(ctx, t0.Add(-time.Minute))
		must(t, err)
		if hc.Online+hc.Offline != 2 {
			t.Errorf("CountHosts = %+v, want two hosts in all", hc)
		}
		gc, err := s.CountGroups(ctx, t0.Add(-24*time.Hour))
		must(t, err)
		if len(gc) != 2 || gc[0].Name != "db-prod" || gc[0].Hosts != 1 {
			t.Errorf("CountGroups = %+v", gc)
		}
		groups, err := s.HostGroups(ctx)
		must(t, err)
		if !slices.Equal(groups, []string{"db-prod", "web-prod"}) {
			t.Errorf("HostGroups = %v", groups)
		}
	})
}

func TestWebhooksRoundTripAndNewEventFeed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		w := Webhook{ID: "wh-1", Name: "soc", URL: "https://hooks.example.com/palisade", Secret: "s3cret",
			MinSeverity: finding.SeverityHigh, Categories: []finding.Category{finding.CategoryMalware}, Enabled: true,
			CreatedBy: "alice", CreatedAt: t0}
		must(t, s.CreateWebhook(ctx, w))
		got, err := s.Webhooks(ctx)
		must(t, err)
		if len(got) != 1 || got[0].Secret != "s3cret" || got[0].MinSeverity != finding.SeverityHigh || !got[0].Enabled ||
			!slices.Equal(got[0].Categories, w.Categories) {
			t.Fatalf("Webhooks = %+v", got)
		}
		if !got[0].Wants(finding.SeverityCritical, finding.CategoryMalware) || got[0].Wants(finding.SeverityMedium, finding.CategoryMalware) ||
			got[0].Wants(finding.SeverityCritical, finding.CategoryLogin) {
			t.Error("Wants does not follow severity and categories")
		}
		must(t, s.SetWebhookEnabled(ctx, "wh-1", false))
		must(t, s.RecordWebhookDelivery(ctx, "wh-1", "200 OK"))
		got, _ = s.Webhooks(ctx)
		if got[0].Enabled || got[0].LastStatus != "200 OK" {
			t.Errorf("after disable and delivery: %+v", got[0])
		}
		must(t, s.DeleteWebhook(ctx, "wh-1"))
		wantErrIs(t, "delete twice", s.DeleteWebhook(ctx, "wh-1"), ErrNotFound)

		ids, _ := eventSet(t, s)
		var seen []string
		var at time.Time
		var id string
		for {
			evs, err := s.EventsCreatedAfter(ctx, at, id, 2)
			must(t, err)
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				seen = append(seen, e.ID)
			}
			at, id = evs[len(evs)-1].FirstSeen, evs[len(evs)-1].ID
		}
		if len(seen) != len(ids) {
			t.Errorf("feed returned %d events, want %d", len(seen), len(ids))
		}
	})
}
