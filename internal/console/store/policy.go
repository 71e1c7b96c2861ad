package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Policy scopes: the fleet, or one host group.
const FleetScope = "fleet"

// GroupScope names a group's policy scope.
func GroupScope(group string) string { return "group:" + group }

// StoredPolicy is a policy as saved by an operator.
type StoredPolicy struct {
	Scope     string    `json:"scope"`
	Body      string    `json:"-"`
	Version   string    `json:"version"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// SetPolicy saves the policy of a scope.
func (s *Store) SetPolicy(ctx context.Context, p StoredPolicy) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM policies WHERE scope = ?`), p.Scope); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO policies(scope, body, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?)`),
			p.Scope, p.Body, p.Version, p.UpdatedBy, ms(s.Now()))
		return err
	})
}

// DeletePolicy removes a scope's policy, so its hosts fall back to the fleet's.
func (s *Store) DeletePolicy(ctx context.Context, scope string) error {
	res, err := s.exec(ctx, `DELETE FROM policies WHERE scope = ?`, scope)
	return affectedOne(res, err, "policy "+scope)
}

// Policy returns one scope's policy.
func (s *Store) Policy(ctx context.Context, scope string) (StoredPolicy, error) {
	var p StoredPolicy
	var at int64
	err := s.queryRow(ctx, `SELECT scope, body, version, updated_by, updated_at FROM policies WHERE scope = ?`, scope).
		Scan(&p.Scope, &p.Body, &p.Version, &p.UpdatedBy, &at)
	p.UpdatedAt = fromMS(at)
	return p, notFound(err, "policy "+scope)
}

// Policies lists every saved policy.
func (s *Store) Policies(ctx context.Context) ([]StoredPolicy, error) {
	rows, err := s.query(ctx, `SELECT scope, body, version, updated_by, updated_at FROM policies ORDER BY scope`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredPolicy
	for rows.Next() {
		var p StoredPolicy
		var at int64
		if err := rows.Scan(&p.Scope, &p.Body, &p.Version, &p.UpdatedBy, &at); err != nil {
			return nil, err
		}
		p.UpdatedAt = fromMS(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// EffectivePolicy returns the policy that applies to a host of group: the group's, else the
// fleet's. ok is false when neither is saved (the built-in default applies).
func (s *Store) EffectivePolicy(ctx context.Context, group string) (p StoredPolicy, ok bool, err error) {
	for _, scope := range []string{GroupScope(group), FleetScope} {
		p, err = s.Policy(ctx, scope)
		if err == nil {
			return p, true, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return p, false, err
		}
	}
	return StoredPolicy{}, false, nil
}
