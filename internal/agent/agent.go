// Package agent is the agent runtime: it holds the agent's identity, spools every finding to
// disk before sending it, keeps one stream to the console alive (heartbeats, findings, task
// updates out; acknowledgements and tasks in), and runs the fixed set of task types it knows.
//
// Detection lives in internal/detect and collection in internal/agent/source; they reach the
// console only through Emit. The agent never executes commands it receives: a task names a
// type compiled into the agent, and unknown types are refused.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/budget"
	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/agent/spool"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// Version is the agent's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// Config tunes the agent; zero values mean the defaults documented in docs/CONFIGURATION.md.
type Config struct {
	DataDir           string
	HeartbeatInterval time.Duration // default 15s
	Budget            budget.Config
	SpoolMaxBytes     int64 // default 256 MiB
	SpoolSync         bool  // fsync every append (survives power loss, slower)
	// BatchSize bounds findings per message; InFlight bounds findings sent but not acknowledged.
	BatchSize, InFlight int
	// Auth says where authentication logs and login records are read.
	Auth AuthConfig
	// Malware says where signatures and rules are and which directories are watched.
	Malware MalwareConfig
	// Behavior says where process events come from and which rules run.
	Behavior BehaviorConfig
	// Inventory says how installed packages are collected for vulnerability matching.
	Inventory InventoryConfig
	// Firewall is the blocking backend; nil picks the best this host has (nftables, then
	// ipset/iptables). Tests pass one bound to their own network namespace.
	Firewall respond.Firewall
}

func (c *Config) defaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 15 * time.Second
	}
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = 256 << 20
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.InFlight <= 0 {
		c.InFlight = 5000
	}
}

// Agent is a running agent.
type Agent struct {
	cfg    Config
	id     *Identity
	log    *slog.Logger
	spool  *spool.Spool
	budget *budget.Budget
	tasks  *taskRunner
	health health

	policy          atomic.Pointer[policy.Policy]
	policyMu        sync.Mutex // serialises policy changes and listener registration
	policyVersion   string
	policyListeners []func(policy.Policy)

	malware      atomic.Pointer[malwareEngine] // nil when no signatures or rules are installed
	malwareMu    sync.Mutex                    // serialises (re)loads
	malwareStamp string                        // the files of the last load attempt
	malwareTried bool                          // a load was attempted (malwareStamp is set)
	rep          *reputation
	guard        *respond.Guard      // nil when this host cannot block
	updates      chan *pb.TaskUpdate // task progress and results, drained by whichever session is up
	runCtx       context.Context     // Run's context, which tasks run under
	blockReport  chan struct{}       // wakes the sender to report active blocks
	packages     *packageState
}

// New opens the agent's identity and spool in cfg.DataDir.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	cfg.defaults()
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs // compared with the absolute paths file events carry
	}
	id, err := LoadIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	sp, err := spool.Open(filepath.Join(cfg.DataDir, "spool"), spool.Options{MaxBytes: cfg.SpoolMaxBytes, Sync: cfg.SpoolSync})
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	if st := sp.Stats(); st.Corrupt > 0 {
		log.Warn("spool had torn or corrupt records (agent killed mid-write?); they were cut off", "records", st.Corrupt)
	}
	a := &Agent{cfg: cfg, id: id, log: log, spool: sp, budget: budget.New(cfg.Budget), blockReport: make(chan struct{}, 1), rep: newReputation(),
		updates: make(chan *pb.TaskUpdate, 256), runCtx: context.Background(), packages: newPackageState()}
	p, version, err := loadPolicy(cfg.DataDir)
	if err != nil {
		log.Warn("saved policy unusable; using the default until the console sends one", "err", err)
	}
	a.policy.Store(&p)
	a.policyVersion = version
	a.tasks = newTaskRunner(a)
	a.health.set(finding.ComponentState{Name: "spool", Kind: "source", State: finding.StateRunning})
	return a, nil
}

// HostID is the console's ID for this host.
func (a *Agent) HostID() string { return a.id.HostID }

// Close closes the spool.
func (a *Agent) Close() error { return a.spool.Close() }

// Emit spools a finding for delivery. It fills the ID and time when empty. It returns an error
// when the finding is malformed or the spool is full; a full spool is also counted and
// reported to the console with the next heartbeat.
func (a *Agent) Emit(f finding.Finding) error {
	if f.ID == "" {
		f.ID = finding.NewID()
	}
	if f.Time.IsZero() {
		f.Time = time.Now().UTC()
	}
	f.Host = ""
	if err := f.Validate(); err != nil {
		return fmt.Errorf("emit %s: %w", f.RuleID, err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode finding: %w", err)
	}
	if _, err := a.spool.Append(b); err != nil {
		if errors.Is(err, spool.ErrFull) {
			a.health.set(finding.ComponentState{Name: "spool", Kind: "source", State: finding.StateDegraded,
				Reason: "spool full: findings are being dropped until the console acknowledges more"})
		}
		return fmt.Errorf("spool finding: %w", err)
	}
	return nil
}

// SpoolStats reports the spool's state.
func (a *Agent) SpoolStats() spool.Stats { return a.spool.Stats() }

// SetComponent records the state of a source or engine; heartbeats carry it to the console.
func (a *Agent) SetComponent(cs finding.ComponentState) { a.health.set(cs) }

// Budget is the agent's resource budget, for work loops to call Wait on.
func (a *Agent) Budget() *budget.Budget { return a.budget }

// health holds component states by name.
type health struct {
	mu      sync.Mutex
	states  map[string]finding.ComponentState
	order   []string
	changed chan struct{} // a component's state (not only its reason) changed: tell the console
}

func (h *health) set(cs finding.ComponentState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.states == nil {
		h.states = map[string]finding.ComponentState{}
		h.changed = make(chan struct{}, 1)
	}
	old, ok := h.states[cs.Name]
	if !ok {
		h.order = append(h.order, cs.Name)
	}
	h.states[cs.Name] = cs
	if !ok || old.State != cs.State {
		select {
		case h.changed <- struct{}{}:
		default:
		}
	}
}

// changes is signalled when a component's state changes (nil before the first component).
func (h *health) changes() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

func (h *health) snapshot() []finding.ComponentState {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]finding.ComponentState, 0, len(h.order))
	for _, n := range h.order {
		out = append(out, h.states[n])
	}
	return out
}

// Run keeps the console connection alive until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("agent running", "host", a.id.HostID, "console", a.id.Server, "budget_mode", a.budget.Mode())
	a.runCtx = ctx
	a.setupFirewall(ctx)
	a.setupMalware()
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){a.runAuth, a.runRealtime, a.runMalwareReload, a.runBehavior, a.runInventory} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	err := a.connectLoop(ctx)
	wg.Wait()
	return err
}
