package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Event statuses.
const (
	StatusOpen    = "open"
	StatusHandled = "handled"
	StatusIgnored = "ignored"
)

// ValidStatus reports whether st is an event status.
func ValidStatus(st string) bool {
	return st == StatusOpen || st == StatusHandled || st == StatusIgnored
}

// Event is one or more findings with the same aggregation key on one host, folded together
// while the event stays open and the findings keep coming within the aggregation window.
type Event struct {
	ID        string           `json:"id"`
	HostID    string           `json:"host_id"`
	Hostname  string           `json:"hostname"`
	Key       string           `json:"key"`
	RuleID    string           `json:"rule_id"`
	Category  finding.Category `json:"category"`
	Severity  string           `json:"severity"`
	Title     string           `json:"title"`
	Action    string           `json:"action,omitempty"`
	MITRE     []string         `json:"mitre,omitempty"`
	Evidence  finding.Evidence `json:"evidence"`
	Count     int64            `json:"count"`
	FirstSeen time.Time        `json:"first_seen"`
	LastSeen  time.Time        `json:"last_seen"`
	Status    string           `json:"status"`
	HandledBy string           `json:"handled_by,omitempty"`
	HandledAt time.Time        `json:"handled_at,omitzero"`
	Comment   string           `json:"comment,omitempty"`
}

// IngestResult counts what happened to a batch of findings.
type IngestResult struct {
	New        int // opened a new event
	Aggregated int // folded into an open event
	Duplicate  int // already stored (redelivery): ignored
}

// IngestFindings stores findings from one host in one transaction. Each finding ID is recorded
// once, so redelivered findings are recognised and skipped: delivery is at-least-once, storage is
// exactly-once. A finding whose key matches an open event on the host seen within window is
// folded into it (count, last seen, latest evidence, highest severity); otherwise it opens a new
// event.
func (s *Store) IngestFindings(ctx context.Context, hostID string, fs []finding.Finding, window time.Duration) (IngestResult, error) {
	var r IngestResult
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r = IngestResult{}
		now := ms(s.Now())
		// Events touched by this batch, so a storm of one key costs one lookup.
		open := map[string]*openEvent{}
		for i := range fs {
			f := &fs[i]
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO finding_ids(id, event_id, received_at) VALUES (?, '', ?) ON CONFLICT (id) DO NOTHING`), f.ID, now)
			if err != nil {
				return fmt.Errorf("record finding %s: %w", f.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				r.Duplicate++
				continue
			}
			key := f.Key()
			ev, err := s.findOpenEvent(ctx, tx, open, hostID, key, f.Time.Add(-window))
			if err != nil {
				return err
			}
			if ev != nil {
				ev.fold(f)
				r.Aggregated++
			} else {
				ev = newOpenEvent(f)
				open[key] = ev
				r.New++
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE finding_ids SET event_id = ? WHERE id = ?`), ev.id, f.ID); err != nil {
				return err
			}
		}
		for key, ev := range open {
			if err := s.writeEvent(ctx, tx, hostID, key, ev); err != nil {
				return err
			}
		}
		return nil
	})
	return r, err
}

// openEvent is an event being updated inside one ingest transaction.
type openEvent struct {
	id                  string
	exists              bool
	f                   *finding.Finding // latest finding
	severity            finding.Severity
	count               int64
	firstSeen, lastSeen int64
}

func newOpenEvent(f *finding.Finding) *openEvent {
	t := ms(f.Time)
	return &openEvent{id: finding.NewID(), f: f, severity: f.Severity, count: int64(max(f.Evidence.Count, 1)), firstSeen: t, lastSeen: t}
}

func (e *openEvent) fold(f *finding.Finding) {
	t := ms(f.Time)
	e.count += int64(max(f.Evidence.Count, 1))
	if t >= e.lastSeen {
		e.lastSeen, e.f = t, f
	}
	e.firstSeen = min(e.firstSeen, t)
	e.severity = max(e.severity, f.Severity)
}

func (s *Store) findOpenEvent(ctx context.Context, tx *sql.Tx, open map[string]*openEvent, hostID, key string, since time.Time) (*openEvent, error) {
	if ev, ok := open[key]; ok {
		if ev.lastSeen >= ms(since) {
			return ev, nil
		}
		// Out of the window: the batch's event is written and a new one starts.
		delete(open, key)
		if err := s.writeEvent(ctx, tx, hostID, key, ev); err != nil {
			return nil, err
		}
		return nil, nil
	}
	ev := &openEvent{exists: true}
	var sev int
	err := tx.QueryRowContext(ctx, s.q(`SELECT id, severity, count, first_seen, last_seen FROM events
		WHERE host_id = ? AND agg_key = ? AND status = 'open' AND last_seen >= ? ORDER BY last_seen DESC LIMIT 1`),
		hostID, key, ms(since)).Scan(&ev.id, &sev, &ev.count, &ev.firstSeen, &ev.lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find open event: %w", err)
	}
	ev.severity = finding.Severity(sev)
	open[key] = ev
	return ev, nil
}

