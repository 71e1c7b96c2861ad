// Package login is Palisade's abnormal-login engine: successful logins in, findings out.
//
// It is modelled on the "abnormal login" detection of Tencent Cloud Workload Protection (usual
// login regions, usual source IPs and usual login hours, an allowlist whose entries are scoped
// to hosts, host groups or the whole fleet, and a high-risk/suspicious ranking) and on Wazuh's
// rules for successful logins (sshd authentication success, "First time user logged in",
// direct root login, GeoIP-enriched sources). Five rules, each with a stable ID and its own switch:
//
//   - login.region-not-allowed: the source is placed outside Config.HomeRegions (when set),
//     by country, province or city, through a GeoIP2/GeoLite2 database;
//   - login.source-not-allowed: the source address is outside Config.AllowedSources (when set);
//   - login.new-source: the account logs in from a /24 (IPv4) or /64 (IPv6) it has never used,
//     once its first network login is older than the learning period;
//   - login.root: root logs in directly over the network;
//   - login.outside-hours: the login time is outside Config.AllowedHours (when set).
//
// Only login.outside-hours applies to console logins (those without a source address).
//
// One login yields at most one finding: its rule ID is the first rule in the order above that
// fired and Evidence.Fields["reasons"] lists every rule that fired, comma-separated in that
// order, so a login that breaks three rules is one event for the operator, not three. A login
// from outside the home regions (whether or not the region rule is on) or from an address the
// threat-intelligence hook flags is "high-risk" (severity high); any other is "suspicious"
// (severity medium); Evidence.Fields["risk"] says which. An allowlist entry that matches the
// login suppresses the finding; the login is learned all the same. The dedup key is
// "user|source" ("user|console" for console logins).
//
// The engine is pure: it reads only the logins it is given and its Locator. The one piece of
// I/O in the package is GeoIP, which opens the operator's .mmdb file.
package login

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Rule IDs. They are stable across releases.
const (
	RuleSourceNotAllowed = "login.source-not-allowed"
	RuleRegionNotAllowed = "login.region-not-allowed"
	RuleOutsideHours     = "login.outside-hours"
	RuleNewSource        = "login.new-source"
	RuleRoot             = "login.root"
)

// Risk levels, as written to Evidence.Fields["risk"].
const (
	RiskHigh       = "high-risk"
	RiskSuspicious = "suspicious"
)

// MITRE ATT&CK techniques attached to findings.
const (
	mitreValidAccounts = "T1078"     // Valid Accounts
	mitreSSH           = "T1021.004" // Remote Services: SSH
)

// Login is one successful login, as a collector parsed it.
type Login struct {
	Time    time.Time
	User    string
	Source  netip.Addr // invalid for local console logins
	Service string     // sshd, login, ...
	Method  string     // password, publickey, ...
	TTY     string
	Host    string // host ID, set by the console side or empty on the agent
}

// RuleSwitches turns each rule on or off. The zero value turns every rule off: start from
// DefaultConfig, which turns them all on.
type RuleSwitches struct {
	SourceNotAllowed bool `json:"source_not_allowed" yaml:"source_not_allowed"`
	RegionNotAllowed bool `json:"region_not_allowed" yaml:"region_not_allowed"`
	OutsideHours     bool `json:"outside_hours" yaml:"outside_hours"`
	NewSource        bool `json:"new_source" yaml:"new_source"`
	RootLogin        bool `json:"root_login" yaml:"root_login"`
}

// AllRules has every rule on.
var AllRules = RuleSwitches{SourceNotAllowed: true, RegionNotAllowed: true, OutsideHours: true, NewSource: true, RootLogin: true}

// Defaults for the zero values of Config's numbers.
const (
	DefaultLearningPeriod    = 7 * 24 * time.Hour
	DefaultMaxUsers          = 4096
	DefaultMaxSourcesPerUser = 32
)

