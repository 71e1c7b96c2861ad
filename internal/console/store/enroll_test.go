package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

func TestEnrollHost(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		for _, tok := range []EnrollToken{
			{ID: "et-web", TokenHash: HashSecret("pal_enroll_web"), Group: "web-prod", CreatedBy: "alice", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(23 * time.Hour)},
			{ID: "et-old", TokenHash: HashSecret("pal_enroll_old"), Group: "db-prod", CreatedBy: "alice", CreatedAt: t0.Add(-48 * time.Hour), ExpiresAt: t0.Add(-24 * time.Hour)},
			{ID: "et-edge", TokenHash: HashSecret("pal_enroll_edge"), Group: "ci", CreatedBy: "bob", CreatedAt: t0.Add(-2 * time.Hour), ExpiresAt: t0},
		} {
			must(t, s.CreateEnrollToken(ctx, tok))
		}
		facts := finding.HostFacts{Hostname: "web-01.prod.example.com", OSID: "debian", OSVersion: "12", Kernel: "6.1.0-18-amd64", Arch: "amd64", IPAddresses: []string{"10.0.4.11"}, AgentVersion: "0.4.1"}

		// The good token first: later cases reuse it.
		cases := []struct {
			name    string
			secret  string
			hostID  string
			wantErr error
		}{
			{"good token creates the host in the token's group", "pal_enroll_web", "h-web-01", nil},
			{"reused token", "pal_enroll_web", "h-web-02", ErrTokenUsed},
			{"expired token", "pal_enroll_old", "h-db-01", ErrTokenExpired},
			{"token at its expiry instant", "pal_enroll_edge", "h-ci-01", ErrTokenExpired},
			{"unknown token", "pal_enroll_guessed", "h-evil", ErrTokenUnknown},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h, err := s.EnrollHost(ctx, HashSecret(tc.secret), Host{ID: tc.hostID, Hostname: facts.Hostname, CertSerial: "4d2a" + tc.hostID, Facts: facts})
				if tc.wantErr != nil {
					wantErrIs(t, "EnrollHost", err, tc.wantErr)
					if _, err := s.HostByID(ctx, tc.hostID, t0); !errors.Is(err, ErrNotFound) {
						t.Errorf("refused enrollment left host %s behind (err %v)", tc.hostID, err)
					}
					return
				}
				must(t, err)
				if h.ID != tc.hostID || h.Group != "web-prod" || !h.EnrolledAt.Equal(t0) {
					t.Errorf("EnrollHost returned %+v", h)
				}
				got, err := s.HostByID(ctx, tc.hostID, t0)
				must(t, err)
				if got.Group != "web-prod" || got.Hostname != facts.Hostname || got.CertSerial != "4d2a"+tc.hostID ||
					!got.EnrolledAt.Equal(t0) || got.Facts.Kernel != facts.Kernel || got.Revoked() {
					t.Errorf("stored host %+v", got)
				}
			})
		}

		toks, err := s.ListEnrollTokens(ctx)
		must(t, err)
		byID := map[string]EnrollToken{}
		for _, tok := range toks {
			byID[tok.ID] = tok
		}
		if tok := byID["et-web"]; !tok.UsedAt.Equal(t0) || tok.UsedBy != "h-web-01" {
			t.Errorf("used token = %+v, want used at %v by h-web-01", tok, t0)
		}
		if tok := byID["et-old"]; !tok.UsedAt.IsZero() || tok.UsedBy != "" {
			t.Errorf("expired token marked used: %+v", tok)
		}
		if len(toks) != 3 || toks[0].ID != "et-web" || toks[1].ID != "et-edge" || toks[2].ID != "et-old" {
			t.Errorf("ListEnrollTokens order (newest first) = %v", toks)
		}

		// Withdrawing a token makes it unknown.
		clock.Set(t0.Add(-2 * time.Hour))
		must(t, s.DeleteEnrollToken(ctx, "et-edge"))
		_, err = s.EnrollHost(ctx, HashSecret("pal_enroll_edge"), Host{ID: "h-ci-02", Hostname: "ci-02"})
		wantErrIs(t, "withdrawn token", err, ErrTokenUnknown)
		wantErrIs(t, "deleting a deleted token", s.DeleteEnrollToken(ctx, "et-edge"), ErrNotFound)
	})
}

func TestEnrollHostConcurrentSameTokenExactlyOneWins(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		must(t, s.CreateEnrollToken(ctx, EnrollToken{ID: "et-race", TokenHash: HashSecret("pal_enroll_race"), Group: "k8s-nodes", CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))

		const agents = 8
		errs := make([]error, agents)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range agents {
			wg.Go(func() {
				<-start
				id := fmt.Sprintf("h-node-%02d", i)
				_, errs[i] = s.EnrollHost(ctx, HashSecret("pal_enroll_race"), Host{ID: id, Hostname: "node-" + id, CertSerial: "serial-" + id})
			})
		}
		close(start)
		wg.Wait()

		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case errors.Is(err, ErrTokenUsed):
			default:
				t.Errorf("agent %d: unexpected error %v", i, err)
			}
		}
		if winners != 1 {
			t.Errorf("%d agents enrolled with one token, want exactly 1 (errors: %v)", winners, errs)
		}
		hosts, total, err := s.ListHosts(ctx, HostFilter{})
		must(t, err)
		if total != 1 || len(hosts) != 1 || hosts[0].Group != "k8s-nodes" {
			t.Errorf("hosts after the race: total %d, %+v", total, hosts)
		}
	})
}
