package vulndb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln/osvgen"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// BenchmarkRematchFleet measures a fleet rematch through the store (SQLite, or PostgreSQL with
// FLEET_POSTGRES=1, on a throwaway server started by pgtest): FLEET_HOSTS hosts
// (default 1,000) of FLEET_PACKAGES packages (default 1,000) each, drawn from 20 images as a
// fleet is, against the full synthetic Debian and Ubuntu data. "first" is the rematch after the
// first import (every vulnerability is new and written); "again" is a rematch after a re-import
// where nothing changed for the hosts (nothing to write), the steady state of a daily fetch.
func BenchmarkRematchFleet(b *testing.B) {
	hosts, pkgs := envInt("FLEET_HOSTS", 1000), envInt("FLEET_PACKAGES", 1000)
	ctx := context.Background()
	dir := b.TempDir()
	dsn := filepath.Join(dir, "console.db")
	if os.Getenv("FLEET_POSTGRES") != "" {
		srv, err := pgtest.Start()
		if err != nil {
			b.Skipf("no PostgreSQL: %v", err)
		}
		defer srv.Stop()
		if dsn, err = srv.CreateDatabase("fleet"); err != nil {
			b.Fatal(err)
		}
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	images := make([][]finding.Package, 20)
	for i := range images {
		images[i] = osvgen.DebianHost(osvgen.Config{Seed: 1}, pkgs, uint64(i))
	}
	start := time.Now()
	now := st.Now()
	for i := 0; i < hosts; i++ {
		id := fmt.Sprintf("h-%04d", i)
		secret := "pe_" + id
		if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-" + id, TokenHash: store.HashSecret(secret), Group: "web",
			CreatedBy: "bench", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		if _, err := st.EnrollHost(ctx, store.HashSecret(secret), store.Host{ID: id, Hostname: id, CertSerial: strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
		if err := st.ReplaceInventory(ctx, id, 1, store.OSRelease{ID: "debian", VersionID: "12"}, images[i%len(images)]); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d inventories of %d packages in %s", hosts, pkgs, time.Since(start).Round(time.Millisecond))
	m, err := Open(Config{Dir: filepath.Join(dir, "vulndb")}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	for _, gen := range []func(io.Writer, osvgen.Config) error{osvgen.WriteDebian, osvgen.WriteUbuntu} {
		var buf bytes.Buffer
		if err := gen(&buf, osvgen.Config{Seed: 1}); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Import(ctx, &buf, "bench", "bench"); err != nil {
			b.Fatal(err)
		}
	}
	for _, run := range []string{"first", "again"} {
		b.Run(run, func(b *testing.B) {
			var last RematchStats
			for b.Loop() {
				if last, err = m.RematchFleet(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(last.Matches)/float64(last.Hosts), "matches/host")
			b.ReportMetric(last.Duration.Seconds(), "s/fleet")
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
