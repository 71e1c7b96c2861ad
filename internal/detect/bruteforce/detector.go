package bruteforce

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Rule IDs, stable across releases.
const (
	RuleGuessing    = "bruteforce.password-guessing"
	RuleEnumeration = "bruteforce.user-enumeration"
	RuleDistributed = "bruteforce.distributed"
	RuleSucceeded   = "bruteforce.succeeded"
	RuleLocalAuth   = "bruteforce.local-auth"
)

// Threshold is a rule that fires when Count things happen within Window.
type Threshold struct {
	Enabled bool
	Count   int
	Window  time.Duration
}

// Lookback is a rule that looks back Window for an earlier finding.
type Lookback struct {
	Enabled bool
	Window  time.Duration
}

// Config sets the detector's rules and bounds. Start from DefaultConfig: a zero Config does not
// validate.
type Config struct {
	// FailuresPerSource fires bruteforce.password-guessing: failed attempts from one address.
	// Default 5 in 10m, fail2ban's maxretry and findtime. Count at most 1000.
	FailuresPerSource Threshold
	// EnumerationUsers fires bruteforce.user-enumeration: distinct users failing from one
	// address. Default 5 in 10m. Count 2-100.
	EnumerationUsers Threshold
	// DistributedSources fires bruteforce.distributed: distinct addresses failing on one existing
	// account, each below both per-source thresholds. Default 10 in 1h. Count 2-1000.
	DistributedSources Threshold
	// SuccessLookback fires bruteforce.succeeded: a login accepted from an address (or at a
	// terminal) that crossed a guessing, enumeration or local threshold within Window. Default 1h.
	SuccessLookback Lookback
	// LocalFailures fires bruteforce.local-auth: failures of LocalServices by one user at one
	// terminal. Default 5 in 10m. Count at most 1000.
	LocalFailures Threshold
	// MaxTracked bounds each of the tables of addresses, accounts and local users; beyond it the
	// least recently seen entry is evicted (Stats.Evicted). Entries quiet for longer than every
	// window are dropped anyway (Stats.Expired). Default 20000. An entry keeps at most 10 lines
	// of evidence cut to 512 bytes and user names cut to 128 bytes: a one-shot bot costs about
	// 0.9 KB (17 MB for 20000), and an address whose every line is as long and every user name
	// as new as possible about 9 KB with its accounts (180 MB at the default; TestMemoryBound).
	MaxTracked int
	// LocalServices are keyed by the user and terminal of the event instead of an address.
	// Default su and sudo.
	LocalServices []string
	// Ignore lists networks whose events are not counted (Stats.Ignored), like fail2ban's
	// ignoreip: monitoring, bastions, the office.
	Ignore []netip.Prefix
}

// DefaultConfig returns the documented defaults, every rule enabled.
func DefaultConfig() Config {
	return Config{
		FailuresPerSource:  Threshold{Enabled: true, Count: 5, Window: 10 * time.Minute},
		EnumerationUsers:   Threshold{Enabled: true, Count: 5, Window: 10 * time.Minute},
		DistributedSources: Threshold{Enabled: true, Count: 10, Window: time.Hour},
		SuccessLookback:    Lookback{Enabled: true, Window: time.Hour},
		LocalFailures:      Threshold{Enabled: true, Count: 5, Window: 10 * time.Minute},
		MaxTracked:         20000,
		LocalServices:      []string{ServiceSu, ServiceSudo},
	}
}

const (
	maxWindow       = 7 * 24 * time.Hour
	maxEvidence     = 10 // lines and users in a finding
	joinPortMS      = 150_000
	joinUserMS      = 30_000
	connsPerActor   = 8
	maxExpirePerObs = 4
)

