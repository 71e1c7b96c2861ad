// Package osvgen writes synthetic OSV archives shaped like osv.dev's Debian and Ubuntu all.zip,
// and host inventories to match against them, for benchmarks and for comparing Palisade with
// osv-scanner on identical input. The machine the project is measured on cannot reach osv.dev,
// so the real archives are replaced by these: same record layout (DEBIAN-CVE-*, DSA-*, DLA-*,
// UBUNTU-CVE-* ids; source package names; ECOSYSTEM ranges with per-release fixed versions;
// Ubuntu's versions lists; Debian urgency and Ubuntu priority ratings, CVSS vectors), sizes of
// our own estimate of the real archives, and a long-tailed spread of advisories over packages
// (a few packages such as the kernel carry thousands). Output is deterministic for a seed.
package osvgen

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Config sizes the corpus. Zero values mean the defaults.
type Config struct {
	Seed uint64
	// Packages is the number of distinct source packages advisories are spread over.
	Packages int // default 4,000
	// DebianCVE, DebianDSA are the Debian archive's DEBIAN-CVE-* and DSA/DLA records.
	DebianCVE, DebianDSA int // defaults 45,000 and 12,000
	// UbuntuCVE is the Ubuntu archive's UBUNTU-CVE-* records.
	UbuntuCVE int // default 45,000
}

func (c *Config) defaults() {
	if c.Packages <= 0 {
		c.Packages = 4000
	}
	if c.DebianCVE <= 0 {
		c.DebianCVE = 45000
	}
	if c.DebianDSA <= 0 {
		c.DebianDSA = 12000
	}
	if c.UbuntuCVE <= 0 {
		c.UbuntuCVE = 45000
	}
}

// Source is one synthetic source package: its binaries and its upstream version.
type Source struct {
	Name     string
	Binaries []string
	Upstream string
	Revision int
}

// Sources returns the corpus's source packages, in rank order (rank 0 has the most advisories).
func Sources(cfg Config) []Source {
	cfg.defaults()
	r := rand.New(rand.NewPCG(cfg.Seed, 7))
	out := make([]Source, cfg.Packages)
	for i := range out {
		name := fmt.Sprintf("src%04d", i)
		s := Source{Name: name, Upstream: fmt.Sprintf("%d.%d.%d", 1+r.IntN(9), r.IntN(30), r.IntN(20)), Revision: 1 + r.IntN(5)}
		s.Binaries = []string{name}
		for b := 0; b < r.IntN(3); b++ {
			s.Binaries = append(s.Binaries, fmt.Sprintf("lib%s-%d", name, b))
		}
		out[i] = s
	}
	return out
}

// rank draws a package rank from a long-tailed (Zipf-like) distribution.
func rank(r *rand.Rand, n int) int {
	// Inverse transform of a power law with exponent ~1: the kernel-like head gets thousands.
	u := r.Float64()
	return min(n-1, int(math.Floor(math.Pow(float64(n+1), u)))-1)
}

var debianReleases = []string{"11", "12", "13"}
var debianSuffix = map[string]string{"11": "deb11u", "12": "deb12u", "13": "deb13u"}
var ubuntuReleases = []string{"20.04:LTS", "22.04:LTS", "24.04:LTS"}
var ubuntuTag = map[string]string{"20.04:LTS": "20.04", "22.04:LTS": "22.04", "24.04:LTS": "24.04"}

type record struct {
	ID        string           `json:"id"`
	Modified  string           `json:"modified"`
	Published string           `json:"published"`
	Aliases   []string         `json:"aliases,omitempty"`
	Upstream  []string         `json:"upstream,omitempty"`
	Related   []string         `json:"related,omitempty"`
	Summary   string           `json:"summary,omitempty"`
	Details   string           `json:"details"`
	Severity  []map[string]any `json:"severity,omitempty"`
	Affected  []affected       `json:"affected"`
	Schema    string           `json:"schema_version"`
}