// Config is the engine's policy. The rules whose list or window is unset do not fire:
// SourceNotAllowed needs AllowedSources, RegionNotAllowed needs HomeRegions, OutsideHours
// needs AllowedHours.
type Config struct {
	Rules RuleSwitches `json:"rules" yaml:"rules"`

	AllowedSources []netip.Prefix `json:"allowed_sources,omitempty" yaml:"allowed_sources,omitempty"`
	HomeRegions    []Place        `json:"home_regions,omitempty" yaml:"home_regions,omitempty"` // Country required; Province/City narrow
	AllowedHours   *HourRange     `json:"allowed_hours,omitempty" yaml:"allowed_hours,omitempty"`

	// LearningPeriod keeps login.new-source quiet for an account until its first network
	// login is this old, so that a fresh install does not report every account's usual
	// sources. Zero means DefaultLearningPeriod; negative means none (every unseen network
	// is reported, even on an account's first login).
	LearningPeriod time.Duration `json:"learning_period,omitempty" yaml:"learning_period,omitempty"`

	Allow []Allow `json:"allow,omitempty" yaml:"allow,omitempty"`

	// HighRiskIPs is a threat-intelligence hook: a login from an address it flags is
	// high-risk. It only ranks: it is asked about logins that a rule reported and no
	// allowlist entry covers. May be nil; it is called outside the engine's lock.
	HighRiskIPs func(netip.Addr) bool `json:"-" yaml:"-"`

	// Host and Group identify the host the engine runs on (the agent); they stand in for an
	// empty Login.Host when allowlist scopes are checked.
	Host  string `json:"-" yaml:"-"`
	Group string `json:"-" yaml:"-"`
	// GroupOf returns the group of a host ID, for scopes on the console side, where each
	// login names its host. May be nil.
	GroupOf func(host string) string `json:"-" yaml:"-"`

	// Memory bounds of the learned history. Zero means the default; past MaxUsers the least
	// recently seen account is forgotten (and learns again), past MaxSourcesPerUser an
	// account's least recently used network is.
	MaxUsers          int `json:"max_users,omitempty" yaml:"max_users,omitempty"`
	MaxSourcesPerUser int `json:"max_sources_per_user,omitempty" yaml:"max_sources_per_user,omitempty"`
}

// DefaultConfig has every rule on, the default learning period and bounds, and no lists:
// only login.new-source and login.root fire until the operator sets sources, regions or hours.
func DefaultConfig() Config {
	return Config{Rules: AllRules, LearningPeriod: DefaultLearningPeriod, MaxUsers: DefaultMaxUsers, MaxSourcesPerUser: DefaultMaxSourcesPerUser}
}

// Stats are the engine's counters and its standing warnings, for the agent's component state.
type Stats struct {
	Logins     uint64 `json:"logins"`     // logins observed
	Invalid    uint64 `json:"invalid"`    // logins dropped: no time, or a time beyond year 9999
	Findings   uint64 `json:"findings"`   // findings returned
	Suppressed uint64 `json:"suppressed"` // findings an allowlist entry suppressed
	// RegionSkipped counts logins for which the region rule could not be checked for want
	// of a GeoIP database.
	RegionSkipped  uint64   `json:"region_skipped"`
	Users          int      `json:"users"`           // accounts in the learned history
	Sources        int      `json:"sources"`         // networks in the learned history
	UsersEvicted   uint64   `json:"users_evicted"`   // accounts forgotten at MaxUsers
	SourcesEvicted uint64   `json:"sources_evicted"` // networks forgotten at MaxSourcesPerUser
	Warnings       []string `json:"warnings,omitempty"`
}

// NoGeoIPWarning is the warning Stats carries when the configuration needs a GeoIP database
// (home regions or allowlist places) and the engine has none.
const NoGeoIPWarning = "no GeoIP database: login.region-not-allowed is skipped and allowlist places match nothing"

// Detector is the abnormal-login engine. It is safe for concurrent use.
type Detector struct {
	cfg      Config
	loc      Locator
	learning time.Duration
	warnings []string

	mu    sync.Mutex
	hist  *history
	stats Stats
}

