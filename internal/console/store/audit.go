package store

import (
	"context"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// AuditEntry records one operator action.
type AuditEntry struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
}

// Audit appends an entry; ID and time are filled when empty.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.ID == "" {
		e.ID = finding.NewID()
	}
	if e.At.IsZero() {
		e.At = s.Now()
	}
	_, err := s.exec(ctx, `INSERT INTO audit_log(id, at, actor, action, target, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.ID, ms(e.At), e.Actor, e.Action, e.Target, e.Detail, e.Remote)
	return err
}

// ListAudit returns entries newest first; actor and action filter when not empty.
func (s *Store) ListAudit(ctx context.Context, actor, action string, limit, offset int) ([]AuditEntry, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT id, at, actor, action, target, detail, remote FROM audit_log
		WHERE (? = '' OR actor = ?) AND (? = '' OR action = ?) ORDER BY at DESC, id LIMIT ? OFFSET ?`,
		actor, actor, action, action, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Detail, &e.Remote); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
