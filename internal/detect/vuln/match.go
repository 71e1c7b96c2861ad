package vuln

import (
	"slices"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Match is one advisory affecting one installed package.
type Match struct {
	// Package points into the slice the caller passed.
	Package  *finding.Package `json:"package"`
	Advisory *Advisory        `json:"advisory"`
	// Severity is the advisory's, or the distribution's rating for this package when the
	// advisory has no CVSS vector.
	Severity string `json:"severity"`
	// Fixed is the first fixed version above the installed one; empty when none is published.
	Fixed      string `json:"fixed,omitempty"`
	FixCommand string `json:"fix_command,omitempty"`
}

// sourceNamed are the ecosystems whose advisories name source packages (dpkg "Source:", apk
// origin); RPM-based advisories name binary packages.
var sourceNamed = map[string]bool{"Debian": true, "Ubuntu": true, "Alpine": true, "Wolfi": true, "Chainguard": true}

// MatchPackages returns every advisory affecting pkgs, in package order. Packages of ecosystems
// without a known version ordering, or whose version does not parse, match nothing.
func (x *Index) MatchPackages(pkgs []finding.Package) []Match {
	var out []Match
	for i := range pkgs {
		out = x.matchOne(&pkgs[i], out)
	}
	return out
}

// Matcher matches many hosts against one index, remembering what each distinct package
// (ecosystem, name, source name, version) matched: a fleet runs the same packages on many
// hosts, so a fleet rematch compares versions once per distinct package, not once per host.
// A Matcher is not safe for concurrent use.
type Matcher struct {
	x     *Index
	cache map[matchKey][]Match
}

type matchKey struct{ ecosystem, name, source, version string }

// NewMatcher returns a caching matcher over x.
func (x *Index) NewMatcher() *Matcher { return &Matcher{x: x, cache: map[matchKey][]Match{}} }

// MatchPackages is Index.MatchPackages with the cache.
func (m *Matcher) MatchPackages(pkgs []finding.Package) []Match {
	found := make([][]Match, len(pkgs))
	n := 0
	for i := range pkgs {
		p := &pkgs[i]
		k := matchKey{p.Ecosystem, p.Name, p.SourceName, p.Version}
		ms, ok := m.cache[k]
		if !ok {
			ms = m.x.matchOne(p, nil)
			m.cache[k] = ms
		}
		found[i] = ms
		n += len(ms)
	}
	out := make([]Match, 0, n)
	for i, ms := range found {
		for _, mt := range ms {
			mt.Package = &pkgs[i] // same advisories, this host's package (its location may differ)
			out = append(out, mt)
		}
	}
	return out
}

func (x *Index) matchOne(p *finding.Package, out []Match) []Match {
	family, release := splitEcosystem(p.Ecosystem)
	name := p.Name
	if sourceNamed[family] && p.SourceName != "" {
		name = p.SourceName
	}
	name = normaliseName(family, name)
	hostRelease := releaseKey(family, release)
	entries := x.entries[family+"\x00"+name+"\x00"+hostRelease]
	if hostRelease != "" {
		if all := x.entries[family+"\x00"+name+"\x00"]; len(all) > 0 {
			entries = append(slices.Clip(entries), all...)
		}
	}
	if len(entries) == 0 {
		return out
	}
	installed := parseVersion(family, p.Version)
	var installedSemver semantic.Version
	var matched map[*Advisory]bool // advisories already reported for this package
	for _, e := range entries {
		if e.release != "" && e.release != hostRelease {
			continue
		}
		affected, fixed := false, ""
		for _, r := range e.ranges {
			v := installed
			if r.semver {
				if installedSemver == nil {
					installedSemver = semantic.ParseSemverVersion(strings.TrimPrefix(p.Version, "v"))
				}
				v = installedSemver
			}
			if v == nil {
				continue
			}
			if ok, fx := r.affects(v); ok {
				affected, fixed = true, fx
				break
			}
		}
		if !affected && len(e.versions) > 0 {
			_, affected = slices.BinarySearch(e.versions, p.Version)
		}
		if !affected || matched[e.adv] {
			continue
		}
		if matched == nil {
			matched = map[*Advisory]bool{}
		}
		matched[e.adv] = true
		sev := e.adv.Severity
		if e.severity != "" {
			sev = e.severity
		}
		out = append(out, Match{Package: p, Advisory: e.adv, Severity: sev, Fixed: fixed, FixCommand: FixCommand(p.Ecosystem, p.Name, fixed)})
	}
	return out
}

// affects evaluates the range for v as the OSV schema specifies: walking events in version
// order, "introduced" opens an affected interval, "fixed" closes it before its version and
// "last_affected" after it; with "limit" events, v must also lie below a limit. It returns the
// fixed version closing the interval v is in, if any.
func (r compiledRange) affects(v semantic.Version) (bool, string) {
	affected := false
	fixed := ""
	hasLimit, belowLimit := false, false
	for _, ev := range r.events {
		switch ev.kind {
		case evIntroduced:
			if ev.v == nil || cmp(v, ev.v) >= 0 {
				affected, fixed = true, ""
			}
		case evFixed:
			c := cmp(v, ev.v)
			if c >= 0 {
				affected = false
			} else if affected && fixed == "" {
				fixed = ev.raw
			}
		case evLastAffected:
			if cmp(v, ev.v) > 0 {
				affected = false
			}
		case evLimit:
			hasLimit = true
			if ev.v == nil || cmp(v, ev.v) < 0 {
				belowLimit = true
			}
		}
	}
	if hasLimit && !belowLimit {
		return false, ""
	}
	return affected, fixed
}

// cmp compares versions of one ecosystem; versions the ordering refuses to compare sort low.
func cmp(a, b semantic.Version) int {
	c, err := a.Compare(b)
	if err != nil {
		return -1
	}
	return c
}

// recordSeverity rates a record: CVSS v3 base score where a vector is given, else the text
// rating a distribution attached.
func recordSeverity(r *Record) (severity string, score float64, vector string) {
	entries := slices.Clone(r.Severity)
	for i := range r.Affected {
		entries = append(entries, r.Affected[i].Severity...)
	}
	for _, s := range entries {
		if s.Type != "CVSS_V3" {
			continue
		}
		if sc, err := CVSS3BaseScore(s.Score); err == nil {
			return severityFromScore(sc), sc, s.Score
		}
	}
	text := ""
	if len(r.Affected) > 0 {
		text = textSeverity(r, &r.Affected[0])
	} else {
		text = textSeverity(r, &Affected{})
	}
	return normaliseSeverity(text), 0, ""
}

// normaliseSeverity maps distribution ratings onto critical/high/medium/low/unknown.
// Debian's "unimportant" and Ubuntu's "negligible" are low.
func normaliseSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return "critical"
	case "high", "important":
		return "high"
	case "medium", "moderate":
		return "medium"
	case "low", "negligible", "unimportant":
		return "low"
	}
	return "unknown"
}

// SeverityRank orders severities for sorting and filtering: critical 4 ... unknown 0.
func SeverityRank(s string) int {
	switch s {
	case "critical":
		return 4
	case "high":
		return 3
	case "medium":
		return 2
	case "low":
		return 1
	}
	return 0
}

// normaliseName puts package names into the form the ecosystem's advisories use: PyPI names
// compare as PEP 503 normalised ("Jinja2" is "jinja2", "zope.interface" is "zope-interface").
func normaliseName(family, name string) string {
	if family != "PyPI" {
		return name
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r == '-' || r == '_' || r == '.' {
			if !dash {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		dash = false
		b.WriteRune(r)
	}
	return b.String()
}
