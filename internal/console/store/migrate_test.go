package store

import (
	"strconv"
	"strings"
	"testing"
)

func TestMigrationsSchemaVersionIsNumberOfMigrations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		v, err := s.SchemaVersion(t.Context())
		must(t, err)
		if want := len(migrations) - 1; v != want {
			t.Errorf("SchemaVersion = %d, want %d (number of migrations)", v, want)
		}
	})
}

func TestMigrationsOpenTwiceIsIdempotent(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		first := openStore(t, dsn)
		must(t, first.CreateUser(ctx, User{ID: "u-alice", Name: "alice", Role: RoleAdmin, PasswordHash: "$argon2id$v=19$x", CreatedAt: t0}))

		// A second console (or a restart) opening the same database applies nothing and
		// loses nothing.
		second := openStore(t, dsn)
		v, err := second.SchemaVersion(ctx)
		must(t, err)
		if v != len(migrations)-1 {
			t.Errorf("SchemaVersion after second Open = %d, want %d", v, len(migrations)-1)
		}
		var rows int
		must(t, second.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows))
		if want := nonEmptyMigrations(); rows != want {
			t.Errorf("schema_migrations has %d rows, want one per migration (%d)", rows, want)
		}
		u, err := second.UserByName(ctx, "alice")
		if err != nil || u.ID != "u-alice" {
			t.Errorf("user written before the second Open: %+v, %v", u, err)
		}
		// Both handles stay usable.
		must(t, second.CreateUser(ctx, User{ID: "u-bob", Name: "bob", Role: RoleViewer, PasswordHash: "h", CreatedAt: t0}))
		if n, err := first.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers via first handle = %d, %v; want 2", n, err)
		}
		must(t, second.Close())
		third := openStore(t, dsn)
		if n, err := third.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers after reopening = %d, %v; want 2", n, err)
		}
	})
}

func TestMigrationsRefuseNewerSchema(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openStore(t, dsn)
		future := len(migrations) + 2 // written by a newer console
		_, err := s.exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, future, ms(t0))
		must(t, err)
		must(t, s.Close())

		s2, err := Open(ctx, dsn)
		if err == nil {
			s2.Close()
			t.Fatal("Open succeeded on a database with a newer schema version")
		}
		msg := err.Error()
		for _, want := range []string{"newer", strconv.Itoa(future), strconv.Itoa(len(migrations) - 1), "upgrade"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not mention %q", msg, want)
			}
		}
	})
}

func nonEmptyMigrations() int {
	n := 0
	for _, m := range migrations[1:] {
		if m != "" {
			n++
		}
	}
	return n
}

// A migration that lands after a later one was applied (a slot reserved for another branch) is
// still applied: migrate runs every version it has not recorded, not only those above the highest.
func TestMigrationsApplyAnUnrecordedEarlierVersion(t *testing.T) {
	forEachDSN(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		s := openStore(t, dsn)
		_, err := s.exec(ctx, `DROP TABLE reputation`)
		must(t, err)
		_, err = s.exec(ctx, `DELETE FROM schema_migrations WHERE version = 3`)
		must(t, err)
		must(t, s.Close())

		again := openStore(t, dsn)
		var n int
		must(t, again.queryRow(ctx, `SELECT COUNT(*) FROM reputation`).Scan(&n))
		var rows int
		must(t, again.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows))
		if rows != nonEmptyMigrations() {
			t.Errorf("schema_migrations has %d rows after re-applying migration 3, want %d", rows, nonEmptyMigrations())
		}
	})
}