func (s *Store) writeEvent(ctx context.Context, tx *sql.Tx, hostID, key string, ev *openEvent) error {
	if ev.f == nil { // looked up but nothing folded in
		return nil
	}
	f := ev.f
	if ev.exists {
		_, err := tx.ExecContext(ctx, s.q(`UPDATE events SET severity = ?, title = ?, action = ?, mitre = ?, evidence = ?,
			count = ?, first_seen = ?, last_seen = ? WHERE id = ?`),
			int(ev.severity), f.Title, f.Action, jsonText(f.MITRE), jsonText(f.Evidence), ev.count, ev.firstSeen, ev.lastSeen, ev.id)
		if err != nil {
			return fmt.Errorf("update event %s: %w", ev.id, err)
		}
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO events(id, host_id, agg_key, rule_id, category, severity, title, action, mitre,
		evidence, count, first_seen, last_seen, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')`),
		ev.id, hostID, key, f.RuleID, string(f.Category), int(ev.severity), f.Title, f.Action, jsonText(f.MITRE),
		jsonText(f.Evidence), ev.count, ev.firstSeen, ev.lastSeen)
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	ev.exists = true
	return nil
}

// EventFilter selects events. Zero fields match everything.
type EventFilter struct {
	HostID      string
	Category    string
	MinSeverity *finding.Severity
	Status      string
	Since       time.Time // last seen at or after
	Until       time.Time // last seen before
	Limit       int       // default 100, at most 1000
	Offset      int
}

const eventCols = `e.id, e.host_id, COALESCE(h.hostname, ''), e.agg_key, e.rule_id, e.category, e.severity, e.title, e.action,
	e.mitre, e.evidence, e.count, e.first_seen, e.last_seen, e.status, e.handled_by, e.handled_at, e.comment`

func scanEvent(row interface{ Scan(...any) error }) (Event, error) {
	var e Event
	var sev int
	var mitre, evidence string
	var first, last, handled int64
	err := row.Scan(&e.ID, &e.HostID, &e.Hostname, &e.Key, &e.RuleID, &e.Category, &sev, &e.Title, &e.Action,
		&mitre, &evidence, &e.Count, &first, &last, &e.Status, &e.HandledBy, &handled, &e.Comment)
	if err != nil {
		return e, err
	}
	e.Severity = finding.Severity(sev).String()
	e.FirstSeen, e.LastSeen, e.HandledAt = fromMS(first), fromMS(last), fromMS(handled)
	if err := json.Unmarshal([]byte(mitre), &e.MITRE); err != nil {
		return e, fmt.Errorf("event %s mitre: %w", e.ID, err)
	}
	if err := json.Unmarshal([]byte(evidence), &e.Evidence); err != nil {
		return e, fmt.Errorf("event %s evidence: %w", e.ID, err)
	}
	return e, nil
}

// ListEvents returns matching events, most recent first, and the total count before paging.
func (s *Store) ListEvents(ctx context.Context, f EventFilter) ([]Event, int, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.HostID != "" {
		add(`e.host_id = ?`, f.HostID)
	}
	if f.Category != "" {
		add(`e.category = ?`, f.Category)
	}
	if f.MinSeverity != nil {
		add(`e.severity >= ?`, int(*f.MinSeverity))
	}
	if f.Status != "" {
		add(`e.status = ?`, f.Status)
	}
	if !f.Since.IsZero() {
		add(`e.last_seen >= ?`, ms(f.Since))
	}
	if !f.Until.IsZero() {
		add(`e.last_seen < ?`, ms(f.Until))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM events e`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count events: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	rows, err := s.query(ctx, `SELECT `+eventCols+` FROM events e LEFT JOIN hosts h ON h.id = e.host_id`+cond+
		` ORDER BY e.last_seen DESC, e.id LIMIT ? OFFSET ?`, append(args, limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, total, rows.Err()
}

// EventByID returns one event.
func (s *Store) EventByID(ctx context.Context, id string) (Event, error) {
	e, err := scanEvent(s.queryRow(ctx, `SELECT `+eventCols+` FROM events e LEFT JOIN hosts h ON h.id = e.host_id WHERE e.id = ?`, id))
	return e, notFound(err, "event "+id)
}

// HandleEvent sets an event's status with the operator's comment.
func (s *Store) HandleEvent(ctx context.Context, id, status, actor, comment string) error {
	if !ValidStatus(status) {
		return fmt.Errorf("unknown event status %q", status)
	}
	res, err := s.exec(ctx, `UPDATE events SET status = ?, handled_by = ?, handled_at = ?, comment = ? WHERE id = ?`,
		status, actor, ms(s.Now()), comment, id)
	return affectedOne(res, err, "event "+id)
}

// FindingCount returns how many distinct findings are stored (for tests and metrics).
func (s *Store) FindingCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM finding_ids`).Scan(&n)
	return n, err
}

// HasFinding reports whether the finding with id is stored.
func (s *Store) HasFinding(ctx context.Context, id string) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM finding_ids WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

// EventCounts returns open events by severity name.
func (s *Store) EventCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT severity, COUNT(*) FROM events WHERE status = 'open' GROUP BY severity`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var sev, n int
		if err := rows.Scan(&sev, &n); err != nil {
			return nil, err
		}
		out[finding.Severity(sev).String()] = n
	}
	return out, rows.Err()
}
