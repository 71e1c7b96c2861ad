package vuln

import (
	"archive/zip"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/osv-scalibr/semantic"
)

// Advisory is what the console shows of one OSV record.
type Advisory struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Summary string   `json:"summary,omitempty"`
	// Severity is "critical", "high", "medium", "low" or "unknown": from the CVSS v3 base score
	// where the record has a vector, else the distribution's own rating.
	Severity  string     `json:"severity"`
	Score     float64    `json:"score,omitempty"`
	Vector    string     `json:"cvss_vector,omitempty"`
	Modified  time.Time  `json:"modified,omitzero"`
	Emergency *Emergency `json:"emergency,omitempty"`
}

// entry is one affected package of one advisory, compiled for matching.
type entry struct {
	adv      *Advisory
	release  string // releaseKey of the ecosystem suffix; "" applies to every release
	ranges   []compiledRange
	versions []string // sorted, for exact matches
	severity string   // per-package rating overriding the advisory's, if any
}

type compiledRange struct {
	semver bool // SEMVER range: versions compare as semver whatever the ecosystem
	events []compiledEvent
}

type eventKind uint8

const (
	evIntroduced eventKind = iota
	evFixed
	evLastAffected
	evLimit
)

type compiledEvent struct {
	kind eventKind
	raw  string
	v    semantic.Version // nil for introduced "0"
}

// Stats describes what a load read.
type Stats struct {
	// Records per ecosystem family ("Debian", "Ubuntu", "PyPI"...).
	Records map[string]int `json:"records"`
	// Skipped counts records that did not parse, were withdrawn or had no usable range.
	Skipped int `json:"skipped"`
	// BadVersions counts range events whose version does not parse in its ecosystem; the
	// event is dropped, which can only make a range match less.
	BadVersions int `json:"bad_versions"`
}

func (s *Stats) add(o Stats) {
	if s.Records == nil {
		s.Records = map[string]int{}
	}
	for k, v := range o.Records {
		s.Records[k] += v
	}
	s.Skipped += o.Skipped
	s.BadVersions += o.BadVersions
}

// Builder collects OSV records into an Index. A record seen twice (the same ID in two
// archives) keeps its most recently modified version.
type Builder struct {
	emergency *EmergencyList
	records   map[string]*compiledRecord
	stats     Stats
}

type compiledRecord struct {
	adv      *Advisory
	families []string
	entries  map[string][]*entry // family\x00name -> entries
}

// NewBuilder starts an index; emergency may be nil.
func NewBuilder(emergency *EmergencyList) *Builder {
	return &Builder{emergency: emergency, records: map[string]*compiledRecord{}, stats: Stats{Records: map[string]int{}}}
}

// AddRecord compiles one record. It reports false when the record was skipped.
func (b *Builder) AddRecord(r *Record) bool {
	if r.Withdrawn != nil {
		b.stats.Skipped++
		return false
	}
	if old, ok := b.records[r.ID]; ok && old.adv.Modified.After(r.Modified) {
		return false
	}
	adv := &Advisory{ID: r.ID, Aliases: r.Aliases, Summary: clipText(r.Summary, 512), Modified: r.Modified}
	adv.Severity, adv.Score, adv.Vector = recordSeverity(r)
	if b.emergency != nil {
		adv.Emergency = b.emergency.Lookup(r)
	}
	cr := &compiledRecord{adv: adv, entries: map[string][]*entry{}}
	for i := range r.Affected {
		a := &r.Affected[i]
		family, release := splitEcosystem(a.Package.Ecosystem)
		if family == "" || a.Package.Name == "" {
			continue
		}
		e := &entry{adv: adv, release: releaseKey(family, release)}
		if s := normaliseSeverity(textSeverity(r, a)); s != "unknown" && adv.Vector == "" {
			e.severity = s
		}
		for _, rg := range a.Ranges {
			if rg.Type != "ECOSYSTEM" && rg.Type != "SEMVER" {
				continue // GIT ranges need commit history, which a host inventory does not have
			}
			cr2, bad := compileRange(family, rg)
			b.stats.BadVersions += bad
			if len(cr2.events) > 0 {
				e.ranges = append(e.ranges, cr2)
			}
		}
		if len(a.Versions) > 0 {
			e.versions = slices.Clone(a.Versions)
			slices.Sort(e.versions)
		}
		if len(e.ranges) == 0 && len(e.versions) == 0 {
			continue
		}
		key := family + "\x00" + normaliseName(family, a.Package.Name)
		cr.entries[key] = append(cr.entries[key], e)
		if !slices.Contains(cr.families, family) {
			cr.families = append(cr.families, family)
		}
	}
	if len(cr.entries) == 0 {
		b.stats.Skipped++
		return false
	}
	if old, ok := b.records[r.ID]; ok {
		for _, f := range old.families {
			b.stats.Records[f]--
		}
	}
	for _, f := range cr.families {
		b.stats.Records[f]++
	}
	b.records[r.ID] = cr
	return true
}

