// Package finding is the shared vocabulary of Palisade: the one Finding type that every detection
// engine produces, the agent spools and the console stores as events.
//
// It holds data and its validation only. It does no I/O and knows nothing of transport or storage;
// engines build findings, the agent fills in identity and time, the console aggregates them.
package finding

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Severity ranks how urgently an operator should look at a finding.
type Severity int

// Severities from least to most urgent. The zero value is SeverityInfo.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// String returns the lower-case name used in the API and the store.
func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name as printed by String.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(n, name) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severityNames[:], ", "))
}

// Valid reports whether s is one of the defined severities.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// Category says which kind of threat or risk a finding is about. Each engine owns one or more.
type Category string

// The categories of DESIGN.md §3, plus CategoryAgent for the agent's own health (coverage lost,
// spool overflow), which an operator must see as much as an attack.
const (
	CategoryBruteForce Category = "bruteforce"
	CategoryLogin      Category = "login"
	CategoryMalware    Category = "malware"
	CategoryWebshell   Category = "webshell"
	CategoryWebAttack  Category = "webattack"
	CategoryBehavior   Category = "behavior"
	CategoryIntel      Category = "intel"
	CategoryVuln       Category = "vuln"
	CategoryBaseline   Category = "baseline"
	CategoryAgent      Category = "agent"
)

// Categories lists every known category, in display order.
var Categories = []Category{
	CategoryBruteForce, CategoryLogin, CategoryMalware, CategoryWebshell, CategoryWebAttack,
	CategoryBehavior, CategoryIntel, CategoryVuln, CategoryBaseline, CategoryAgent,
}

// Valid reports whether c is a known category.
func (c Category) Valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// Finding is one observation by one engine on one host. Findings with the same DedupKey on the
// same host within the console's aggregation window become one event with a count.
type Finding struct {
	// ID is unique per finding; the agent assigns it before spooling so that redelivery after a
	// crash or reconnect is recognised by the console and stored once.
	ID string `json:"id"`
	// RuleID is stable across releases: "<engine>.<rule>", e.g. "bruteforce.ssh-password-guessing".
	RuleID   string   `json:"rule_id"`
	Category Category `json:"category"`
	Severity Severity `json:"severity"`
	// Title is one line an operator reads in a list.
	Title string `json:"title"`
	// Host is the console's ID of the reporting host. Agents leave it empty: the console sets it
	// from the agent's client certificate, so an agent cannot speak for another host.
	Host string    `json:"host,omitempty"`
	Time time.Time `json:"time"`
	// DedupKey groups repeats of the same thing (same rule, same source, same file...).
	// Empty means the rule ID alone.
	DedupKey string `json:"dedup_key,omitempty"`
	// Action is the suggested response, in words an operator can act on.
	Action string `json:"action,omitempty"`
	// MITRE lists ATT&CK technique IDs such as "T1110.001".
	MITRE    []string `json:"mitre,omitempty"`
	Evidence Evidence `json:"evidence"`
}

// Evidence is what the finding rests on. Engines fill what applies; everything is optional.
type Evidence struct {
	Lines    []string          `json:"lines,omitempty"`  // log lines, as read
	Source   string            `json:"source,omitempty"` // where they were read: file, journal, ...
	SourceIP string            `json:"source_ip,omitempty"`
	Users    []string          `json:"users,omitempty"`
	Path     string            `json:"path,omitempty"`    // file the finding is about
	Hashes   map[string]string `json:"hashes,omitempty"`  // "md5", "sha1", "sha256" -> hex
	Process  []Process         `json:"process,omitempty"` // the process, then its ancestors
	Count    int               `json:"count,omitempty"`   // occurrences the engine folded into this finding
	Fields   map[string]string `json:"fields,omitempty"`  // engine-specific extras
}

// Process is one process in an evidence chain.
type Process struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid,omitempty"`
	Exe     string `json:"exe,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	Cwd     string `json:"cwd,omitempty"`
	UID     int    `json:"uid"`
	EUID    int    `json:"euid"`
	Start   string `json:"start,omitempty"`
}

// Limits keep one finding small enough to spool and ship; engines truncate evidence to fit.
const (
	MaxTitle    = 512
	MaxLines    = 50
	MaxLineLen  = 4096
	MaxDedupKey = 512
	MaxCount    = 1 << 30
)

var ruleIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$`)

// Validate checks the fields every finding must have. The console runs it on every finding it
// receives; a finding that fails is counted and refused, never stored half-formed.
func (f *Finding) Validate() error {
	var errs []error
	if f.ID == "" || len(f.ID) > 64 {
		errs = append(errs, errors.New("id must be 1-64 characters"))
	}
	if !ruleIDPattern.MatchString(f.RuleID) || len(f.RuleID) > 128 {
		errs = append(errs, fmt.Errorf("rule_id %q must look like engine.rule", f.RuleID))
	}
	if !f.Category.Valid() {
		errs = append(errs, fmt.Errorf("unknown category %q", f.Category))
	}
	if !f.Severity.Valid() {
		errs = append(errs, fmt.Errorf("unknown severity %d", f.Severity))
	}
	if f.Title == "" || len(f.Title) > MaxTitle {
		errs = append(errs, fmt.Errorf("title must be 1-%d bytes", MaxTitle))
	}
	if f.Time.IsZero() {
		errs = append(errs, errors.New("time is missing"))
	} else if y := f.Time.UTC().Year(); y < 1 || y > 9999 {
		// The console keeps times in UTC and serves them as RFC 3339, which has four-digit years:
		// a time whose zone offset pushes it out of that range could be stored but never shown.
		errs = append(errs, fmt.Errorf("time %s is out of range (years 1-9999 in UTC)", f.Time.Format(time.RFC3339)))
	}
	if len(f.DedupKey) > MaxDedupKey {
		errs = append(errs, fmt.Errorf("dedup_key longer than %d bytes", MaxDedupKey))
	}
	if len(f.Evidence.Lines) > MaxLines {
		errs = append(errs, fmt.Errorf("more than %d evidence lines", MaxLines))
	}
	for _, l := range f.Evidence.Lines {
		if len(l) > MaxLineLen {
			errs = append(errs, fmt.Errorf("evidence line longer than %d bytes", MaxLineLen))
			break
		}
	}
	if f.Evidence.Count < 0 || f.Evidence.Count > MaxCount {
		errs = append(errs, fmt.Errorf("evidence count %d outside 0-%d", f.Evidence.Count, MaxCount))
	}
	// These are stored as SQL text, which cannot hold NUL on PostgreSQL: one such finding would
	// fail its whole batch, which the agent then resends forever. (Evidence is stored as JSON,
	// where NUL is escaped.)
	for _, fv := range [...]struct{ name, v string }{{"id", f.ID}, {"title", f.Title}, {"dedup_key", f.DedupKey}, {"action", f.Action}} {
		if strings.IndexByte(fv.v, 0) >= 0 {
			errs = append(errs, fmt.Errorf("%s contains a NUL byte", fv.name))
		}
	}
	return errors.Join(errs...)
}

// Key returns the aggregation key: DedupKey, or the rule ID when the engine gave none.
func (f *Finding) Key() string {
	if f.DedupKey != "" {
		return f.RuleID + "|" + f.DedupKey
	}
	return f.RuleID
}

// NewID returns a fresh finding ID: 16 random bytes, hex-encoded.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on Linux >= 3.17; an ID we cannot make is a broken system.
		panic(fmt.Sprintf("finding: read random: %v", err))
	}
	return hex.EncodeToString(b[:])
}
