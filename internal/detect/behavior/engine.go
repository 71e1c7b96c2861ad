package behavior

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Config tunes an engine. The zero value runs every rule with the default setuid list.
type Config struct {
	// Disabled lists rule IDs not to run ("behavior.miner-pool-port", "sigma.<uuid>"). IDs the
	// rule set does not have are accepted: a policy may name rules of another release.
	Disabled []string `json:"disabled,omitempty"`
	// Allow entries suppress findings before they are emitted (counted in Stats.Allowlisted).
	Allow []Allow `json:"allow,omitempty"`
	// SetuidAllow lists the programs (base names or absolute paths) that may legitimately run
	// as root for an unprivileged parent; nil means DefaultSetuidAllow. See proc.setuid_allowed.
	SetuidAllow []string `json:"setuid_allow,omitempty"`
	// MaxPending caps the partial matches kept per sequence rule; when full, the oldest is
	// evicted (Stats.Evicted). 0 means 1024.
	MaxPending int `json:"max_pending,omitempty"`
	// LookupUser resolves the user names of Allow.Users to uids; without it only numeric uids
	// and "root" may be given.
	LookupUser func(name string) (uid uint32, ok bool) `json:"-"`
}

// DefaultMaxPending is Config.MaxPending when it is 0.
const DefaultMaxPending = 1024

// Stats counts what an engine did since New.
type Stats struct {
	Events      uint64 // events handled
	Evaluations uint64 // conditions evaluated (candidates the index selected)
	Matches     uint64 // rule matches, before the allowlist
	Allowlisted uint64 // matches an Allow entry suppressed
	Emitted     uint64 // findings emitted
	Pending     int    // partial sequence matches waiting for their next step
	Started     uint64 // partial sequence matches started
	Evicted     uint64 // partial matches dropped because a rule had MaxPending
	Expired     uint64 // partial matches dropped because their window passed
	Rules       int    // rules running
	Unindexed   int    // conditions evaluated for every event of their kinds (no anchor)
}

// Engine turns events into findings with a compiled rule set. It is not safe for concurrent
// use: one goroutine feeds it, and time is the events' time, never the clock.
type Engine struct {
	rules      []*Rule
	matchers   []matcher
	buckets    [KindExit + 1]*bucket
	allow      []allowEntry
	maxPending int
	pending    [][]*partial // by rule index
	pindex     []pendingIndex
	ctx        evalCtx
	stamp      uint32
	cand       []int32
	stats      Stats
	lastSweep  time.Time
}

type matcher struct {
	rule  int32
	step  int32 // -1 for a single-event rule
	cond  node
	stamp uint32
}

// New compiles rules into an engine.
func New(rules *RuleSet, cfg Config) (*Engine, error) {
	return newEngine(rules, cfg, true)
}

