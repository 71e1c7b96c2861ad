package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
	"github.com/palisade-cwpp/palisade/internal/agent/source/procevents"
	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
)

// BehaviorConfig says where process events come from and which rules run besides the
// built-in ones.
type BehaviorConfig struct {
	// Disabled turns the behaviour engine and its kernel event source off.
	Disabled bool
	// Events tunes the kernel event source (audit socket mode, watched paths, queue sizes).
	Events procevents.Config
	// Rules are the operator's own rule files or directories (*.yml), loaded after the built-in
	// rules. Default: DATA_DIR/rules/behavior, when it exists.
	Rules []string
	// Sigma are Sigma rule files or directories (linux process_creation rules are used; every
	// other rule is reported as not loaded, with the reason).
	Sigma []string
}

// behaviorPipeline feeds kernel events to the engine built from the policy in force.
type behaviorPipeline struct {
	a     *Agent
	rules *behavior.RuleSet
	notes []string // rules that did not load, for the engine's state

	mu  sync.Mutex // guards eng and on; Handle runs under it
	eng *behavior.Engine
	on  bool
}

// runBehavior loads the rules, opens the kernel event source and runs until ctx ends.
func (a *Agent) runBehavior(ctx context.Context) {
	cfg := a.cfg.Behavior
	if cfg.Disabled {
		return
	}
	p := &behaviorPipeline{a: a}
	if err := p.load(cfg); err != nil {
		a.health.set(finding.ComponentState{Name: "behavior", Kind: "engine", State: finding.StateUnavailable, Reason: err.Error()})
		return
	}
	a.OnPolicy(p.configure)
	src, err := procevents.Open(cfg.Events, a.log.With("part", "procevents"))
	if err != nil {
		var ue *source.UnavailableError
		reason := err.Error()
		if errors.As(err, &ue) {
			reason = ue.Reason
		}
		a.health.set(finding.ComponentState{Name: "process-events", Kind: "source", State: finding.StateUnavailable, Reason: reason})
		return
	}
	a.health.set(sourceState(src, 0, procevents.Stats{}))
	done := make(chan struct{})
	go p.watchLosses(ctx, src, done)
	self := int32(os.Getpid())
	err = src.Run(ctx, func(ev *behavior.Event) {
		if ev.Proc.PID == self {
			return // the agent's own connections and files (seen when beside an audit daemon)
		}
		p.handle(ev)
	})
	close(done)
	if err != nil {
		a.health.set(finding.ComponentState{Name: "process-events", Kind: "source", State: finding.StateUnavailable, Reason: err.Error()})
	}
}

// load reads the built-in rules and the operator's.
func (p *behaviorPipeline) load(cfg BehaviorConfig) error {
	rules, problems, err := behavior.Builtin()
	if err != nil {
		return fmt.Errorf("built-in rules: %w", err)
	}
	if cfg.Rules == nil {
		if dir := filepath.Join(p.a.cfg.DataDir, "rules", "behavior"); isDir(dir) {
			cfg.Rules = []string{dir}
		}
	}
	for _, set := range []struct {
		paths []string
		load  func(fsys fs.FS, patterns ...string) (*behavior.RuleSet, []behavior.LoadProblem, error)
	}{{cfg.Rules, behavior.LoadRules}, {cfg.Sigma, behavior.LoadSigma}} {
		for _, path := range set.paths {
			fsys, pattern := ruleFS(path)
			more, probs, err := set.load(fsys, pattern...)
			if err != nil {
				problems = append(problems, behavior.LoadProblem{File: path, Reason: err.Error()})
				continue
			}
			problems = append(problems, probs...)
			rules = rules.Merge(more)
		}
	}
	for _, pr := range problems {
		p.a.log.Warn("behavior rule not loaded", "file", pr.File, "rule", pr.Rule, "reason", pr.Reason)
		p.notes = append(p.notes, pr.Error())
	}
	p.rules = rules
	return nil
}

// configure builds the engine for a policy. Partial sequences of the old engine are dropped:
// a policy change is rare, and a rule switched off must stop at once.
func (p *behaviorPipeline) configure(pol policy.Policy) {
	cfg := pol.Behavior.Config
	cfg.LookupUser = lookupUID
	eng, err := behavior.New(p.rules, cfg)
	p.mu.Lock()
	p.on = pol.Behavior.Enabled
	if err == nil {
		p.eng = eng
	}
	p.mu.Unlock()
	cs := finding.ComponentState{Name: "behavior", Kind: "engine", State: finding.StateRunning,
		Reason: fmt.Sprintf("%d rules", p.rules.Len())}
	switch {
	case err != nil:
		cs.State, cs.Reason = finding.StateDegraded, "policy not applied: "+err.Error()
	case !pol.Behavior.Enabled:
		cs.State, cs.Reason = finding.StateUnavailable, "switched off by policy"
	case len(p.notes) > 0:
		cs.State = finding.StateDegraded
		cs.Reason = fmt.Sprintf("%d rules; not loaded: %s", p.rules.Len(), strings.Join(p.notes[:min(len(p.notes), 5)], "; "))
	}
	p.a.health.set(cs)
}

func (p *behaviorPipeline) handle(ev *behavior.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on || p.eng == nil {
		return
	}
	p.eng.Handle(ev, func(f finding.Finding) {
		if err := p.a.Emit(f); err != nil { // a full spool is counted and reported by Emit itself
			p.a.log.Warn("behavior finding not spooled", "rule", f.RuleID, "err", err)
		}
	})
}

// watchLosses turns the source's loss counters into the component's state, so a host that
// sheds events shows it.
func (p *behaviorPipeline) watchLosses(ctx context.Context, src *procevents.Source, done <-chan struct{}) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	var last procevents.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
		}
		st := src.Stats()
		lost := (st.Shed - last.Shed) + (st.KernelLost - last.KernelLost) + (st.Overruns - last.Overruns)
		cs := sourceState(src, lost, st)
		p.a.health.set(cs)
		last = st
	}
}

// sourceState describes the event source: running on audit, degraded when it lost events in
// the last interval or runs on the proc connector fallback.
func sourceState(src *procevents.Source, lost uint64, st procevents.Stats) finding.ComponentState {
	cs := finding.ComponentState{Name: "process-events", Kind: "source", State: finding.StateRunning, Reason: "audit, " + src.Mode()}
	if why := src.Fallback(); why != "" {
		cs.State = finding.StateDegraded
		cs.Reason = "proc connector fallback (audit: " + why + "): argv of short-lived processes may be lost; no connect, accept or file events"
	}
	if lost > 0 {
		cs.State = finding.StateDegraded
		cs.Reason += fmt.Sprintf("; %d events lost in the last 15s (shed %d, kernel %d, socket %d since start)", lost, st.Shed, st.KernelLost, st.Overruns)
	}
	return cs
}

// lookupUID resolves user names of allow entries on this host.
func lookupUID(name string) (uint32, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(n), err == nil
}

// ruleFS opens a rule file or directory as a file system and the patterns to load from it.
func ruleFS(path string) (fs.FS, []string) {
	if isDir(path) {
		return os.DirFS(path), []string{"*.yml", "*.yaml"}
	}
	return os.DirFS(filepath.Dir(path)), []string{filepath.Base(path)}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
