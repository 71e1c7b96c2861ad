package bruteforce_test

import (
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce/gen"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// TestAccuracyGeneratedLog runs a generated, labelled log of 1,000,000 lines (100,000 with
// -short) of every service through Parser and Detector: every attacker must be found as its
// kind, and no benign address or user may appear in any finding. It runs once as OpenSSH 9.2
// on Debian 12 (RFC 3339 timestamps) and once as OpenSSH 7.4 on CentOS 7 (RFC 3164, no port on
// "Invalid user").
func TestAccuracyGeneratedLog(t *testing.T) {
	lines := 1_000_000
	if testing.Short() {
		lines = 100_000
	}
	for i, flavor := range []gen.Flavor{gen.OpenSSH92, gen.OpenSSH74} {
		t.Run("openssh-"+string(flavor), func(t *testing.T) {
			start := time.Now()
			p := bf.Parser{Year: 2026, Location: time.UTC}
			d := newDetector(t, nil)
			found := map[string]map[string]bool{}
			var ips map[string]bool = map[string]bool{}
			var fs []finding.Finding
			parsed := 0
			truth := gen.Generate(gen.Config{Lines: lines, Seed: uint64(42 + i), Flavor: flavor}, func(line []byte) {
				e, ok := p.ParseLine(line)
				if !ok {
					return
				}
				parsed++
				for _, f := range d.Observe(e) {
					g := f
					g.ID = finding.NewID()
					if err := g.Validate(); err != nil {
						t.Fatalf("finding does not validate: %v\n%+v", err, f)
					}
					if found[f.RuleID] == nil {
						found[f.RuleID] = map[string]bool{}
					}
					found[f.RuleID][f.DedupKey] = true
					if f.Evidence.SourceIP != "" {
						ips[f.Evidence.SourceIP] = true
					}
					fs = append(fs, f)
				}
			})
			elapsed := time.Since(start)

			kinds := map[gen.Kind]int{}
			for _, a := range truth.Attackers {
				kinds[a.Kind]++
				var rule, key string
				switch a.Kind {
				case gen.Guesser:
					rule, key = bf.RuleGuessing, a.Sources[0].String()
				case gen.Enumerator:
					rule, key = bf.RuleEnumeration, a.Sources[0].String()
				case gen.Sprayer:
					rule, key = bf.RuleDistributed, a.User
				case gen.Succeeder:
					rule, key = bf.RuleSucceeded, a.Sources[0].String()
				case gen.Local:
					rule, key = bf.RuleLocalAuth, a.User
				}
				if !found[rule][key] {
					t.Errorf("missed %s on %s: no %s for %s", a.Kind, a.Service, rule, key)
				}
			}
			benign := map[string]bool{}
			for _, a := range truth.BenignSources {
				benign[a.String()] = true
			}
			for _, u := range truth.BenignUsers {
				benign[u] = true
			}
			for _, f := range fs {
				if benign[f.DedupKey] || benign[f.Evidence.SourceIP] {
					t.Errorf("benign %q reported: %s %s", f.DedupKey, f.RuleID, f.Title)
				}
			}
			// Addresses reported that are no labelled attacker's: background bots that happened to
			// cross a threshold (allowed, but counted so that a change shows).
			attackerIP := map[string]gen.Kind{}
			for _, a := range truth.Attackers {
				for _, s := range a.Sources {
					attackerIP[s.String()] = a.Kind
				}
			}
			byKind := map[string]int{}
			for ip := range ips {
				k, ok := attackerIP[ip]
				if !ok {
					k = "bot"
				}
				byKind[string(k)]++
			}
			// Sprayers' addresses each stay below the per-source threshold.
			spray := 0
			for _, a := range truth.Attackers {
				if a.Kind == gen.Sprayer {
					for _, s := range a.Sources {
						if ips[s.String()] {
							spray++
						}
					}
				}
			}
			var counts []string
			for r, m := range found {
				counts = append(counts, fmt.Sprintf("%s=%d", r, len(m)))
			}
			sort.Strings(counts)
			s := d.Stats()
			t.Logf("%d lines (%d parsed) in %v: attackers %v, %d benign addresses, %d bots; findings %d, keys %v; "+
				"addresses reported by kind %v; stats %+v", lines, parsed, elapsed.Round(time.Millisecond), kinds,
				len(truth.BenignSources), truth.Bots, len(fs), counts, byKind, s)
			if spray > 0 {
				t.Errorf("%d sprayer addresses reported on their own", spray)
			}
			if len(truth.Attackers) == 0 || parsed < lines/4 {
				t.Errorf("generator made %d attackers and %d parsable lines", len(truth.Attackers), parsed)
			}
		})
	}
}

// TestGeneratorDeterministic: the same seed gives the same log.
func TestGeneratorDeterministic(t *testing.T) {
	hash := func(seed uint64) (uint64, int) {
		var h uint64 = 14695981039346656037
		n := 0
		gen.Generate(gen.Config{Lines: 20000, Seed: seed, Flavor: gen.OpenSSH89}, func(line []byte) {
			for _, c := range line {
				h = (h ^ uint64(c)) * 1099511628211
			}
			n++
		})
		return h, n
	}
	a, n := hash(7)
	b, _ := hash(7)
	c, _ := hash(8)
	if a != b || a == c || n != 20000 {
		t.Errorf("hashes %x %x %x, %d lines", a, b, c, n)
	}
}

var _ = netip.Addr{}
