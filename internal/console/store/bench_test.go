package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store/pgtest"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// BenchmarkIngestSQLite and BenchmarkIngestPostgres measure ingest as an agent stream drives
// it: batches of 500 findings from one host, about 5% of them repeats of a few hot keys (an
// SSH brute force from a handful of addresses) that fold into open events, the rest distinct
// (file changes, web attacks, process alerts) that each open an event.
func BenchmarkIngestSQLite(b *testing.B) {
	benchmarkIngest(b, openStore(b, filepath.Join(b.TempDir(), "console.db")))
}

func BenchmarkIngestPostgres(b *testing.B) {
	benchmarkIngest(b, openStore(b, pgtest.RequireDatabase(b)))
}

const benchBatch = 500

func benchmarkIngest(b *testing.B, s *Store) {
	ctx := context.Background()
	clock := useClock(s, t0)
	addHost(b, s, "h-bench", "web-01.prod.example.com", "web-prod")
	g := newFindingGen(1)
	batch := make([]finding.Finding, benchBatch)
	var res IngestResult
	for b.Loop() {
		for i := range batch {
			batch[i] = g.next()
		}
		clock.Advance(time.Second)
		r, err := s.IngestFindings(ctx, "h-bench", batch, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		res.New += r.New
		res.Aggregated += r.Aggregated
		res.Duplicate += r.Duplicate
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "findings/s")
	if res.New+res.Aggregated != b.N*benchBatch {
		b.Fatalf("stored %+v of %d findings", res, b.N*benchBatch)
	}
	b.ReportMetric(100*float64(res.Aggregated)/float64(b.N*benchBatch), "%aggregated")
}

// findingGen makes a realistic stream of findings from one host.
type findingGen struct {
	rng *rand.Rand
	seq int
	at  time.Time
}

func newFindingGen(seed uint64) *findingGen {
	return &findingGen{rng: rand.New(rand.NewPCG(seed, seed+1)), at: t0}
}

var hotIPs = []string{"203.0.113.7", "203.0.113.54", "198.51.100.23", "198.51.100.201", "192.0.2.200", "192.0.2.17"}

func (g *findingGen) next() finding.Finding {
	g.seq++
	g.at = g.at.Add(time.Duration(1+g.rng.IntN(20)) * time.Millisecond)
	id := "bench-" + strconv.Itoa(g.seq)
	if g.rng.IntN(100) < 5 {
		return sshFinding(id, hotIPs[g.rng.IntN(len(hotIPs))], finding.SeverityMedium, g.at)
	}
	n := strconv.Itoa(g.seq)
	switch g.seq % 3 {
	case 0:
		path := "/etc/systemd/system/backup-" + n + ".service"
		return finding.Finding{
			ID: id, RuleID: "baseline.file-modified", Category: finding.CategoryBaseline, Severity: finding.SeverityLow,
			Title: "Monitored file changed: " + path, Time: g.at, DedupKey: path,
			Action: "Confirm the change was planned; restore the file from configuration management if not.",
			Evidence: finding.Evidence{Path: path, Hashes: map[string]string{
				"sha256": fmt.Sprintf("%064x", g.rng.Uint64())}, Fields: map[string]string{"change": "content", "size": "412"}},
		}
	case 1:
		req := "GET /wp-admin/admin-ajax.php?action=revslider_show_image&img=../wp-config.php&n=" + n
		return finding.Finding{
			ID: id, RuleID: "webattack.path-traversal", Category: finding.CategoryWebAttack, Severity: finding.SeverityHigh,
			Title: "Path traversal attempt against /wp-admin/admin-ajax.php", Time: g.at, DedupKey: req,
			MITRE: []string{"T1190"}, Action: "Check the response code; block the source if it succeeded.",
			Evidence: finding.Evidence{Source: "/var/log/nginx/access.log", SourceIP: "198.51.100." + strconv.Itoa(g.seq%250),
				Lines: []string{`198.51.100.9 - - [14/Mar/2025:09:26:53 +0000] "` + req + ` HTTP/1.1" 404 153 "-" "Mozilla/5.0"`}},
		}
	default:
		pid := 4000 + g.seq%30000
		return finding.Finding{
			ID: id, RuleID: "behavior.reverse-shell", Category: finding.CategoryBehavior, Severity: finding.SeverityCritical,
			Title: "Shell with its standard input on a network socket", Time: g.at, DedupKey: "pid:" + strconv.Itoa(pid) + ":" + n,
			MITRE: []string{"T1059.004"}, Action: "Isolate the host and capture the process tree before killing it.",
			Evidence: finding.Evidence{Process: []finding.Process{
				{PID: pid, PPID: 912, Exe: "/usr/bin/bash", Cmdline: "bash -i", Cwd: "/tmp", UID: 33, EUID: 33},
				{PID: 912, PPID: 1, Exe: "/usr/sbin/php-fpm8.2", Cmdline: "php-fpm: pool www", UID: 33, EUID: 33},
			}},
		}
	}
}

// BenchmarkReplaceFleetVulnsSQLite and BenchmarkReplaceFleetVulnsPostgres measure the write
// path of a fleet's first rematch: 100 hosts of 2,400 new vulnerabilities each (the size of a
// 3,000-package Debian host's findings), stored 25 hosts per ReplaceFleetVulns as
// vulndb.RematchFleet does. The table is emptied, untimed, before each run.
func BenchmarkReplaceFleetVulnsSQLite(b *testing.B) {
	benchmarkReplaceFleetVulns(b, openStore(b, filepath.Join(b.TempDir(), "console.db")))
}

func BenchmarkReplaceFleetVulnsPostgres(b *testing.B) {
	benchmarkReplaceFleetVulns(b, openStore(b, pgtest.RequireDatabase(b)))
}

func benchmarkReplaceFleetVulns(b *testing.B, s *Store) {
	const hosts, perHost, batch = 100, 2400, 25
	ctx := context.Background()
	fleet := make([][]HostVuln, hosts)
	for h := range fleet {
		id := fmt.Sprintf("h-%04d", h)
		addHost(b, s, id, id, "web")
		for i := range perHost {
			p := finding.Package{Ecosystem: "Debian:12", Name: fmt.Sprintf("libpkg%04d", i/3), SourceName: fmt.Sprintf("pkg%04d", i/3),
				Version: "1.2." + strconv.Itoa(i%7) + "-1+deb12u1", Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"}
			v := NewHostVuln(id, p)
			v.Advisory, v.Aliases = fmt.Sprintf("DEBIAN-CVE-2024-%05d", i), []string{fmt.Sprintf("CVE-2024-%05d", i)}
			v.Summary = "a flaw in " + p.SourceName + " lets a remote attacker cause a denial of service via crafted input"
			v.Severity, v.Score = "high", 7.5
			if i%2 == 0 {
				v.Fixed, v.FixCommand = "1.2.9-1+deb12u2", "apt-get install --only-upgrade "+p.Name
			}
			fleet[h] = append(fleet[h], v)
		}
	}
	for b.Loop() {
		b.StopTimer()
		if _, err := s.exec(ctx, `DELETE FROM host_vulns`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for lo := 0; lo < hosts; lo += batch {
			sets := make([]HostVulnSet, 0, batch)
			for h := lo; h < lo+batch; h++ {
				sets = append(sets, HostVulnSet{HostID: fmt.Sprintf("h-%04d", h), Vulns: fleet[h]})
			}
			if err := s.ReplaceFleetVulns(ctx, sets); err != nil {
				b.Fatal(err)
			}
			for _, set := range sets {
				if len(set.Added) != perHost {
					b.Fatalf("%s: %d added, want %d", set.HostID, len(set.Added), perHost)
				}
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*hosts*perHost), "µs/row")
}