// NewDetector checks cfg and returns an engine. loc may be nil: the region rule is then
// skipped (Stats says so once, in Warnings) and allowlist places match nothing.
func NewDetector(cfg Config, loc Locator) (*Detector, error) {
	if g, ok := loc.(*GeoIP); ok && g == nil {
		loc = nil
	}
	var errs []error
	switch {
	case cfg.MaxUsers < 0:
		errs = append(errs, fmt.Errorf("max_users %d is negative", cfg.MaxUsers))
	case cfg.MaxUsers == 0:
		cfg.MaxUsers = DefaultMaxUsers
	}
	switch {
	case cfg.MaxSourcesPerUser < 0:
		errs = append(errs, fmt.Errorf("max_sources_per_user %d is negative", cfg.MaxSourcesPerUser))
	case cfg.MaxSourcesPerUser == 0:
		cfg.MaxSourcesPerUser = DefaultMaxSourcesPerUser
	}
	learning := cfg.LearningPeriod
	switch {
	case learning == 0:
		learning = DefaultLearningPeriod
	case learning < 0:
		learning = 0
	}
	srcs := make([]netip.Prefix, 0, len(cfg.AllowedSources))
	for _, p := range cfg.AllowedSources {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allowed_sources: invalid prefix %v", p))
			continue
		}
		srcs = append(srcs, normPrefix(p))
	}
	cfg.AllowedSources = srcs
	regions := make([]Place, 0, len(cfg.HomeRegions))
	for _, p := range cfg.HomeRegions {
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("home_regions: %w", err))
			continue
		}
		p.Country = strings.ToUpper(p.Country)
		regions = append(regions, p)
	}
	cfg.HomeRegions = regions
	if cfg.AllowedHours != nil {
		if err := cfg.AllowedHours.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("allowed_hours: %w", err))
		}
	}
	allows := make([]Allow, 0, len(cfg.Allow))
	needGeo := cfg.Rules.RegionNotAllowed && len(cfg.HomeRegions) > 0
	for i, a := range cfg.Allow {
		v, err := a.Validate()
		if err != nil {
			name := fmt.Sprintf("allow[%d]", i)
			if a.Comment != "" {
				name += fmt.Sprintf(" (%s)", a.Comment)
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		needGeo = needGeo || len(v.Places) > 0
		allows = append(allows, v)
	}
	cfg.Allow = allows
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("login engine configuration: %w", err)
	}
	d := &Detector{cfg: cfg, loc: loc, learning: learning, hist: newHistory(cfg.MaxUsers, cfg.MaxSourcesPerUser)}
	if loc == nil && needGeo {
		d.warnings = append(d.warnings, NoGeoIPWarning)
	}
	if cfg.Rules == (RuleSwitches{}) {
		d.warnings = append(d.warnings, "every login rule is switched off")
	}
	return d, nil
}

// Stats returns the engine's counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Users = len(d.hist.users)
	s.Sources = d.hist.sourceCount()
	s.UsersEvicted = d.hist.usersEvicted
	s.SourcesEvicted = d.hist.sourcesEvicted
	s.Warnings = append([]string(nil), d.warnings...)
	return s
}

// normAddr drops an IPv6 zone and unmaps IPv4-mapped addresses, so that ::ffff:198.51.100.7
// and 198.51.100.7 are the same source.
func normAddr(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return a
	}
	return a.Unmap().WithZone("")
}

// validTime reports whether a finding can carry t: finding.Validate wants years 1-9999 in UTC,
// and JSON (the spool, the snapshot) wants them in t's own zone too.
func validTime(t time.Time) bool {
	if t.IsZero() {
		return false
	}
	u, l := t.UTC().Year(), t.Year()
	return u >= 1 && u <= 9999 && l >= 1 && l <= 9999
}