func compileRange(family string, rg Range) (compiledRange, int) {
	out := compiledRange{semver: rg.Type == "SEMVER"}
	bad := 0
	parse := func(v string) semantic.Version {
		if out.semver {
			return semantic.ParseSemverVersion(strings.TrimPrefix(v, "v"))
		}
		return parseVersion(family, v)
	}
	for _, ev := range rg.Events {
		var ce compiledEvent
		switch {
		case ev.Introduced != "":
			ce = compiledEvent{kind: evIntroduced, raw: ev.Introduced}
		case ev.Fixed != "":
			ce = compiledEvent{kind: evFixed, raw: ev.Fixed}
		case ev.LastAffected != "":
			ce = compiledEvent{kind: evLastAffected, raw: ev.LastAffected}
		case ev.Limit != "":
			ce = compiledEvent{kind: evLimit, raw: ev.Limit}
		default:
			continue
		}
		if !(ce.kind == evIntroduced && ce.raw == "0") && !(ce.kind == evLimit && ce.raw == "*") {
			if ce.v = parse(ce.raw); ce.v == nil {
				bad++
				continue
			}
		}
		out.events = append(out.events, ce)
	}
	// The OSV evaluation walks events in version order; records usually list them so, but the
	// schema does not promise it.
	sort.SliceStable(out.events, func(i, j int) bool { return eventLess(out.events[i], out.events[j]) })
	return out, bad
}

func eventLess(a, b compiledEvent) bool {
	if a.v == nil || b.v == nil {
		return a.v == nil && b.v != nil
	}
	c, err := a.v.Compare(b.v)
	return err == nil && c < 0
}

// LoadArchive reads an osv.dev all.zip (or any zip of OSV JSON records) into the builder.
func (b *Builder) LoadArchive(r io.ReaderAt, size int64) (Stats, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return Stats{}, fmt.Errorf("open OSV archive: %w", err)
	}
	before := b.stats
	before.Records = clone(b.stats.Records)
	var st Stats
	st.Records = map[string]int{}
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || path.Ext(f.Name) != ".json" {
			continue
		}
		if f.UncompressedSize64 > 64<<20 {
			st.Skipped++
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return st, fmt.Errorf("OSV archive %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
		rc.Close()
		if err != nil {
			return st, fmt.Errorf("OSV archive %s: %w", f.Name, err)
		}
		rec, err := ParseRecord(data)
		if err != nil {
			st.Skipped++
			continue
		}
		b.AddRecord(rec)
	}
	for k, v := range b.stats.Records {
		if d := v - before.Records[k]; d != 0 {
			st.Records[k] = d
		}
	}
	st.Skipped += b.stats.Skipped - before.Skipped
	st.BadVersions = b.stats.BadVersions - before.BadVersions
	return st, nil
}

func clone(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Index is an immutable, queryable set of advisories. It is safe for concurrent use.
type Index struct {
	entries    map[string][]*entry // family\x00name\x00release; release "" applies to all
	advisories map[string]*Advisory
	stats      Stats
}

// Build returns the index of everything added so far.
func (b *Builder) Build() *Index {
	idx := &Index{entries: map[string][]*entry{}, advisories: make(map[string]*Advisory, len(b.records)), stats: b.stats}
	idx.stats.Records = clone(b.stats.Records)
	for _, cr := range b.records {
		idx.advisories[cr.adv.ID] = cr.adv
		for k, es := range cr.entries {
			// Keyed by release too, so a host's look-up skips other releases' entries.
			for _, e := range es {
				rk := k + "\x00" + e.release
				idx.entries[rk] = append(idx.entries[rk], e)
			}
		}
	}
	return idx
}

// Stats reports the records the index holds per ecosystem family.
func (x *Index) Stats() Stats { return x.stats }

// Advisory returns one advisory by ID.
func (x *Index) Advisory(id string) (*Advisory, bool) {
	a, ok := x.advisories[id]
	return a, ok
}

// Len is the number of advisories.
func (x *Index) Len() int { return len(x.advisories) }

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
