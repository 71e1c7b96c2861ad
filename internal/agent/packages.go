package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/inventory"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// InventoryConfig says how the package inventory is collected for vulnerability matching.
type InventoryConfig struct {
	// Disabled turns the inventory off.
	Disabled bool
	// Interval between full collections; default 6h. The inventory is also collected when the
	// dpkg, rpm or apk database changes (checked every minute) and on a collect-inventory task.
	Interval time.Duration
	// Root is the file system inventoried; default "/".
	Root string
	// LanguageDirs are searched for Java, Python, npm packages and Go binaries; nil means
	// inventory.DefaultLanguageDirs, an empty list none.
	LanguageDirs []string
	// CheckInterval is how often the package databases' modification times are looked at;
	// default 1m.
	CheckInterval time.Duration
}

// maxInventoryChunk bounds the packages in one Inventory message, well under the 8 MiB message
// limit even with long jar paths.
const maxInventoryChunk = 2000

// packageState is the inventory as collected and as last sent. The sender owns sent and
// generation; the collector owns current; both under mu.
type packageState struct {
	mu         sync.Mutex
	current    *inventory.Inventory
	sent       []finding.Package
	generation uint64
	needFull   bool
	ready      chan struct{}   // wakes the sender when current changed or a full resend is due
	refresh    chan chan error // collect-inventory tasks ask the collector to run now
}

func newPackageState() *packageState {
	return &packageState{ready: make(chan struct{}, 1), refresh: make(chan chan error), needFull: true}
}

// runInventory collects at start, then on the interval, when a package database changes, and
// when a task asks.
func (a *Agent) runInventory(ctx context.Context) {
	cfg := a.cfg.Inventory
	if cfg.Disabled {
		return
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 6 * time.Hour
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	collect := func() error {
		start := time.Now()
		inv, err := inventory.Collect(ctx, inventory.Config{Root: cfg.Root, LanguageDirs: cfg.LanguageDirs, SkipDirs: []string{a.cfg.DataDir}})
		if err != nil {
			a.health.set(finding.ComponentState{Name: "inventory", Kind: "source", State: finding.StateUnavailable, Reason: err.Error()})
			return err
		}
		state := finding.ComponentState{Name: "inventory", Kind: "source", State: finding.StateRunning,
			Reason: fmt.Sprintf("%d packages, collected in %s", len(inv.Packages), time.Since(start).Round(time.Millisecond))}
		if len(inv.Errors) > 0 {
			state.State = finding.StateDegraded
			state.Reason += "; " + clipReason(strings.Join(inv.Errors, "; "))
		}
		a.health.set(state)
		a.packages.mu.Lock()
		a.packages.current = &inv
		a.packages.mu.Unlock()
		wakeCh(a.packages.ready)
		return nil
	}
	stamp := inventory.DatabaseStamp(cfg.Root)
	if err := collect(); err != nil {
		a.log.Warn("package inventory", "err", err)
	}
	last := time.Now()
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	tick := time.NewTicker(min(cfg.CheckInterval, cfg.Interval))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case done := <-a.packages.refresh:
			stamp, last = inventory.DatabaseStamp(cfg.Root), time.Now()
			done <- collect()
		case <-tick.C:
			s := inventory.DatabaseStamp(cfg.Root)
			if s == stamp && time.Since(last) < cfg.Interval {
				continue
			}
			stamp, last = s, time.Now()
			if err := collect(); err != nil {
				a.log.Warn("package inventory", "err", err)
			}
		}
	}
}

func clipReason(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

func wakeCh(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// sendInventory sends what the console does not have yet: everything after a (re)connect or a
// request for a full inventory, else the difference from what was last sent.
func (a *Agent) sendInventory(stream pb.AgentService_ConnectClient) error {
	ps := a.packages
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.current == nil {
		return nil
	}
	cur := ps.current.Packages
	osr := &pb.OSRelease{Id: ps.current.OS.ID, VersionId: ps.current.OS.VersionID, VersionCodename: ps.current.OS.Codename, PrettyName: ps.current.OS.Pretty}
	var msgs []*pb.Inventory
	if ps.needFull {
		for i := 0; i == 0 || i < len(cur); i += maxInventoryChunk {
			m := &pb.Inventory{Full: i == 0, Os: osr, Added: packagesToProto(cur[i:min(i+maxInventoryChunk, len(cur))])}
			msgs = append(msgs, m)
		}
	} else {
		added, removed := inventory.Diff(ps.sent, cur)
		if len(added) == 0 && len(removed) == 0 {
			return nil
		}
		for len(added) > 0 || len(removed) > 0 {
			m := &pb.Inventory{Os: osr}
			n := min(len(removed), maxInventoryChunk)
			m.Removed, removed = packagesToProto(removed[:n]), removed[n:]
			k := min(len(added), maxInventoryChunk-n)
			m.Added, added = packagesToProto(added[:k]), added[k:]
			msgs = append(msgs, m)
		}
	}
	// Totals let the console check each step; they count what the host holds after the step.
	total := len(ps.sent)
	if ps.needFull {
		total = 0
	}
	for _, m := range msgs {
		ps.generation++
		m.Generation = ps.generation
		total += len(m.Added) - len(m.Removed)
		m.Total = uint32(total)
		if err := stream.Send(&pb.AgentMessage{Body: &pb.AgentMessage_Inventory{Inventory: m}}); err != nil {
			ps.needFull = true // the console may hold part of it; start over on the next stream
			return err
		}
	}
	ps.sent = cur
	ps.needFull = false
	return nil
}

// requestFullInventory marks the next send as a full inventory (on connect, or when the console
// lost track).
func (a *Agent) requestFullInventory() {
	a.packages.mu.Lock()
	a.packages.needFull = true
	a.packages.mu.Unlock()
	wakeCh(a.packages.ready)
}

func packagesToProto(ps []finding.Package) []*pb.Package {
	out := make([]*pb.Package, len(ps))
	for i, p := range ps {
		out[i] = &pb.Package{Ecosystem: p.Ecosystem, Name: p.Name, Version: p.Version, SourceName: p.SourceName, SourceVersion: p.SourceVersion,
			Arch: p.Arch, Location: p.Location, Purl: p.PURL, Extractor: p.Extractor}
	}
	return out
}

// InventoryResult is the collect-inventory task's result.
type InventoryResult struct {
	Packages int      `json:"packages"`
	OS       string   `json:"os"`
	Errors   []string `json:"errors,omitempty"`
}

// collectInventory runs the collect-inventory task: collect now, and let the sender send the
// changes.
func (r *taskRunner) collectInventory(ctx context.Context, t *pb.TaskAssign, progress func(int, string)) (any, error) {
	if err := task.Validate(t.GetType(), t.GetParams()); err != nil {
		return nil, err
	}
	if r.a.cfg.Inventory.Disabled {
		return nil, errors.New("the package inventory is disabled in this agent's configuration")
	}
	done := make(chan error, 1)
	select {
	case r.a.packages.refresh <- done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.a.packages.mu.Lock()
	defer r.a.packages.mu.Unlock()
	inv := r.a.packages.current
	return InventoryResult{Packages: len(inv.Packages), OS: strings.TrimSpace(inv.OS.ID + " " + inv.OS.VersionID), Errors: inv.Errors}, nil
}
