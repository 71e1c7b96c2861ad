package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// ActiveBlock is an IP block in force on a host, as the host last reported it.
type ActiveBlock struct {
	HostID     string    `json:"host_id"`
	Hostname   string    `json:"hostname"`
	Prefix     string    `json:"prefix"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
	Source     string    `json:"source"`
	ReportedAt time.Time `json:"reported_at"`
}

// ReplaceBlocks stores a host's full list of active blocks and its firewall backend.
func (s *Store) ReplaceBlocks(ctx context.Context, hostID, backend string, blocks []ActiveBlock) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM blocks WHERE host_id = ?`), hostID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE hosts SET firewall = ? WHERE id = ?`), backend, hostID); err != nil {
			return err
		}
		now := ms(s.Now())
		for lo := 0; lo < len(blocks); lo += chunk / 8 {
			hi := min(lo+chunk/8, len(blocks))
			args := make([]any, 0, 6*(hi-lo))
			for _, b := range blocks[lo:hi] {
				args = append(args, hostID, b.Prefix, ms(b.ExpiresAt), b.Reason, b.Source, now)
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO blocks(host_id, prefix, expires_at, reason, source, reported_at) VALUES `+
				placeholders(hi-lo, 6)+` ON CONFLICT (host_id, prefix) DO NOTHING`), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// BlockFilter selects active blocks.
type BlockFilter struct {
	HostID string
	Prefix string // exact prefix, as reported ("203.0.113.7/32")
	Source string // prefix of the source: "auto", "operator"
	Limit  int
	Offset int
}

// ListBlocks returns blocks that have not expired, newest first, and their total.
func (s *Store) ListBlocks(ctx context.Context, f BlockFilter) ([]ActiveBlock, int, error) {
	where := []string{`(b.expires_at = 0 OR b.expires_at > ?)`}
	args := []any{ms(s.Now())}
	if f.HostID != "" {
		where, args = append(where, `b.host_id = ?`), append(args, f.HostID)
	}
	if f.Prefix != "" {
		where, args = append(where, `b.prefix = ?`), append(args, f.Prefix)
	}
	if f.Source != "" {
		where, args = append(where, `b.source LIKE ?`), append(args, escapeLike(f.Source)+"%")
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM blocks b`+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.query(ctx, `SELECT b.host_id, COALESCE(h.hostname, ''), b.prefix, b.expires_at, b.reason, b.source, b.reported_at
		FROM blocks b LEFT JOIN hosts h ON h.id = b.host_id`+cond+` ORDER BY b.reported_at DESC, b.host_id, b.prefix LIMIT ? OFFSET ?`,
		append(args, limit, f.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []ActiveBlock
	for rows.Next() {
		var b ActiveBlock
		var exp, rep int64
		if err := rows.Scan(&b.HostID, &b.Hostname, &b.Prefix, &exp, &b.Reason, &b.Source, &rep); err != nil {
			return nil, 0, err
		}
		b.ExpiresAt, b.ReportedAt = fromMS(exp), fromMS(rep)
		out = append(out, b)
	}
	return out, total, rows.Err()
}
