// Package store keeps the console's state in SQL: users and sessions, enrollment and API tokens,
// hosts, events aggregated from findings, tasks and the audit log.
//
// One schema, applied by numbered migrations, runs on the embedded SQLite database (pure-Go
// driver, the default) and on PostgreSQL. Queries are written once with "?" placeholders and
// rebound for PostgreSQL; times are stored as Unix milliseconds so both behave the same.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // SQLite driver "sqlite"
)

// IsInvalidInput reports whether err is the database refusing a value as malformed (on
// PostgreSQL: invalid UTF-8 or a NUL byte in text), which callers should treat as bad input.
func IsInvalidInput(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "22")
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Store is the console's database. It is safe for concurrent use.
type Store struct {
	db       *sql.DB
	postgres bool
	// Now is the clock; tests may replace it.
	Now func() time.Time
}

// Open connects to dsn: a postgres:// or postgresql:// URL, or a SQLite file path (optionally
// prefixed "sqlite:"). It applies pending migrations before returning.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{Now: nowMS}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.postgres = true
		var cfg *pgx.ConnConfig
		if cfg, err = pgx.ParseConfig(dsn); err != nil {
			return nil, fmt.Errorf("database URL: %w", err)
		}
		// Plan every statement with the table as it is now. Cached generic plans, made while
		// the events table was small, keep scanning it after it has grown.
		if !strings.Contains(dsn, "default_query_exec_mode") {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
		s.db = stdlib.OpenDB(*cfg)
		s.db.SetMaxOpenConns(16)
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(1)",
			"temp_store(MEMORY)", "cache_size(-65536)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		s.db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err == nil {
			// SQLite has one writer; more connections only add lock contention for writes, while
			// WAL lets the few readers proceed.
			s.db.SetMaxOpenConns(4)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect names the database engine: "sqlite" or "postgres".
func (s *Store) Dialect() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

// q rebinds "?" placeholders to "$n" for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.db.ExecContext(ctx, s.q(query), args...)
}

func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.db.QueryContext(ctx, s.q(query), args...)
}

func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return s.db.QueryRowContext(ctx, s.q(query), args...)
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// nowMS is the default clock, at the precision times are stored with, so that what a create
// returns equals what a later read returns.
func nowMS() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// notFound turns sql.ErrNoRows into ErrNotFound naming what was looked up.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// rowsAffected is 1 when exactly one row changed.
func affectedOne(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// Ping checks the database connection.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
