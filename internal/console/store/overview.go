package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// HostCount is the fleet by connection state.
type HostCount struct {
	Online, Offline, Revoked int
}

// CountHosts counts hosts online (seen at or after onlineSince), offline and revoked.
func (s *Store) CountHosts(ctx context.Context, onlineSince time.Time) (HostCount, error) {
	var c HostCount
	err := s.queryRow(ctx, `SELECT
		COALESCE(SUM(CASE WHEN revoked_at = 0 AND last_seen >= ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN revoked_at = 0 AND last_seen < ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN revoked_at <> 0 THEN 1 ELSE 0 END), 0)
		FROM hosts`, ms(onlineSince), ms(onlineSince)).Scan(&c.Online, &c.Offline, &c.Revoked)
	if err != nil {
		return c, fmt.Errorf("count hosts: %w", err)
	}
	return c, nil
}

// HostGroups returns the groups hosts are enrolled in, sorted.
func (s *Store) HostGroups(ctx context.Context) ([]string, error) {
	return s.strings(ctx, `SELECT DISTINCT host_group FROM hosts ORDER BY host_group`)
}

// HostOSes returns the operating system IDs hosts reported, sorted.
func (s *Store) HostOSes(ctx context.Context) ([]string, error) {
	hosts, _, err := s.ListHosts(ctx, HostFilter{Limit: 1000})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		if id := h.Facts.OSID; id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// OpenEvents counts open events by severity name and by category, in one pass over an index.
func (s *Store) OpenEvents(ctx context.Context) (bySeverity map[string]int, byCategory map[finding.Category]int, err error) {
	rows, err := s.query(ctx, `SELECT severity, category, COUNT(*) FROM events WHERE status = 'open' GROUP BY severity, category`)
	if err != nil {
		return nil, nil, fmt.Errorf("count open events: %w", err)
	}
	defer rows.Close()
	bySeverity, byCategory = map[string]int{}, map[finding.Category]int{}
	for rows.Next() {
		var sev, n int
		var c string
		if err := rows.Scan(&sev, &c, &n); err != nil {
			return nil, nil, err
		}
		bySeverity[finding.Severity(sev).String()] += n
		byCategory[finding.Category(c)] += n
	}
	return bySeverity, byCategory, rows.Err()
}

// TrendPoint is the number of events first seen in one bucket of time.
type TrendPoint struct {
	Start time.Time
	Count int
}

// EventTrend counts events first seen in each bucket from since to now, oldest first, with
// empty buckets included so a chart shows quiet days as zero.
func (s *Store) EventTrend(ctx context.Context, since time.Time, bucket time.Duration) ([]TrendPoint, error) {
	step := bucket.Milliseconds()
	if step <= 0 {
		return nil, fmt.Errorf("trend bucket must be positive")
	}
	start := ms(since) / step * step
	rows, err := s.query(ctx, `SELECT (first_seen - ?) / ?, COUNT(*) FROM events WHERE first_seen >= ? GROUP BY 1`,
		start, step, start)
	if err != nil {
		return nil, fmt.Errorf("event trend: %w", err)
	}
	defer rows.Close()
	n := int((ms(s.Now())-start)/step) + 1
	out := make([]TrendPoint, n)
	for i := range out {
		out[i].Start = fromMS(start + int64(i)*step)
	}
	for rows.Next() {
		var i int64
		var c int
		if err := rows.Scan(&i, &c); err != nil {
			return nil, err
		}
		if i >= 0 && i < int64(n) {
			out[i].Count += c
		}
	}
	return out, rows.Err()
}

// SourceCount is one attacking address: how many events name it and how many attempts they
// folded together.
type SourceCount struct {
	IP       string
	Events   int
	Attempts int64
}

// TopSources returns the addresses named by the most events last seen at or after since.
func (s *Store) TopSources(ctx context.Context, since time.Time, limit int) ([]SourceCount, error) {
	ip := `json_extract(evidence, '$.source_ip')`
	if s.postgres {
		ip = `(evidence::jsonb ->> 'source_ip')`
	}
	rows, err := s.query(ctx, `SELECT `+ip+` AS ip, COUNT(*), SUM(count) FROM events
		WHERE last_seen >= ? AND category IN ('bruteforce', 'login', 'webattack', 'intel') AND `+ip+` <> ''
		GROUP BY ip ORDER BY COUNT(*) DESC, SUM(count) DESC, ip LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("top sources: %w", err)
	}
	defer rows.Close()
	var out []SourceCount
	for rows.Next() {
		var c SourceCount
		if err := rows.Scan(&c.IP, &c.Events, &c.Attempts); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// HostTask is one task as it runs on one host.
type HostTask struct {
	Task
	TaskHost
}

// TasksForHost returns the latest tasks of a host with their state there, newest first.
func (s *Store) TasksForHost(ctx context.Context, hostID string, limit int) ([]HostTask, error) {
	rows, err := s.query(ctx, `SELECT t.id, t.type, t.params, t.created_by, t.created_at, t.expires_at,
		th.task_id, th.host_id, th.state, th.progress, th.message, th.result, th.updated_at
		FROM task_hosts th JOIN tasks t ON t.id = th.task_id
		WHERE th.host_id = ? ORDER BY th.updated_at DESC, t.id LIMIT ?`, hostID, limit)
	if err != nil {
		return nil, fmt.Errorf("tasks of host %s: %w", hostID, err)
	}
	defer rows.Close()
	var out []HostTask
	for rows.Next() {
		var ht HostTask
		var params, result string
		var created, expires, up int64
		if err := rows.Scan(&ht.Task.ID, &ht.Type, &params, &ht.CreatedBy, &created, &expires,
			&ht.TaskID, &ht.HostID, &ht.State, &ht.Progress, &ht.Message, &result, &up); err != nil {
			return nil, err
		}
		ht.Params = []byte(params)
		if result != "" {
			ht.Result = []byte(result)
		}
		ht.CreatedAt, ht.ExpiresAt, ht.UpdatedAt = fromMS(created), fromMS(expires), fromMS(up)
		out = append(out, ht)
	}
	return out, rows.Err()
}

// GroupCount is one host group with its hosts.
type GroupCount struct {
	Name          string
	Hosts, Online int
}

// CountGroups returns every host group with its unrevoked hosts and how many are online.
func (s *Store) CountGroups(ctx context.Context, onlineSince time.Time) ([]GroupCount, error) {
	rows, err := s.query(ctx, `SELECT host_group, COUNT(*), COALESCE(SUM(CASE WHEN last_seen >= ? THEN 1 ELSE 0 END), 0)
		FROM hosts WHERE revoked_at = 0 GROUP BY host_group ORDER BY host_group`, ms(onlineSince))
	if err != nil {
		return nil, fmt.Errorf("count groups: %w", err)
	}
	defer rows.Close()
	var out []GroupCount
	for rows.Next() {
		var g GroupCount
		if err := rows.Scan(&g.Name, &g.Hosts, &g.Online); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
