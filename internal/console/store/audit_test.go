package store

import (
	"slices"
	"testing"
	"time"
)

func TestAuditListFiltersAndOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		entries := []AuditEntry{
			{ID: "a1", At: t0.Add(-3 * time.Hour), Actor: "alice", Action: "user.create", Target: "user:bob", Detail: "role analyst", Remote: "10.0.0.5"},
			{ID: "a2", At: t0.Add(-2 * time.Hour), Actor: "bob", Action: "event.handle", Target: "event:01J8Z", Detail: "handled", Remote: "10.0.0.9"},
			{ID: "a3", At: t0.Add(-time.Hour), Actor: "alice", Action: "token.create", Target: "enroll:et-web", Remote: "10.0.0.5"},
			{ID: "a4", At: t0.Add(-time.Hour), Actor: "alice", Action: "host.revoke", Target: "host:h-e81a", Detail: "decommissioned"},
			{ID: "a5", At: t0.Add(-30 * time.Minute), Actor: "bob", Action: "event.handle", Target: "event:01J90", Detail: "ignored"},
		}
		for _, e := range entries {
			must(t, s.Audit(ctx, e))
		}
		// ID and time are filled when empty.
		must(t, s.Audit(ctx, AuditEntry{Actor: "system", Action: "tasks.expire", Target: "task:t-short"}))

		all, err := s.ListAudit(ctx, "", "", 0, 0)
		must(t, err)
		if len(all) != 6 {
			t.Fatalf("ListAudit = %d entries, want 6", len(all))
		}
		auto := all[0]
		if auto.Actor != "system" || len(auto.ID) != 32 || !auto.At.Equal(clock.Now()) {
			t.Errorf("entry with defaults: %+v", auto)
		}
		if got := all[1:]; jsonOf(t, got[len(got)-1]) != jsonOf(t, entries[0]) {
			t.Errorf("oldest entry = %+v, want %+v", got[len(got)-1], entries[0])
		}

		ids := func(es []AuditEntry) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.ID)
			}
			return out
		}
		cases := []struct {
			name          string
			actor, action string
			limit, offset int
			want          []string
		}{
			// Newest first; a3 and a4 share a time and are ordered by ID.
			{"everything", "", "", 0, 0, []string{auto.ID, "a5", "a3", "a4", "a2", "a1"}},
			{"actor", "alice", "", 0, 0, []string{"a3", "a4", "a1"}},
			{"action", "", "event.handle", 0, 0, []string{"a5", "a2"}},
			{"actor and action", "bob", "event.handle", 0, 0, []string{"a5", "a2"}},
			{"actor and another's action", "alice", "event.handle", 0, 0, nil},
			{"unknown actor", "mallory", "", 0, 0, nil},
			{"limit", "", "", 2, 0, []string{auto.ID, "a5"}},
			{"limit and offset", "", "", 2, 2, []string{"a3", "a4"}},
			{"offset past the end", "", "", 10, 6, nil},
			{"filtered page", "alice", "", 1, 1, []string{"a4"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListAudit(ctx, tc.actor, tc.action, tc.limit, tc.offset)
				must(t, err)
				if !slices.Equal(ids(got), tc.want) {
					t.Errorf("ListAudit(%q, %q, %d, %d) = %v, want %v", tc.actor, tc.action, tc.limit, tc.offset, ids(got), tc.want)
				}
			})
		}
	})
}