// Observe checks one successful login and learns from it. It returns nil or one finding, with
// ID left for the agent to assign.
func (d *Detector) Observe(l Login) []finding.Finding {
	if !validTime(l.Time) {
		d.mu.Lock()
		d.stats.Logins++
		d.stats.Invalid++
		d.mu.Unlock()
		return nil
	}
	src := normAddr(l.Source)
	var place Place
	located := false
	if d.loc != nil && src.IsValid() {
		place, located = d.loc.Locate(src)
		place.Country = strings.ToUpper(place.Country)
		located = located && place.Country != ""
	}

	var isNew bool
	d.mu.Lock()
	d.stats.Logins++
	if src.IsValid() {
		var age time.Duration
		// Keys are cleaned as evidence is: bounded, and valid UTF-8 so that they survive the
		// JSON snapshot unchanged.
		isNew, age = d.hist.learn(userKey{clean(l.Host, maxFieldLen), clean(l.User, maxFieldLen)}, sourceNet(src), l.Time.UTC())
		isNew = isNew && age >= d.learning
	}
	if d.loc == nil && src.IsValid() && d.cfg.Rules.RegionNotAllowed && len(d.cfg.HomeRegions) > 0 {
		d.stats.RegionSkipped++
	}
	d.mu.Unlock()

	outsideHome := located && len(d.cfg.HomeRegions) > 0 && !anyPlaceCovers(d.cfg.HomeRegions, place)
	r := d.cfg.Rules
	var reasons []string
	if r.RegionNotAllowed && outsideHome {
		reasons = append(reasons, RuleRegionNotAllowed)
	}
	if r.SourceNotAllowed && src.IsValid() && len(d.cfg.AllowedSources) > 0 && !anyPrefixContains(d.cfg.AllowedSources, src) {
		reasons = append(reasons, RuleSourceNotAllowed)
	}
	if r.NewSource && isNew {
		reasons = append(reasons, RuleNewSource)
	}
	if r.RootLogin && src.IsValid() && l.User == "root" {
		reasons = append(reasons, RuleRoot)
	}
	if r.OutsideHours && d.cfg.AllowedHours != nil && !d.cfg.AllowedHours.Contains(l.Time) {
		reasons = append(reasons, RuleOutsideHours)
	}
	if len(reasons) == 0 {
		return nil
	}

	host, group := d.hostGroup(l.Host)
	s := subject{user: l.User, source: src, place: place, located: located, host: host, group: group, at: l.Time}
	for i := range d.cfg.Allow {
		if d.cfg.Allow[i].matches(&s) {
			d.mu.Lock()
			d.stats.Suppressed++
			d.mu.Unlock()
			return nil
		}
	}

	// The hook may be costly (a feed look-up): ask it only about logins that are findings.
	intel := src.IsValid() && d.cfg.HighRiskIPs != nil && d.cfg.HighRiskIPs(src)
	f := d.build(l, src, place, located, intel || outsideHome, intel, reasons)
	d.mu.Lock()
	d.stats.Findings++
	d.mu.Unlock()
	return []finding.Finding{f}
}

// hostGroup resolves the host ID and group that allowlist scopes are checked against.
func (d *Detector) hostGroup(host string) (string, string) {
	if host == "" || host == d.cfg.Host {
		return d.cfg.Host, d.cfg.Group
	}
	if d.cfg.GroupOf != nil {
		return host, d.cfg.GroupOf(host)
	}
	return host, ""
}

// reasonWords are the short phrases of each rule in finding titles.
var reasonWords = map[string]string{
	RuleRegionNotAllowed: "outside home regions",
	RuleSourceNotAllowed: "source not allowed",
	RuleNewSource:        "new source",
	RuleRoot:             "direct root login",
	RuleOutsideHours:     "outside allowed hours",
}

// Field limits: user names and the like come from logs, so they are bounded and made printable.
const (
	maxFieldLen = 256
	maxTitleArg = 64
)

func (d *Detector) build(l Login, src netip.Addr, place Place, located, high, intel bool, reasons []string) finding.Finding {
	user := clean(l.User, maxFieldLen)
	risk, sev := RiskSuspicious, finding.SeverityMedium
	if high {
		risk, sev = RiskHigh, finding.SeverityHigh
	}
	fields := map[string]string{"risk": risk, "reasons": strings.Join(reasons, ",")}
	put := func(k, v string) {
		if v = clean(v, maxFieldLen); v != "" {
			fields[k] = v
		}
	}
	put("service", l.Service)
	put("method", l.Method)
	put("tty", l.TTY)
	if located {
		put("country", place.Country)
		put("province", place.Province)
		put("city", place.City)
	}
	if intel {
		fields["threat_intel"] = "true"
	}
	from, srcIP := "the console", ""
	if src.IsValid() {
		srcIP = src.String()
		from = srcIP
		fields["source_net"] = sourceNet(src).String()
		if located {
			from += " (" + clean(strings.Join(nonEmpty(place.Country, place.Province, place.City), ", "), 3*maxTitleArg) + ")"
		}
	} else if tty := clean(l.TTY, maxTitleArg); tty != "" {
		from = "the console (" + tty + ")"
	}
	words := make([]string, len(reasons))
	for i, r := range reasons {
		words[i] = reasonWords[r]
	}
	titleUser := clean(l.User, maxTitleArg)
	if titleUser == "" {
		titleUser = "(no user name)"
	}
	title := fmt.Sprintf("Abnormal login by %s from %s: %s", titleUser, from, strings.Join(words, ", "))

	mitre := []string{mitreValidAccounts}
	if isSSH(l.Service) {
		mitre = append(mitre, mitreSSH)
	}
	dedupSrc := srcIP
	if dedupSrc == "" {
		dedupSrc = "console"
	}
	f := finding.Finding{
		RuleID:   reasons[0],
		Category: finding.CategoryLogin,
		Severity: sev,
		Title:    truncate(title, finding.MaxTitle),
		Host:     l.Host,
		Time:     l.Time,
		DedupKey: truncate(user, finding.MaxDedupKey-len(dedupSrc)-1) + "|" + dedupSrc,
		Action:   action(titleUser, srcIP, high),
		MITRE:    mitre,
		Evidence: finding.Evidence{SourceIP: srcIP, Fields: fields},
	}
	if user != "" {
		f.Evidence.Users = []string{user}
	}
	return f
}

