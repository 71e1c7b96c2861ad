package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Host is an enrolled server.
type Host struct {
	ID         string              `json:"id"`
	Hostname   string              `json:"hostname"`
	Group      string              `json:"group"`
	CertSerial string              `json:"-"`
	EnrolledAt time.Time           `json:"enrolled_at"`
	LastSeen   time.Time           `json:"last_seen,omitzero"`
	RevokedAt  time.Time           `json:"revoked_at,omitzero"`
	Online     bool                `json:"online"`
	Facts      finding.HostFacts   `json:"facts"`
	Status     finding.AgentStatus `json:"status"`
	// Firewall is the agent's blocking backend ("nftables", "ipset"), empty when it cannot block.
	Firewall string `json:"firewall,omitempty"`
}

// Revoked reports whether the host has been cut off.
func (h Host) Revoked() bool { return !h.RevokedAt.IsZero() }

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

const hostCols = `id, hostname, host_group, cert_serial, enrolled_at, last_seen, revoked_at, facts, status, firewall`

func scanHost(row interface{ Scan(...any) error }, onlineSince time.Time) (Host, error) {
	var h Host
	var enrolled, seen, revoked int64
	var facts, status string
	if err := row.Scan(&h.ID, &h.Hostname, &h.Group, &h.CertSerial, &enrolled, &seen, &revoked, &facts, &status, &h.Firewall); err != nil {
		return h, err
	}
	h.EnrolledAt, h.LastSeen, h.RevokedAt = fromMS(enrolled), fromMS(seen), fromMS(revoked)
	// Compared in stored milliseconds, as ListHosts' online filter does.
	h.Online = !h.Revoked() && seen > 0 && seen >= ms(onlineSince)
	if err := json.Unmarshal([]byte(facts), &h.Facts); err != nil {
		return h, fmt.Errorf("host %s facts: %w", h.ID, err)
	}
	if err := json.Unmarshal([]byte(status), &h.Status); err != nil {
		return h, fmt.Errorf("host %s status: %w", h.ID, err)
	}
	return h, nil
}

// HostByID returns one host. onlineSince is the oldest last-seen time that counts as online.
func (s *Store) HostByID(ctx context.Context, id string, onlineSince time.Time) (Host, error) {
	h, err := scanHost(s.queryRow(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = ?`, id), onlineSince)
	return h, notFound(err, "host "+id)
}

// HostFilter selects hosts. Zero fields match everything.
type HostFilter struct {
	Search      string // substring of hostname or ID
	Group       string
	OSID        string // os_id the agent reported ("debian", "rhel")
	Online      *bool
	OnlineSince time.Time
	Limit       int
	Offset      int
}

// ListHosts returns matching hosts by hostname, and the total count before paging.
func (s *Store) ListHosts(ctx context.Context, f HostFilter) ([]Host, int, error) {
	var where []string
	var args []any
	if f.Search != "" {
		// LIKE is case-insensitive on SQLite but not on PostgreSQL; fold both sides alike.
		where = append(where, `(LOWER(hostname) LIKE LOWER(?) OR LOWER(id) LIKE LOWER(?))`)
		like := "%" + escapeLike(f.Search) + "%"
		args = append(args, like, like)
	}
	if f.Group != "" {
		where = append(where, `host_group = ?`)
		args = append(args, f.Group)
	}
	if f.OSID != "" {
		if s.postgres {
			where = append(where, `(facts::jsonb ->> 'os_id') = ?`)
		} else {
			where = append(where, `json_extract(facts, '$.os_id') = ?`)
		}
		args = append(args, f.OSID)
	}
	if f.Online != nil {
		if *f.Online {
			where = append(where, `revoked_at = 0 AND last_seen >= ?`)
		} else {
			where = append(where, `NOT (revoked_at = 0 AND last_seen >= ?)`)
		}
		args = append(args, ms(f.OnlineSince))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM hosts`+cond, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	rows, err := s.query(ctx, `SELECT `+hostCols+` FROM hosts`+cond+` ORDER BY hostname, id LIMIT ? OFFSET ?`,
		append(args, limit, f.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		h, err := scanHost(rows, f.OnlineSince)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, h)
	}
	return out, total, rows.Err()
}

func escapeLike(s string) string {
	// LIKE wildcards in a search term are matched literally by dropping them; hostnames and
	// IDs never contain them.
	return strings.NewReplacer("%", "", "_", "").Replace(s)
}

// UpdateHostFacts records the facts an agent sent on connect.
func (s *Store) UpdateHostFacts(ctx context.Context, id string, f finding.HostFacts) error {
	res, err := s.exec(ctx, `UPDATE hosts SET facts = ?, hostname = ?, last_seen = ? WHERE id = ?`,
		jsonText(f), f.Hostname, ms(s.Now()), id)
	return affectedOne(res, err, "host "+id)
}

// TouchHost records a heartbeat.
func (s *Store) TouchHost(ctx context.Context, id string, st finding.AgentStatus) error {
	res, err := s.exec(ctx, `UPDATE hosts SET status = ?, last_seen = ? WHERE id = ?`, jsonText(st), ms(s.Now()), id)
	return affectedOne(res, err, "host "+id)
}

// RevokeHost cuts a host off; its certificate is refused from then on.
func (s *Store) RevokeHost(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `UPDATE hosts SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, ms(s.Now()), id)
	return affectedOne(res, err, "unrevoked host "+id)
}