type affected struct {
	Package           map[string]string `json:"package"`
	Ranges            []map[string]any  `json:"ranges"`
	Versions          []string          `json:"versions,omitempty"`
	EcosystemSpecific map[string]any    `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  map[string]any    `json:"database_specific,omitempty"`
}

// DebianFixed is the fixed version of the k-th stable update of s in a Debian release.
func DebianFixed(s Source, release string, k int) string {
	return fmt.Sprintf("%s-%d+%s%d", s.Upstream, s.Revision, debianSuffix[release], k)
}

// UbuntuFixed is the fixed version of the k-th security update of s in an Ubuntu release.
func UbuntuFixed(s Source, release string, k int) string {
	return fmt.Sprintf("%s-%dubuntu0.%s.%d", s.Upstream, s.Revision, ubuntuTag[release], k)
}

var vectors = []string{
	"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
	"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
	"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H",
}

func writeRecord(zw *zip.Writer, rec record) error {
	w, err := zw.Create(rec.ID + ".json")
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(rec)
}

// WriteDebian writes the Debian archive: DEBIAN-CVE-* records for the three releases (a fixed
// stable update, or no fix yet, per release), and DSA/DLA records for one release each.
func WriteDebian(w io.Writer, cfg Config) error {
	cfg.defaults()
	srcs := Sources(cfg)
	r := rand.New(rand.NewPCG(cfg.Seed, 11))
	zw := zip.NewWriter(w)
	urgencies := []string{"not yet assigned", "unimportant", "low", "medium", "high"}
	for i := 0; i < cfg.DebianCVE; i++ {
		s := srcs[rank(r, len(srcs))]
		cve := fmt.Sprintf("CVE-%d-%05d", 2015+i%11, 10000+i)
		rec := record{ID: "DEBIAN-" + cve, Modified: "2025-06-01T00:00:00Z", Published: "2024-01-01T00:00:00Z", Upstream: []string{cve},
			Details: "Synthetic advisory for " + s.Name + ".", Schema: "1.7.0"}
		for _, rel := range debianReleases {
			if r.IntN(10) < 2 {
				continue // release not affected
			}
			ev := []map[string]string{{"introduced": "0"}}
			if r.IntN(20) < 19 { // one in twenty is not fixed yet (Debian's no-dsa and postponed issues)
				ev = append(ev, map[string]string{"fixed": DebianFixed(s, rel, 1+r.IntN(8))})
			}
			rec.Affected = append(rec.Affected, affected{
				Package:           map[string]string{"ecosystem": "Debian:" + rel, "name": s.Name, "purl": "pkg:deb/debian/" + s.Name + "?arch=source"},
				Ranges:            []map[string]any{{"type": "ECOSYSTEM", "events": ev}},
				EcosystemSpecific: map[string]any{"urgency": urgencies[r.IntN(len(urgencies))]},
			})
		}
		if len(rec.Affected) == 0 {
			i--
			continue
		}
		if err := writeRecord(zw, rec); err != nil {
			return err
		}
	}
	for i := 0; i < cfg.DebianDSA; i++ {
		s := srcs[rank(r, len(srcs))]
		rel, prefix := "12", "DSA"
		if i%3 == 0 {
			rel, prefix = "11", "DLA"
		}
		cve := fmt.Sprintf("CVE-%d-%05d", 2015+i%11, 10000+r.IntN(cfg.DebianCVE))
		rec := record{ID: fmt.Sprintf("%s-%d-1", prefix, 3000+i), Modified: "2025-06-01T00:00:00Z", Published: "2024-01-01T00:00:00Z",
			Upstream: []string{cve}, Summary: s.Name + " - security update", Details: "Synthetic advisory.", Schema: "1.7.0",
			Affected: []affected{{Package: map[string]string{"ecosystem": "Debian:" + rel, "name": s.Name},
				Ranges: []map[string]any{{"type": "ECOSYSTEM", "events": []map[string]string{{"introduced": "0"}, {"fixed": DebianFixed(s, rel, 1+r.IntN(8))}}}}}}}
		if err := writeRecord(zw, rec); err != nil {
			return err
		}
	}
	return zw.Close()
}

// WriteUbuntu writes the Ubuntu archive: UBUNTU-CVE-* records with a priority, often a CVSS
// vector, ranges per LTS release and the list of affected versions, as Ubuntu's records have.
func WriteUbuntu(w io.Writer, cfg Config) error {
	cfg.defaults()
	srcs := Sources(cfg)
	r := rand.New(rand.NewPCG(cfg.Seed, 13))
	zw := zip.NewWriter(w)
	prios := []string{"negligible", "low", "medium", "high", "critical"}
	for i := 0; i < cfg.UbuntuCVE; i++ {
		s := srcs[rank(r, len(srcs))]
		cve := fmt.Sprintf("CVE-%d-%05d", 2015+i%11, 10000+i)
		rec := record{ID: "UBUNTU-" + cve, Modified: "2025-06-01T00:00:00Z", Published: "2024-01-01T00:00:00Z", Upstream: []string{cve},
			Details: "Synthetic advisory for " + s.Name + ".", Schema: "1.7.0",
			Severity: []map[string]any{{"type": "Ubuntu", "score": prios[r.IntN(len(prios))]}}}
		if r.IntN(2) == 0 {
			rec.Severity = append(rec.Severity, map[string]any{"type": "CVSS_V3", "score": vectors[r.IntN(len(vectors))]})
		}
		for _, rel := range ubuntuReleases {
			if r.IntN(10) < 3 {
				continue
			}
			fix := 1 + r.IntN(6)
			ev := []map[string]string{{"introduced": "0"}, {"fixed": UbuntuFixed(s, rel, fix)}}
			var versions []string
			versions = append(versions, fmt.Sprintf("%s-%d", s.Upstream, s.Revision))
			for k := 1; k < fix; k++ {
				versions = append(versions, UbuntuFixed(s, rel, k))
			}
			rec.Affected = append(rec.Affected, affected{
				Package:  map[string]string{"ecosystem": "Ubuntu:" + rel, "name": s.Name},
				Ranges:   []map[string]any{{"type": "ECOSYSTEM", "events": ev}},
				Versions: versions,
			})
		}
		if len(rec.Affected) == 0 {
			i--
			continue
		}
		if err := writeRecord(zw, rec); err != nil {
			return err
		}
	}
	return zw.Close()
}

// DebianHost returns a Debian 12 host's n installed binary packages: one or two binaries of
// source packages drawn evenly from the corpus (a server installs a broad set, the much-patched
// head among them), most at the latest stable update and some lagging behind, plus packages no
// advisory names. Different seeds give different hosts ("images").
func DebianHost(cfg Config, n int, seed uint64) []finding.Package {
	cfg.defaults()
	srcs := Sources(cfg)
	r := rand.New(rand.NewPCG(cfg.Seed, seed))
	order := r.Perm(len(srcs))
	var out []finding.Package
	seen := map[string]bool{}
	next := 0
	for len(out) < n {
		if r.IntN(10) < 2 || next >= len(order) {
			name := fmt.Sprintf("quiet%05d", r.IntN(100000))
			if !seen[name] {
				seen[name] = true
				out = append(out, finding.Package{Ecosystem: "Debian:12", Name: name, Version: fmt.Sprintf("%d.%d-%d", 1+r.IntN(9), r.IntN(20), 1+r.IntN(3)),
					Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"})
			}
			continue
		}
		s := srcs[order[next]]
		next++
		level := 9 // the latest stable update: only unfixed advisories apply
		switch x := r.IntN(20); {
		case x < 2:
			level = 6 + r.IntN(3)
		case x < 3:
			level = r.IntN(6)
		}
		for _, bin := range s.Binaries[:1+r.IntN(min(2, len(s.Binaries)))] {
			if len(out) == n || seen[bin] {
				break
			}
			seen[bin] = true
			p := finding.Package{Ecosystem: "Debian:12", Name: bin, Version: DebianFixed(s, "12", level), Arch: "amd64", Location: "/var/lib/dpkg/status", Extractor: "os/dpkg"}
			if bin != s.Name {
				p.SourceName = s.Name
			}
			out = append(out, p)
		}
	}
	return out
}

// DpkgStatus renders packages as a dpkg status file, for tools that read one.
func DpkgStatus(w io.Writer, pkgs []finding.Package) error {
	for _, p := range pkgs {
		src := ""
		if p.SourceName != "" {
			src = "Source: " + p.SourceName + "\n"
		}
		if _, err := fmt.Fprintf(w, "Package: %s\nStatus: install ok installed\nPriority: optional\nArchitecture: %s\n%sVersion: %s\nDescription: synthetic package\n\n",
			p.Name, p.Arch, src, p.Version); err != nil {
			return err
		}
	}
	return nil
}