// Validate reports every field out of range.
func (c *Config) Validate() error {
	var errs []error
	check := func(name string, t Threshold, lo, hi int) {
		if t.Count < lo || t.Count > hi {
			errs = append(errs, fmt.Errorf("%s.Count %d outside %d-%d", name, t.Count, lo, hi))
		}
		if t.Window < time.Second || t.Window > maxWindow {
			errs = append(errs, fmt.Errorf("%s.Window %v outside 1s-%v", name, t.Window, maxWindow))
		}
	}
	check("FailuresPerSource", c.FailuresPerSource, 1, 1000)
	check("EnumerationUsers", c.EnumerationUsers, 2, 100)
	check("DistributedSources", c.DistributedSources, 2, 1000)
	check("LocalFailures", c.LocalFailures, 1, 1000)
	if w := c.SuccessLookback.Window; w < time.Second || w > maxWindow {
		errs = append(errs, fmt.Errorf("SuccessLookback.Window %v outside 1s-%v", w, maxWindow))
	}
	if c.MaxTracked < 16 || c.MaxTracked > 10_000_000 {
		errs = append(errs, fmt.Errorf("MaxTracked %d outside 16-10000000", c.MaxTracked))
	}
	for _, s := range c.LocalServices {
		if s == "" {
			errs = append(errs, errors.New("LocalServices has an empty name"))
		}
	}
	for _, p := range c.Ignore {
		if !p.IsValid() {
			errs = append(errs, errors.New("Ignore has an invalid prefix"))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("bruteforce config (start from DefaultConfig): %w", errors.Join(errs...))
	}
	return nil
}

// Stats are the detector's counters.
type Stats struct {
	Events       uint64 // observed
	Failures     uint64 // failed attempts counted, after joining the lines of a connection
	Successes    uint64
	Ignored      uint64 // events from Config.Ignore networks
	Unattributed uint64 // remote events without an address, or of no known outcome
	// Findings per rule.
	Guessing, Enumeration, Distributed, Succeeded, LocalAuth uint64
	// Entries tracked now.
	Sources, Accounts, Locals int
	Evicted                   uint64 // entries dropped to stay within MaxTracked
	Expired                   uint64 // entries dropped after being quiet for longer than every window
}

// Detector turns Events into Findings. It is not safe for concurrent use.
type Detector struct {
	cfg       Config
	local     []string
	now       int64 // latest event time seen, Unix ms
	retention int64
	sources   table[netip.Addr, actor]
	locals    table[localKey, actor]
	accounts  table[string, account]
	stats     Stats
	seq       uint32
}

type localKey struct{ by, tty string }

// NewDetector validates cfg and returns a detector.
func NewDetector(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.LocalServices = append([]string(nil), cfg.LocalServices...)
	cfg.Ignore = append([]netip.Prefix(nil), cfg.Ignore...)
	ret := max(cfg.FailuresPerSource.Window, cfg.EnumerationUsers.Window, cfg.DistributedSources.Window,
		cfg.SuccessLookback.Window, cfg.LocalFailures.Window)
	d := &Detector{cfg: cfg, local: cfg.LocalServices, retention: ret.Milliseconds() + joinPortMS}
	d.sources.init(cfg.MaxTracked, nil)
	d.locals.init(cfg.MaxTracked, func(k localKey) localKey { return localKey{clone(k.by), clone(k.tty)} })
	d.accounts.init(cfg.MaxTracked, clone)
	return d, nil
}

// Stats returns the counters.
func (d *Detector) Stats() Stats {
	s := d.stats
	s.Sources, s.Locals, s.Accounts = d.sources.len(), d.locals.len(), d.accounts.len()
	return s
}

func (d *Detector) isLocal(service string) bool {
	for _, s := range d.local {
		if s == service {
			return true
		}
	}
	return false
}

// Observe takes one event and returns the findings it completes: usually none. Events should
// come in time order; a late one counts as of its own time.
func (d *Detector) Observe(e Event) []finding.Finding {
	d.stats.Events++
	t := e.Time.UnixMilli()
	if t > d.now {
		d.now = t
	}
	d.expire()
	if e.Outcome == 0 || e.Outcome > Blocked {
		d.stats.Unattributed++
		return nil
	}
	local := d.isLocal(e.Service)
	if !local {
		if !e.Source.IsValid() {
			d.stats.Unattributed++
			return nil
		}
		e.Source = e.Source.Unmap()
		for _, p := range d.cfg.Ignore {
			if p.Contains(e.Source) {
				d.stats.Ignored++
				return nil
			}
		}
	}
	e.By, e.TTY = cut(e.By, maxUserLen), cut(e.TTY, maxUserLen)
	if e.Outcome == Success {
		d.stats.Successes++
		return d.success(&e, t, local)
	}
	return d.failure(&e, t, local)
}

func (d *Detector) expire() {
	cut := d.now - d.retention
	for range maxExpirePerObs {
		n := 0
		if d.sources.expireOne(cut, d.dropActor) {
			n++
		}
		if d.locals.expireOne(cut, d.dropActor) {
			n++
		}
		if d.accounts.expireOne(cut, nil) {
			n++
		}
		if n == 0 {
			return
		}
		d.stats.Expired += uint64(n)
	}
}

func (d *Detector) dropActor(a *actor) { a.gen++ }

func (d *Detector) actorFor(e *Event, t int64, local bool, create bool) *actor {
	var a *actor
	var isNew, evicted bool
	if local {
		by := e.By
		if by == "" {
			by = e.User
		}
		a, isNew, evicted = d.locals.get(localKey{by, e.TTY}, t, create, d.dropActor)
		if isNew {
			a.reset(d.cfg.LocalFailures.Count, maxEvidence)
			a.local, a.isLocal = localKey{clone(by), clone(e.TTY)}, true
		}
	} else {
		a, isNew, evicted = d.sources.get(e.Source, t, create, d.dropActor)
		if isNew {
			a.reset(d.cfg.FailuresPerSource.Count, max(d.cfg.EnumerationUsers.Count, maxEvidence))
			a.addr = e.Source
		}
	}
	if evicted {
		d.stats.Evicted++
	}
	return a
}

func (d *Detector) failure(e *Event, t int64, local bool) []finding.Finding {
	e.User = cut(e.User, maxUserLen)
	a := d.actorFor(e, t, local, true)
	if t > a.last {
		a.last = t
	}
	a.services |= serviceBit(e.Service)
	uh := userHash(e.User)
	if local {
		uh = 0 // one invocation of su or sudo is one "connection", whatever user its lines name
	}
	n := a.count(e, t, uh)
	d.stats.Failures += uint64(n)
	newUser := false
	if e.User != "" {
		d.seq++
		newUser = a.seeUser(e.User, uh, t, e.Outcome == InvalidUser, d.seq)
	}
	if n > 0 {
		a.lines.push(e.Line)
		a.fails.push(t, n)
	}
	var out []finding.Finding
	if local {
		if f, ok := d.localRule(a, e, t, n); ok {
			out = append(out, f)
		}
		return out
	}
	enumFired := false
	if f, ok := d.enumerationRule(a, e, t, n, newUser); ok {
		out = append(out, f)
		enumFired = true
	}
	if f, ok := d.guessingRule(a, e, t, n, enumFired); ok {
		out = append(out, f)
	}
	if e.Outcome == Failure && e.User != "" && d.cfg.DistributedSources.Enabled {
		if f, ok := d.distributedRule(a, e, t, n); ok {
			out = append(out, f)
		}
	}
	return out
}

func (d *Detector) guessingRule(a *actor, e *Event, t int64, n int, enumFired bool) (finding.Finding, bool) {
	c := d.cfg.FailuresPerSource
	if !c.Enabled || n == 0 {
		return finding.Finding{}, false
	}
	w := c.Window.Milliseconds()
	ep := &a.guess
	if ep.active && t-ep.last > w {
		*ep = episode{}
	}
	if ep.active {
		ep.count += n
		ep.last = max(ep.last, t)
		a.flagged = max(a.flagged, t)
		if t-ep.fired < w || a.enum.active {
			return finding.Finding{}, false
		}
		ep.fired = t
	} else {
		oldest, full := a.fails.oldest()
		if !full || t-oldest > w {
			return finding.Finding{}, false
		}
		*ep = episode{active: true, first: oldest, last: t, fired: t, count: max(a.fails.inWindow(t, w), n)}
		a.flagged = max(a.flagged, t)
		if enumFired || a.enum.active {
			return finding.Finding{}, false
		}
	}
	d.stats.Guessing++
	return d.guessingFinding(a, e, t), true
}

func (d *Detector) enumerationRule(a *actor, e *Event, t int64, n int, newUser bool) (finding.Finding, bool) {
	c := d.cfg.EnumerationUsers
	if !c.Enabled {
		return finding.Finding{}, false
	}
	w := c.Window.Milliseconds()
	ep := &a.enum
	if ep.active && t-ep.last > w {
		*ep = episode{}
	}
	if ep.active {
		if n == 0 && !newUser {
			return finding.Finding{}, false
		}
		ep.count += n
		if newUser {
			ep.distinct++
		}
		ep.last = max(ep.last, t)
		a.flagged = max(a.flagged, t)
		if t-ep.fired < w {
			return finding.Finding{}, false
		}
		ep.fired = t
	} else {
		if !newUser {
			return finding.Finding{}, false
		}
		distinct, first := a.usersInWindow(t, w)
		if distinct < c.Count {
			return finding.Finding{}, false
		}
		*ep = episode{active: true, first: first, last: t, fired: t, distinct: distinct,
			count: max(a.fails.inWindow(t, w), distinct)}
		a.flagged = max(a.flagged, t)
	}
	d.stats.Enumeration++
	return d.enumerationFinding(a, e, t), true
}

func (d *Detector) distributedRule(a *actor, e *Event, t int64, n int) (finding.Finding, bool) {
	c := d.cfg.DistributedSources
	w := c.Window.Milliseconds()
	acc, isNew, evicted := d.accounts.get(e.User, t, true, nil)
	if evicted {
		d.stats.Evicted++
	}
	if isNew {
		acc.reset()
	}
	acc.last = max(acc.last, t)
	acc.services |= serviceBit(e.Service)
	added := acc.see(a, t, n, w, 2*c.Count)
	if n > 0 {
		acc.lines.push(e.Line)
	}
	ep := &acc.ep
	if ep.active && t-ep.last > w {
		*ep = episode{}
	}
	guessW := d.cfg.FailuresPerSource.Window.Milliseconds()
	if ep.active {
		ep.count += n
		if added {
			ep.distinct++
		}
		ep.last = max(ep.last, t)
		if t-ep.fired < w || (n == 0 && !added) {
			return finding.Finding{}, false
		}
		ep.fired = t
	} else {
		if n == 0 {
			return finding.Finding{}, false
		}
		q, fails, first := acc.qualifying(t, w, guessW)
		if q < c.Count {
			return finding.Finding{}, false
		}
		*ep = episode{active: true, first: first, last: t, fired: t, distinct: q, count: fails}
	}
	d.stats.Distributed++
	return d.distributedFinding(acc, e, t), true
}

func (d *Detector) localRule(a *actor, e *Event, t int64, n int) (finding.Finding, bool) {
	c := d.cfg.LocalFailures
	if !c.Enabled || n == 0 {
		return finding.Finding{}, false
	}
	w := c.Window.Milliseconds()
	ep := &a.guess
	if ep.active && t-ep.last > w {
		*ep = episode{}
	}
	if ep.active {
		ep.count += n
		ep.last = max(ep.last, t)
		a.flagged = max(a.flagged, t)
		if t-ep.fired < w {
			return finding.Finding{}, false
		}
		ep.fired = t
	} else {
		oldest, full := a.fails.oldest()
		if !full || t-oldest > w {
			return finding.Finding{}, false
		}
		*ep = episode{active: true, first: oldest, last: t, fired: t, count: max(a.fails.inWindow(t, w), n)}
		a.flagged = max(a.flagged, t)
	}
	d.stats.LocalAuth++
	return d.localFinding(a, e, t), true
}

func (d *Detector) success(e *Event, t int64, local bool) []finding.Finding {
	if !local && e.User != "" && d.cfg.DistributedSources.Enabled {
		if acc, _, _ := d.accounts.get(e.User, t, false, nil); acc != nil {
			acc.succeeded(e.Source)
		}
	}
	a := d.actorFor(e, t, local, false)
	if a == nil {
		return nil
	}
	look := d.cfg.SuccessLookback
	if a.flagged != 0 && t-a.flagged <= look.Window.Milliseconds() {
		if !look.Enabled || (a.succFired != 0 && t-a.succFired < look.Window.Milliseconds() && a.succUser == e.User) {
			return nil
		}
		a.succFired, a.succUser = t, clone(e.User)
		d.stats.Succeeded++
		return []finding.Finding{d.succeededFinding(a, e, t)}
	}
	// Below every threshold: a user who mistyped, if every user that failed from here lately is
	// the one who just logged in.
	if a.onlyUser(e.User, t, d.retention) {
		a.forgive()
	}
	return nil
}
