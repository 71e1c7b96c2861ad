package store

import (
	"slices"
	"testing"
	"time"
)

var (
	alice = User{ID: "u-01J8ALICE", Name: "alice", Role: RoleAdmin, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaC1hbGljZQ", CreatedAt: t0}
	bob   = User{ID: "u-01J8BOB", Name: "bob", Role: RoleAnalyst, PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaC1ib2I", CreatedAt: t0.Add(time.Minute)}
)

func TestUsersCreateLookUpUpdateDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		must(t, s.CreateUser(ctx, alice))
		must(t, s.CreateUser(ctx, bob))

		dup := alice
		dup.ID = "u-other"
		wantErrIs(t, "CreateUser with a taken name", s.CreateUser(ctx, dup), ErrExists)

		for _, lookup := range []struct {
			name string
			get  func() (User, error)
		}{
			{"by name", func() (User, error) { return s.UserByName(ctx, "alice") }},
			{"by ID", func() (User, error) { return s.UserByID(ctx, alice.ID) }},
		} {
			u, err := lookup.get()
			must(t, err)
			if u != alice {
				t.Errorf("%s: got %+v, want %+v", lookup.name, u, alice)
			}
		}
		_, err := s.UserByName(ctx, "mallory")
		wantErrIs(t, "UserByName unknown", err, ErrNotFound)
		_, err = s.UserByID(ctx, "u-nobody")
		wantErrIs(t, "UserByID unknown", err, ErrNotFound)

		users, err := s.ListUsers(ctx)
		must(t, err)
		if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" {
			t.Errorf("ListUsers = %+v, want alice, bob", users)
		}
		if n, err := s.CountUsers(ctx); err != nil || n != 2 {
			t.Errorf("CountUsers = %d, %v; want 2", n, err)
		}

		// Role only: the password is kept.
		must(t, s.UpdateUser(ctx, bob.ID, RoleViewer, ""))
		u, err := s.UserByID(ctx, bob.ID)
		must(t, err)
		if u.Role != RoleViewer || u.PasswordHash != bob.PasswordHash {
			t.Errorf("after role change: role %q hash %q; want %q, unchanged hash", u.Role, u.PasswordHash, RoleViewer)
		}
		// Role and password.
		const newHash = "$argon2id$v=19$m=65536,t=3,p=2$bmV3$bmV3LWhhc2g"
		must(t, s.UpdateUser(ctx, bob.ID, RoleAnalyst, newHash))
		u, err = s.UserByID(ctx, bob.ID)
		must(t, err)
		if u.Role != RoleAnalyst || u.PasswordHash != newHash {
			t.Errorf("after password change: role %q hash %q", u.Role, u.PasswordHash)
		}
		wantErrIs(t, "UpdateUser unknown", s.UpdateUser(ctx, "u-nobody", RoleAdmin, ""), ErrNotFound)

		must(t, s.DeleteUser(ctx, bob.ID))
		_, err = s.UserByID(ctx, bob.ID)
		wantErrIs(t, "UserByID after delete", err, ErrNotFound)
		wantErrIs(t, "second DeleteUser", s.DeleteUser(ctx, bob.ID), ErrNotFound)
		// The name is free again.
		must(t, s.CreateUser(ctx, User{ID: "u-bob2", Name: "bob", Role: RoleViewer, PasswordHash: "h", CreatedAt: t0}))
	})
}

