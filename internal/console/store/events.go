package store

import (
	"context"
	"encoding/json"
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
