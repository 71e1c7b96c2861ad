package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// IngestResult counts what happened to a batch of findings.
type IngestResult struct {
	New        int // opened a new event
	Aggregated int // folded into an open event
	Duplicate  int // already stored (redelivery): ignored
}

// chunk bounds the rows of one multi-row statement (SQLite allows 32,766 parameters).
const chunk = 400

// IngestFindings stores findings from one host in one transaction. Each finding ID is recorded
// once, so redelivered findings are recognised and skipped: delivery is at-least-once, storage is
// exactly-once. A finding whose key matches an open event on the host seen within window is
// folded into it (count, last seen, latest evidence, highest severity); otherwise it opens a new
// event.
//
// The work is done set-wise, a few statements per batch rather than several per finding: one
// look-up of known IDs, one of open events for the batch's keys, multi-row inserts of finding IDs
// and new events, and one update per event that grew.
func (s *Store) IngestFindings(ctx context.Context, hostID string, fs []finding.Finding, window time.Duration) (IngestResult, error) {
	var r IngestResult
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r = IngestResult{}
		fresh, err := s.unseen(ctx, tx, fs)
		if err != nil {
			return err
		}
		r.Duplicate = len(fs) - len(fresh)
		if len(fresh) == 0 {
			return nil
		}
		open, err := s.openEvents(ctx, tx, hostID, fresh, window)
		if err != nil {
			return err
		}
		// Events in the order this batch first touched them, each once.
		var touched []*openEvent
		seen := map[*openEvent]bool{}
		eventOf := make([]string, len(fresh))
		for i, f := range fresh {
			key := f.Key()
			if ev := open[key]; ev != nil && ev.lastSeen >= ms(f.Time.Add(-window)) {
				ev.fold(f)
				r.Aggregated++
			} else {
				open[key] = newOpenEvent(f)
				r.New++
			}
			ev := open[key]
			if !seen[ev] {
				seen[ev] = true
				touched = append(touched, ev)
			}
			eventOf[i] = ev.id
		}
		if err := s.insertFindingIDs(ctx, tx, fresh, eventOf); err != nil {
			return err
		}
		return s.writeEvents(ctx, tx, hostID, touched)
	})
	return r, err
}

// openEvent is an event being updated inside one ingest transaction.
type openEvent struct {
	id                  string
	key                 string
	fresh               bool             // not in the database yet
	f                   *finding.Finding // latest finding folded in; nil when none yet
	severity            finding.Severity
	count               int64
	firstSeen, lastSeen int64
}

func newOpenEvent(f *finding.Finding) *openEvent {
	t := ms(f.Time)
	return &openEvent{id: finding.NewID(), key: f.Key(), fresh: true, f: f, severity: f.Severity,
		count: int64(max(f.Evidence.Count, 1)), firstSeen: t, lastSeen: t}
}

// fold adds f to the event. The event shows the evidence of its latest finding; a finding older
// than what the database already holds only adds to the count and time span.
func (e *openEvent) fold(f *finding.Finding) {
	t := ms(f.Time)
	e.count += int64(max(f.Evidence.Count, 1))
	if t >= e.lastSeen {
		e.lastSeen, e.f = t, f
	}
	e.firstSeen = min(e.firstSeen, t)
	e.severity = max(e.severity, f.Severity)
}

// inList returns a membership test for values and its arguments. PostgreSQL gets one array
// parameter: its plan then probes the index per value even when cached as a generic plan,
// where a long IN list of parameters can degrade to a scan of the host's rows.
func (s *Store) inList(values []string) (string, []any) {
	if s.postgres {
		return "= ANY(?)", []any{values}
	}
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return "IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(values)), ", ") + ")", args
}