func TestUsersDeleteCascadesSessionsAndAPITokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		must(t, s.CreateUser(ctx, alice))
		must(t, s.CreateUser(ctx, bob))
		for _, u := range []User{alice, bob} {
			must(t, s.CreateSession(ctx, Session{TokenHash: HashSecret("session-" + u.Name), UserID: u.ID, CSRF: "csrf-" + u.Name, ExpiresAt: t0.Add(12 * time.Hour)}))
			must(t, s.CreateAPIToken(ctx, APIToken{ID: "tok-" + u.Name, Name: "ci deploy", TokenHash: HashSecret("api-" + u.Name), UserID: u.ID, CreatedAt: t0}))
		}

		must(t, s.DeleteUser(ctx, alice.ID))

		_, err := s.SessionByHash(ctx, HashSecret("session-alice"))
		wantErrIs(t, "deleted user's session", err, ErrNotFound)
		_, err = s.APITokenByHash(ctx, HashSecret("api-alice"))
		wantErrIs(t, "deleted user's API token", err, ErrNotFound)
		if toks, err := s.ListAPITokens(ctx, alice.ID); err != nil || len(toks) != 0 {
			t.Errorf("deleted user's tokens listed: %+v, %v", toks, err)
		}
		// Bob is untouched.
		if _, err := s.SessionByHash(ctx, HashSecret("session-bob")); err != nil {
			t.Errorf("other user's session: %v", err)
		}
		if _, err := s.APITokenByHash(ctx, HashSecret("api-bob")); err != nil {
			t.Errorf("other user's API token: %v", err)
		}
	})
}

func TestSessionsExpire(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		must(t, s.CreateUser(ctx, alice))
		short := Session{TokenHash: HashSecret("short"), UserID: alice.ID, CSRF: "c1", ExpiresAt: t0.Add(time.Hour)}
		long := Session{TokenHash: HashSecret("long"), UserID: alice.ID, CSRF: "c2", ExpiresAt: t0.Add(8 * time.Hour)}
		must(t, s.CreateSession(ctx, short))
		must(t, s.CreateSession(ctx, long))

		got, err := s.SessionByHash(ctx, short.TokenHash)
		must(t, err)
		if got != short {
			t.Errorf("SessionByHash = %+v, want %+v", got, short)
		}
		_, err = s.SessionByHash(ctx, HashSecret("never issued"))
		wantErrIs(t, "unknown session", err, ErrNotFound)

		clock.Set(short.ExpiresAt.Add(-time.Millisecond))
		if _, err := s.SessionByHash(ctx, short.TokenHash); err != nil {
			t.Errorf("session 1ms before expiry: %v", err)
		}
		if n, err := s.DeleteExpiredSessions(ctx); err != nil || n != 0 {
			t.Errorf("DeleteExpiredSessions before expiry = %d, %v; want 0", n, err)
		}

		clock.Set(short.ExpiresAt) // expiry is exclusive
		_, err = s.SessionByHash(ctx, short.TokenHash)
		wantErrIs(t, "session at its expiry", err, ErrNotFound)
		if _, err := s.SessionByHash(ctx, long.TokenHash); err != nil {
			t.Errorf("unexpired session: %v", err)
		}

		n, err := s.DeleteExpiredSessions(ctx)
		if err != nil || n != 1 {
			t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
		}
		if n, err := s.DeleteExpiredSessions(ctx); err != nil || n != 0 {
			t.Errorf("second DeleteExpiredSessions = %d, %v; want 0", n, err)
		}
		// The expired row is gone even if the clock went back.
		clock.Set(t0)
		_, err = s.SessionByHash(ctx, short.TokenHash)
		wantErrIs(t, "deleted session", err, ErrNotFound)

		must(t, s.DeleteSession(ctx, long.TokenHash))
		_, err = s.SessionByHash(ctx, long.TokenHash)
		wantErrIs(t, "logged-out session", err, ErrNotFound)
	})
}

