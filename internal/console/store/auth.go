package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Roles, from most to least powerful.
const (
	RoleAdmin   = "admin"
	RoleAnalyst = "analyst"
	RoleViewer  = "viewer"
)

// ValidRole reports whether r is a known role.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleAnalyst || r == RoleViewer }

// User is a console operator.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"created_at"`
}

// ErrExists is returned when a unique name is taken.
var ErrExists = errors.New("already exists")

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	if _, err := s.UserByName(ctx, u.Name); err == nil {
		return fmt.Errorf("user %q: %w", u.Name, ErrExists)
	}
	_, err := s.exec(ctx, `INSERT INTO users(id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.Name, u.Role, u.PasswordHash, ms(u.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

const userCols = `id, name, role, password_hash, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created int64
	err := row.Scan(&u.ID, &u.Name, &u.Role, &u.PasswordHash, &created)
	u.CreatedAt = fromMS(created)
	return u, err
}

// UserByName looks a user up by login name.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	return u, notFound(err, "user "+name)
}

// UserByID looks a user up by ID.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	return u, notFound(err, "user "+id)
}

// ListUsers returns all users by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}

// UpdateUser changes a user's role and, when hash is not empty, password.
func (s *Store) UpdateUser(ctx context.Context, id, role, passwordHash string) error {
	if passwordHash != "" {
		res, err := s.exec(ctx, `UPDATE users SET role = ?, password_hash = ? WHERE id = ?`, role, passwordHash, id)
		return affectedOne(res, err, "user "+id)
	}
	res, err := s.exec(ctx, `UPDATE users SET role = ? WHERE id = ?`, role, id)
	return affectedOne(res, err, "user "+id)
}

// DeleteUser removes a user with their sessions and API tokens.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM users WHERE id = ?`, id)
	return affectedOne(res, err, "user "+id)
}

// Session is a browser login. Only the hash of its token is stored.
type Session struct {
	TokenHash string
	UserID    string
	CSRF      string
	ExpiresAt time.Time
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	_, err := s.exec(ctx, `INSERT INTO sessions(token_hash, user_id, csrf, expires_at) VALUES (?, ?, ?, ?)`,
		se.TokenHash, se.UserID, se.CSRF, ms(se.ExpiresAt))
	return err
}

// SessionByHash returns an unexpired session.
func (s *Store) SessionByHash(ctx context.Context, hash string) (Session, error) {
	var se Session
	var exp int64
	err := s.queryRow(ctx, `SELECT token_hash, user_id, csrf, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?`,
		hash, ms(s.Now())).Scan(&se.TokenHash, &se.UserID, &se.CSRF, &exp)
	se.ExpiresAt = fromMS(exp)
	return se, notFound(err, "session")
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hash)
	return err
}

// DeleteExpiredSessions removes sessions past their expiry and returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, ms(s.Now()))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// APIToken lets a script act as a user. Only the token's hash is stored.
type APIToken struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	TokenHash  string    `json:"-"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

// CreateAPIToken stores a token.
func (s *Store) CreateAPIToken(ctx context.Context, t APIToken) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens(id, name, token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.TokenHash, t.UserID, ms(t.CreatedAt), ms(t.ExpiresAt))
	return err
}

const apiTokenCols = `id, name, token_hash, user_id, created_at, expires_at, last_used_at`

func scanAPIToken(row interface{ Scan(...any) error }) (APIToken, error) {
	var t APIToken
	var c, e, l int64
	err := row.Scan(&t.ID, &t.Name, &t.TokenHash, &t.UserID, &c, &e, &l)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt = fromMS(c), fromMS(e), fromMS(l)
	return t, err
}

// APITokenByHash returns an unexpired token and records its use.
func (s *Store) APITokenByHash(ctx context.Context, hash string) (APIToken, error) {
	now := ms(s.Now())
	t, err := scanAPIToken(s.queryRow(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE token_hash = ? AND (expires_at = 0 OR expires_at > ?)`, hash, now))
	if err != nil {
		return t, notFound(err, "api token")
	}
	// Last use is informational; write it at most once a minute to keep reads cheap.
	if now-ms(t.LastUsedAt) > 60_000 {
		s.exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, now, t.ID)
	}
	return t, nil
}

// ListAPITokens returns a user's tokens, or everyone's when userID is empty.
func (s *Store) ListAPITokens(ctx context.Context, userID string) ([]APIToken, error) {
	rows, err := s.query(ctx, `SELECT `+apiTokenCols+` FROM api_tokens WHERE ? = '' OR user_id = ? ORDER BY created_at`, userID, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteAPIToken removes a token; userID, when not empty, must own it.
func (s *Store) DeleteAPIToken(ctx context.Context, id, userID string) error {
	res, err := s.exec(ctx, `DELETE FROM api_tokens WHERE id = ? AND (? = '' OR user_id = ?)`, id, userID, userID)
	return affectedOne(res, err, "api token "+id)
}

// HashSecret is how every bearer secret (sessions, API and enrollment tokens) is stored and
// looked up: SHA-256, hex. The secrets are 24+ random bytes, so no slow hash is needed.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
