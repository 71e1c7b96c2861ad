package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
)

const (
	benchHosts  = 1000
	benchEvents = 100_000
	// Every host has benchVulnsPerHost vulnerabilities among benchAdvisories advisories, each
	// advisory on 100 hosts.
	benchVulnsPerHost = 20
	benchAdvisories   = 200
)

// BenchmarkPages renders the main pages, as an admin's browser asks for them, over a SQLite
// store holding 1,000 hosts and 100,000 events spread over 30 days (a fifth of them naming an
// attacking address) and 20,000 host vulnerabilities (20 per host, 200 advisories). It reports milliseconds per page, handler, queries and template included.
func BenchmarkPages(b *testing.B) { benchmarkPages(b, filepath.Join(b.TempDir(), "console.db")) }

// BenchmarkPagesPostgres is BenchmarkPages on a throwaway PostgreSQL server.
func BenchmarkPagesPostgres(b *testing.B) { benchmarkPages(b, pgtest.RequireDatabase(b)) }

func benchmarkPages(b *testing.B, dsn string) {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := api.New(api.Config{TaskTypes: task.Types}, st, noAgents{}, log)
	mux := http.NewServeMux()
	a.Register(mux)
	New(Config{CAPin: "sha256:00", AgentPort: "8444"}, a, st, log).Register(mux)

	start := time.Now()
	seedFleet(b, st)
	b.Logf("seeded %d hosts and %d events in %s", benchHosts, benchEvents, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	seedFleetVulns(b, st)
	b.Logf("seeded %d host vulnerabilities in %s", benchHosts*benchVulnsPerHost, time.Since(start).Round(time.Millisecond))

	hash, _ := api.HashPassword(testPassword)
	if err := st.CreateUser(ctx, store.User{ID: "u-admin", Name: "admin", Role: store.RoleAdmin, PasswordHash: hash, CreatedAt: st.Now()}); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/login", strings.NewReader("user=admin&password="+testPassword))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	var cookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == api.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		b.Fatalf("login: HTTP %d", w.Code)
	}
	evs, _, err := st.ListEvents(ctx, store.EventFilter{Limit: 1})
	if err != nil || len(evs) == 0 {
		b.Fatal("no events", err)
	}
	for _, p := range []struct{ name, path string }{
		{"dashboard", "/"},
		{"events-first-page", "/events"},
		{"events-filtered", "/events?status=open&severity=high&category=bruteforce&since=7d"},
		{"events-page-20", "/events?status=open&offset=1000"},
		{"hosts", "/hosts"},
		{"hosts-search", "/hosts?search=web-04&online=true"},
		{"host", "/hosts/h-0042"},
		{"event", "/events/" + evs[0].ID},
		{"vulns", "/vulns"},
		{"vulns-filtered", "/vulns?severity=high&fixable=true"},
		{"vuln-advisory", "/vulns/DSA-0005-1"},
	} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest("GET", p.path, nil)
				r.AddCookie(cookie)
				w := httptest.NewRecorder()
				mux.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: HTTP %d", p.path, w.Code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
		})
	}
}

func seedFleet(b *testing.B, st *store.Store) {
	ctx := context.Background()
	now := st.Now()
	oses := []string{"debian", "ubuntu", "rhel", "alpine"}
	for i := range benchHosts {
		id, secret := fmt.Sprintf("h-%04d", i), fmt.Sprintf("pe_bench_%04d", i)
		group := []string{"web", "db", "batch", "edge"}[i%4]
		if err := st.CreateEnrollToken(ctx, store.EnrollToken{ID: "et-" + id, TokenHash: store.HashSecret(secret), Group: group,
			CreatedBy: "admin", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("%s-%02d.prod.example.com", group, i)
		if _, err := st.EnrollHost(ctx, store.HashSecret(secret), store.Host{ID: id, Hostname: name, CertSerial: id}); err != nil {
			b.Fatal(err)
		}
		st.UpdateHostFacts(ctx, id, finding.HostFacts{Hostname: name, OSID: oses[i%4], OSPretty: oses[i%4], AgentVersion: "0.9.0"})
		if i%5 != 0 {
			st.TouchHost(ctx, id, finding.AgentStatus{Time: now})
		}
	}
	cats := []finding.Category{finding.CategoryBruteForce, finding.CategoryLogin, finding.CategoryMalware, finding.CategoryWebAttack,
		finding.CategoryBaseline, finding.CategoryBehavior, finding.CategoryVuln}
	const batch = 1000
	for n := 0; n < benchEvents; n += batch {
		byHost := map[string][]finding.Finding{}
		for i := n; i < n+batch; i++ {
			c := cats[i%len(cats)]
			f := finding.Finding{ID: fmt.Sprintf("f-%07d", i), RuleID: string(c) + ".bench-rule", Category: c,
				Severity: finding.Severity(i % 5), Title: fmt.Sprintf("%s finding %d", c, i),
				Time: now.Add(-time.Duration(i%(30*24*60)) * time.Minute), DedupKey: fmt.Sprintf("k-%d", i),
				Evidence: finding.Evidence{Lines: []string{"bench line"}}}
			if c == finding.CategoryBruteForce || c == finding.CategoryLogin {
				f.Evidence.SourceIP = fmt.Sprintf("203.0.%d.%d", (i/250)%256, i%250)
			}
			h := fmt.Sprintf("h-%04d", (i*7919)%benchHosts)
			byHost[h] = append(byHost[h], f)
		}
		for h, fs := range byHost {
			if _, err := st.IngestFindings(ctx, h, fs, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// seedFleetVulns gives every host an inventory and benchVulnsPerHost vulnerabilities: advisory
// k has severity by k%4, a fix unless k%3 == 0, and the first two are emergencies.
func seedFleetVulns(b *testing.B, st *store.Store) {
	ctx := context.Background()
	sev := []string{"critical", "high", "medium", "low"}
	emerg := map[int][2]string{0: {"regreSSHion", "CVE-2024-6387"}, 1: {"Log4Shell", "CVE-2021-44228"}}
	for i := range benchHosts {
		id := fmt.Sprintf("h-%04d", i)
		pkgs := make([]finding.Package, benchVulnsPerHost)
		vs := make([]store.HostVuln, benchVulnsPerHost)
		for j := range pkgs {
			pkgs[j] = finding.Package{Ecosystem: "Debian:12", Name: fmt.Sprintf("pkg%02d", j), Version: "1.0-1"}
			k := (i + j*10) % benchAdvisories
			v := store.NewHostVuln(id, pkgs[j])
			v.Advisory, v.Summary, v.Severity, v.Score = fmt.Sprintf("DSA-%04d-1", k), fmt.Sprintf("pkg%02d security update", j), sev[k%4], float64(10-k%4*2)
			v.Aliases = []string{fmt.Sprintf("CVE-2026-%05d", k)}
			if k%3 != 0 {
				v.Fixed, v.FixCommand = "1.0-2", "apt-get install --only-upgrade "+pkgs[j].Name
			}
			if e, ok := emerg[k]; ok {
				v.Emergency, v.Aliases = e[0], []string{e[1]}
			}
			vs[j] = v
		}
		if err := st.ReplaceInventory(ctx, id, 1, store.OSRelease{ID: "debian", VersionID: "12"}, pkgs); err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.ReplaceHostVulns(ctx, id, vs); err != nil {
			b.Fatal(err)
		}
	}
}