// newEngine builds an engine; without the index every condition is evaluated for every event of
// its kinds, which the benchmark uses as the baseline.
func newEngine(rules *RuleSet, cfg Config, indexed bool) (*Engine, error) {
	var errs []error
	disabled := map[string]bool{}
	for _, id := range cfg.Disabled {
		if !ruleIDPattern.MatchString(id) {
			errs = append(errs, fmt.Errorf("disabled: %q is not a rule ID such as behavior.reverse-shell-dev-tcp", id))
		}
		disabled[id] = true
	}
	allow, err := compileAllow(cfg.Allow, cfg.LookupUser)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.MaxPending < 0 {
		errs = append(errs, errors.New("max_pending must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	e := &Engine{allow: allow, maxPending: cfg.MaxPending}
	if e.maxPending == 0 {
		e.maxPending = DefaultMaxPending
	}
	setuid := cfg.SetuidAllow
	if setuid == nil {
		setuid = DefaultSetuidAllow
	}
	e.ctx.setuid = newSetuidList(setuid)
	for k := range e.buckets {
		e.buckets[k] = newBucket()
	}
	for _, r := range rules.Rules() {
		if disabled[r.ID] {
			continue
		}
		ri := int32(len(e.rules))
		e.rules = append(e.rules, r)
		if r.seq == nil {
			e.addMatcher(ri, -1, r.cond, r.Kinds, indexed)
			continue
		}
		// later steps first, so that an event advancing a partial match is not also taken
		// as the next step of the match it just advanced
		for si := len(r.seq.steps) - 1; si >= 0; si-- {
			st := &r.seq.steps[si]
			e.addMatcher(ri, int32(si), st.cond, st.kinds, indexed)
		}
	}
	for _, b := range e.buckets {
		b.freeze()
	}
	e.pending = make([][]*partial, len(e.rules))
	e.pindex = make([]pendingIndex, len(e.rules))
	e.stats.Rules = len(e.rules)
	return e, nil
}

func (e *Engine) addMatcher(rule, step int32, cond node, kinds []Kind, indexed bool) {
	m := int32(len(e.matchers))
	e.matchers = append(e.matchers, matcher{rule: rule, step: step, cond: cond})
	set, ok := anchorsOf(cond)
	ok = ok && indexed
	if !ok {
		e.stats.Unindexed++
	}
	for _, k := range kinds {
		e.buckets[k].add(m, set, ok)
	}
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Pending = 0
	for _, p := range e.pending {
		s.Pending += len(p)
	}
	return s
}

// Handle evaluates one event and calls emit for each finding, in rule order.
func (e *Engine) Handle(ev *Event, emit func(finding.Finding)) {
	e.stats.Events++
	if int(ev.Kind) >= len(e.buckets) || ev.Kind == 0 {
		return
	}
	b := e.buckets[ev.Kind]
	c := &e.ctx
	c.reset(ev)
	e.stamp++
	if e.stamp == 0 { // wrapped: clear the stamps so none looks current
		for i := range e.matchers {
			e.matchers[i].stamp = 0
		}
		e.stamp = 1
	}
	e.cand = e.cand[:0]
	if len(b.byName) > 0 {
		e.collect(b.byName[lowerASCII(ev.Proc.Name())])
	}
	if len(ev.Ancestors) > 0 {
		if len(b.byParent) > 0 {
			e.collect(b.byParent[lowerASCII(ev.Ancestors[0].Name())])
		}
		if len(b.byAnc) > 0 {
			for i := range ev.Ancestors {
				e.collect(b.byAnc[lowerASCII(ev.Ancestors[i].Name())])
			}
		}
	}
	for i := range b.flags {
		if b.flags[i].f.boo(c) {
			e.collect(b.flags[i].ms)
		}
	}
	if len(b.lits.lits) > 0 {
		c.lower = appendLowerCmdline(c.lower[:0], &ev.Proc)
		b.lits.scan(c.lower, func(li int32) { e.collect(b.lits.owners[li]) })
	}
	if len(b.byPort) > 0 && ev.Net != nil {
		e.collect(b.byPort[ev.Net.Remote.Port()])
	}
	if len(b.fileLits.lits) > 0 && ev.File != nil {
		c.lower = appendLower(c.lower[:0], ev.File.Path)
		b.fileLits.scan(c.lower, func(li int32) { e.collect(b.fileLits.owners[li]) })
	}
	e.collect(b.always)
	if len(e.cand) == 0 {
		e.maybeSweep(ev.Time)
		return
	}
	slices.Sort(e.cand)
	for _, mi := range e.cand {
		m := &e.matchers[mi]
		if m.step > 0 && len(e.pending[m.rule]) == 0 {
			continue // nothing waits for a later step
		}
		e.stats.Evaluations++
		if !m.cond.eval(c) {
			continue
		}
		r := e.rules[m.rule]
		if m.step < 0 {
			e.report(r, c, nil, emit)
			continue
		}
		e.sequenceStep(m.rule, int(m.step), c, emit)
	}
	e.maybeSweep(ev.Time)
}

func (e *Engine) collect(ms []int32) {
	for _, mi := range ms {
		if m := &e.matchers[mi]; m.stamp != e.stamp {
			m.stamp = e.stamp
			e.cand = append(e.cand, mi)
		}
	}
}

// report applies the allowlist to a match and emits its finding.
func (e *Engine) report(r *Rule, c *evalCtx, p *partial, emit func(finding.Finding)) {
	e.stats.Matches++
	if e.allowed(r, c) {
		e.stats.Allowlisted++
		return
	}
	e.stats.Emitted++
	emit(buildFinding(r, c, p))
}