func action(user, src string, high bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Confirm with the owner of %s that this login was theirs. ", user)
	if high {
		b.WriteString("Until confirmed, treat the account as compromised: ")
	} else {
		b.WriteString("If it was not: ")
	}
	b.WriteString("end its sessions, change its password and keys")
	if src != "" {
		fmt.Fprintf(&b, ", block %s", src)
	}
	b.WriteString(" and review what it did. If the login is expected, add an allowlist entry for it.")
	return b.String()
}

func isSSH(service string) bool {
	return strings.Contains(strings.ToLower(service), "ssh")
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// clean makes a log-supplied string safe to show and store: invalid UTF-8 and control
// characters (NUL among them, which PostgreSQL text cannot hold) become '?', and it is cut to
// at most max bytes on a character boundary.
func clean(s string, max int) string {
	ok := len(s) <= max
	for i := 0; ok && i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			ok = false
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n <= 1 {
				r = '?'
			}
		}
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Covered reports whether the allowlist entry a covers a past finding of this engine, so that
// the console can close the events an entry added later would have suppressed. The finding is
// matched as it recorded the login: user, source address, the place it was located at then,
// time and host. Findings of other engines, and invalid entries, are never covered.
func (d *Detector) Covered(a Allow, f finding.Finding) bool {
	if !strings.HasPrefix(f.RuleID, "login.") {
		return false
	}
	v, err := a.Validate()
	if err != nil {
		return false
	}
	var s subject
	if len(f.Evidence.Users) > 0 {
		s.user = f.Evidence.Users[0]
	}
	if f.Evidence.SourceIP != "" {
		ip, err := netip.ParseAddr(f.Evidence.SourceIP)
		if err != nil {
			return false
		}
		s.source = normAddr(ip)
	}
	fl := f.Evidence.Fields
	s.place = Place{Country: strings.ToUpper(fl["country"]), Province: fl["province"], City: fl["city"]}
	s.located = s.place.Country != ""
	if !s.located && s.source.IsValid() && d.loc != nil && len(v.Places) > 0 {
		s.place, s.located = d.loc.Locate(s.source)
		s.place.Country = strings.ToUpper(s.place.Country)
		s.located = s.located && s.place.Country != ""
	}
	s.at = f.Time
	s.host, s.group = d.hostGroup(f.Host)
	return v.matches(&s)
}

// Snapshot returns the learned history (accounts, their networks and when each was first and
// last seen) as JSON, for the agent to keep across restarts.
func (d *Detector) Snapshot() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hist.snapshot()
}

// Restore replaces the learned history with one from Snapshot. It applies this engine's
// memory bounds, keeping the most recently seen accounts and networks. On error the history
// is left as it was.
func (d *Detector) Restore(b []byte) error {
	h, err := restoreHistory(b, d.cfg.MaxUsers, d.cfg.MaxSourcesPerUser)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	h.usersEvicted += d.hist.usersEvicted
	h.sourcesEvicted += d.hist.sourcesEvicted
	d.hist = h
	return nil
}