func TestAPITokensLookupExpiryScopingAndOwnership(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		must(t, s.CreateUser(ctx, alice))
		must(t, s.CreateUser(ctx, bob))
		tokens := []APIToken{
			{ID: "tok-a1", Name: "terraform", TokenHash: HashSecret("pal_api_a1"), UserID: alice.ID, CreatedAt: t0},
			{ID: "tok-b1", Name: "siem export", TokenHash: HashSecret("pal_api_b1"), UserID: bob.ID, CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(30 * 24 * time.Hour)},
			{ID: "tok-a2", Name: "grafana", TokenHash: HashSecret("pal_api_a2"), UserID: alice.ID, CreatedAt: t0.Add(2 * time.Second), ExpiresAt: t0.Add(time.Hour)},
		}
		for _, tok := range tokens {
			must(t, s.CreateAPIToken(ctx, tok))
		}

		got, err := s.APITokenByHash(ctx, HashSecret("pal_api_b1"))
		must(t, err)
		if got.ID != "tok-b1" || got.UserID != bob.ID || got.Name != "siem export" || !got.ExpiresAt.Equal(tokens[1].ExpiresAt) {
			t.Errorf("APITokenByHash = %+v", got)
		}
		_, err = s.APITokenByHash(ctx, HashSecret("pal_api_forged"))
		wantErrIs(t, "unknown token", err, ErrNotFound)

		// Use is recorded, at most once a minute.
		lastUsed := func(id string) time.Time {
			t.Helper()
			toks, err := s.ListAPITokens(ctx, "")
			must(t, err)
			for _, tok := range toks {
				if tok.ID == id {
					return tok.LastUsedAt
				}
			}
			t.Fatalf("token %s not listed", id)
			return time.Time{}
		}
		if lu := lastUsed("tok-b1"); !lu.Equal(t0) {
			t.Errorf("last used after first use = %v, want %v", lu, t0)
		}
		clock.Advance(30 * time.Second)
		_, err = s.APITokenByHash(ctx, HashSecret("pal_api_b1"))
		must(t, err)
		if lu := lastUsed("tok-b1"); !lu.Equal(t0) {
			t.Errorf("last used rewritten within a minute: %v", lu)
		}
		clock.Advance(31 * time.Second)
		_, err = s.APITokenByHash(ctx, HashSecret("pal_api_b1"))
		must(t, err)
		if lu := lastUsed("tok-b1"); !lu.Equal(t0.Add(61 * time.Second)) {
			t.Errorf("last used after a minute = %v, want %v", lu, t0.Add(61*time.Second))
		}

		// Expiry: tok-a2 ends after an hour; tok-a1 never expires.
		clock.Set(t0.Add(time.Hour))
		_, err = s.APITokenByHash(ctx, HashSecret("pal_api_a2"))
		wantErrIs(t, "expired token", err, ErrNotFound)
		clock.Set(t0.Add(10 * 365 * 24 * time.Hour))
		if _, err := s.APITokenByHash(ctx, HashSecret("pal_api_a1")); err != nil {
			t.Errorf("token without expiry after ten years: %v", err)
		}

		// Listing is scoped by user and ordered by creation.
		for _, tc := range []struct {
			user string
			want []string
		}{
			{"", []string{"tok-a1", "tok-b1", "tok-a2"}},
			{alice.ID, []string{"tok-a1", "tok-a2"}},
			{bob.ID, []string{"tok-b1"}},
			{"u-nobody", nil},
		} {
			toks, err := s.ListAPITokens(ctx, tc.user)
			must(t, err)
			var ids []string
			for _, tok := range toks {
				ids = append(ids, tok.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ListAPITokens(%q) = %v, want %v", tc.user, ids, tc.want)
			}
		}

		// Only the owner (or an admin, with no user) may delete.
		wantErrIs(t, "bob deletes alice's token", s.DeleteAPIToken(ctx, "tok-a1", bob.ID), ErrNotFound)
		if toks, _ := s.ListAPITokens(ctx, alice.ID); len(toks) != 2 {
			t.Errorf("alice's tokens after bob's attempt: %d, want 2", len(toks))
		}
		must(t, s.DeleteAPIToken(ctx, "tok-a1", alice.ID))
		must(t, s.DeleteAPIToken(ctx, "tok-b1", ""))
		wantErrIs(t, "deleting a deleted token", s.DeleteAPIToken(ctx, "tok-a1", alice.ID), ErrNotFound)
		toks, err := s.ListAPITokens(ctx, "")
		must(t, err)
		if len(toks) != 1 || toks[0].ID != "tok-a2" {
			t.Errorf("remaining tokens = %+v, want only tok-a2", toks)
		}
	})
}