// placeholders returns "(?, ?), (?, ?)" for n rows of width columns.
func placeholders(n, width int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// unseen returns the findings whose IDs are not stored yet, without repeats within the batch.
func (s *Store) unseen(ctx context.Context, tx *sql.Tx, fs []finding.Finding) ([]*finding.Finding, error) {
	known := map[string]bool{}
	for lo := 0; lo < len(fs); lo += chunk {
		part := fs[lo:min(lo+chunk, len(fs))]
		ids := make([]string, len(part))
		for i := range part {
			ids[i] = part[i].ID
		}
		in, args := s.inList(ids)
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM finding_ids WHERE id `+in), args...)
		if err != nil {
			return nil, fmt.Errorf("look up finding IDs: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			known[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	out := make([]*finding.Finding, 0, len(fs))
	for i := range fs {
		if !known[fs[i].ID] {
			known[fs[i].ID] = true
			out = append(out, &fs[i])
		}
	}
	return out, nil
}

// openEvents loads, per aggregation key of fs, the host's most recent open event that any of
// them could fold into.
func (s *Store) openEvents(ctx context.Context, tx *sql.Tx, hostID string, fs []*finding.Finding, window time.Duration) (map[string]*openEvent, error) {
	var keys []string
	seen := map[string]bool{}
	oldest := fs[0].Time
	for _, f := range fs {
		if k := f.Key(); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		if f.Time.Before(oldest) {
			oldest = f.Time
		}
	}
	out := map[string]*openEvent{}
	for lo := 0; lo < len(keys); lo += chunk {
		part := keys[lo:min(lo+chunk, len(keys))]
		in, inArgs := s.inList(part)
		args := append([]any{hostID, ms(oldest.Add(-window))}, inArgs...)
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, agg_key, severity, count, first_seen, last_seen FROM events
			WHERE host_id = ? AND status = 'open' AND last_seen >= ? AND agg_key `+in), args...)
		if err != nil {
			return nil, fmt.Errorf("find open events: %w", err)
		}
		for rows.Next() {
			ev := &openEvent{}
			var sev int
			if err := rows.Scan(&ev.id, &ev.key, &sev, &ev.count, &ev.firstSeen, &ev.lastSeen); err != nil {
				rows.Close()
				return nil, err
			}
			ev.severity = finding.Severity(sev)
			if cur := out[ev.key]; cur == nil || ev.lastSeen > cur.lastSeen {
				out[ev.key] = ev
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// insertFindingIDs records the batch's new findings. A conflict here means another transaction
// stored one of them meanwhile (PostgreSQL, two streams of one host): the whole batch fails, is
// not acknowledged, and its redelivery finds them known.
func (s *Store) insertFindingIDs(ctx context.Context, tx *sql.Tx, fs []*finding.Finding, eventOf []string) error {
	now := ms(s.Now())
	for lo := 0; lo < len(fs); lo += chunk {
		hi := min(lo+chunk, len(fs))
		args := make([]any, 0, 3*(hi-lo))
		for i := lo; i < hi; i++ {
			args = append(args, fs[i].ID, eventOf[i], now)
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO finding_ids(id, event_id, received_at) VALUES `+placeholders(hi-lo, 3)+
			` ON CONFLICT (id) DO NOTHING`), args...)
		if err != nil {
			return fmt.Errorf("record finding IDs: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(hi-lo) {
			return fmt.Errorf("record finding IDs: %d of %d were new; another ingest raced this batch", n, hi-lo)
		}
	}
	return nil
}

// writeEvents inserts new events in bulk and updates the ones that grew.
func (s *Store) writeEvents(ctx context.Context, tx *sql.Tx, hostID string, evs []*openEvent) error {
	var fresh []*openEvent
	for _, ev := range evs {
		if ev.fresh {
			fresh = append(fresh, ev)
			continue
		}
		f := ev.f
		if f == nil { // only older findings: the shown evidence stays
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE events SET severity = ?, count = ?, first_seen = ? WHERE id = ?`),
				int(ev.severity), ev.count, ev.firstSeen, ev.id); err != nil {
				return fmt.Errorf("update event %s: %w", ev.id, err)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE events SET severity = ?, title = ?, action = ?, mitre = ?, evidence = ?,
			count = ?, first_seen = ?, last_seen = ? WHERE id = ?`),
			int(ev.severity), f.Title, f.Action, jsonText(f.MITRE), jsonText(f.Evidence), ev.count, ev.firstSeen, ev.lastSeen, ev.id); err != nil {
			return fmt.Errorf("update event %s: %w", ev.id, err)
		}
	}
	const width = 14
	for lo := 0; lo < len(fresh); lo += chunk / 4 {
		hi := min(lo+chunk/4, len(fresh))
		args := make([]any, 0, width*(hi-lo))
		for _, ev := range fresh[lo:hi] {
			f := ev.f
			args = append(args, ev.id, hostID, ev.key, f.RuleID, string(f.Category), int(ev.severity), f.Title, f.Action,
				jsonText(f.MITRE), jsonText(f.Evidence), ev.count, ev.firstSeen, ev.lastSeen, StatusOpen)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO events(id, host_id, agg_key, rule_id, category, severity, title, action, mitre,
			evidence, count, first_seen, last_seen, status) VALUES `+placeholders(hi-lo, width)), args...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	return nil
}
