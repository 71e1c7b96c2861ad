package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Enrollment token errors. The agent sees their text, so each says what to do.
var (
	ErrTokenUnknown = errors.New("enrollment token unknown: create one with 'palisade token create'")
	ErrTokenExpired = errors.New("enrollment token expired: create a new one with 'palisade token create'")
	ErrTokenUsed    = errors.New("enrollment token already used: each token enrolls one host")
)

// EnrollToken admits one host to the fleet. Only its hash is stored.
type EnrollToken struct {
	ID        string    `json:"id"`
	TokenHash string    `json:"-"`
	Group     string    `json:"group"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
	UsedBy    string    `json:"used_by,omitempty"`
}

// CreateEnrollToken stores a token.
func (s *Store) CreateEnrollToken(ctx context.Context, t EnrollToken) error {
	_, err := s.exec(ctx, `INSERT INTO enroll_tokens(id, token_hash, host_group, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.TokenHash, t.Group, t.CreatedBy, ms(t.CreatedAt), ms(t.ExpiresAt))
	return err
}

const enrollCols = `id, token_hash, host_group, created_by, created_at, expires_at, used_at, used_by`

func scanEnroll(row interface{ Scan(...any) error }) (EnrollToken, error) {
	var t EnrollToken
	var c, e, u int64
	err := row.Scan(&t.ID, &t.TokenHash, &t.Group, &t.CreatedBy, &c, &e, &u, &t.UsedBy)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMS(c), fromMS(e), fromMS(u)
	return t, err
}

// EnrollHost consumes the token with hash tokenHash and creates host h in the token's group, in
// one transaction: a token admits exactly one host even when two agents race with it.
func (s *Store) EnrollHost(ctx context.Context, tokenHash string, h Host) (Host, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		t, err := scanEnroll(tx.QueryRowContext(ctx, s.q(`SELECT `+enrollCols+` FROM enroll_tokens WHERE token_hash = ?`), tokenHash))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrTokenUnknown
		}
		if err != nil {
			return err
		}
		now := s.Now()
		switch {
		case !t.UsedAt.IsZero():
			return ErrTokenUsed
		case !now.Before(t.ExpiresAt):
			return ErrTokenExpired
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE enroll_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at = 0`), ms(now), h.ID, t.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrTokenUsed
		}
		h.Group, h.EnrolledAt = t.Group, now
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO hosts(id, hostname, host_group, cert_serial, enrolled_at, facts) VALUES (?, ?, ?, ?, ?, ?)`),
			h.ID, h.Hostname, h.Group, h.CertSerial, ms(now), jsonText(h.Facts))
		return err
	})
	if err != nil {
		return Host{}, fmt.Errorf("enroll: %w", err)
	}
	return h, nil
}

// ListEnrollTokens returns all tokens, newest first.
func (s *Store) ListEnrollTokens(ctx context.Context) ([]EnrollToken, error) {
	rows, err := s.query(ctx, `SELECT `+enrollCols+` FROM enroll_tokens ORDER BY created_at DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EnrollToken
	for rows.Next() {
		t, err := scanEnroll(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteEnrollToken withdraws a token.
func (s *Store) DeleteEnrollToken(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM enroll_tokens WHERE id = ?`, id)
	return affectedOne(res, err, "enrollment token "+id)
}
