// Package budget keeps the agent within its CPU and memory budget and measures what the agent
// itself costs the host.
//
// The memory budget is handed to the Go runtime as its soft memory limit, so the garbage
// collector works harder as the heap approaches it. The CPU budget is enforced cooperatively:
// heavy work loops (scans) call Budget.Wait between units of work, and Wait pauses them when
// the process as a whole has been using more CPU than the budget allows. When the agent runs in
// a cgroup v2 with a CPU limit at or below the budget, the kernel enforces it instead.
//
// It is not a hard limit: work that never calls Wait (event handling, the transport) is not
// slowed down, although its CPU use counts against the budget and makes the next Wait pause
// longer; the memory limit is a soft target for the garbage collector, not a cap. Nor is it a
// general resource monitor of the host: it measures this process only.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults applied by New to zero (or invalid) Config fields.
const (
	DefaultCPUPercent  = 5.0
	DefaultMemoryBytes = 200 << 20
)

// Modes reported by Budget.Mode.
const (
	// ModeCgroup means the agent's cgroup v2 has a CPU or memory limit, which the kernel
	// enforces.
	ModeCgroup = "cgroup"
	// ModeSelf means no cgroup limit applies and the agent enforces its budget itself.
	ModeSelf = "self"
)

const (
	// measureEvery is the least time between two CPU measurements in Wait.
	measureEvery = 50 * time.Millisecond
	// window is how long a burst below budget is remembered: after a quiet spell, Wait lets
	// work run at full speed until it has used up budget × window of CPU time.
	window = time.Second
	// maxPause bounds the debt Wait collects, so that a long spell of CPU use outside the
	// work loops (or a measuring gap) does not stall scans for minutes.
	maxPause = 5 * time.Second
)

// Config is the resource budget of the agent.
type Config struct {
	// CPUPercent is the CPU the agent may use, as a percentage of one core (so 5 is a
	// twentieth of one core and 200 two full cores). Zero, negative or non-finite means
	// DefaultCPUPercent.
	CPUPercent float64
	// MemoryBytes is the memory the agent aims to stay within. Zero means DefaultMemoryBytes.
	MemoryBytes uint64
}

// Sample is a measurement of the agent's own resource use.
type Sample struct {
	// CPUPercent is the CPU used by the process since the previous Sample (or since New), as
	// a percentage of one core.
	CPUPercent float64
	// RSSBytes is the resident set size of the process.
	RSSBytes uint64
	// Throttled is the total time work was held back since New: pauses imposed by Wait plus,
	// when a cgroup CPU limit applies, the time the kernel throttled the cgroup.
	Throttled time.Duration
}

// Budget enforces a Config for the current process. Its methods are safe for concurrent use.
type Budget struct {
	cfg  Config
	mode string
	cg   cgroupLimits
	// selfThrottle is whether Wait enforces the CPU budget itself.
	selfThrottle bool
	rate         float64 // the CPU budget as CPU-seconds per second
	procSelf     string
	start        time.Time // monotonic reference for the atomics below

	// Wait's fast path reads only these.
	nextMeasure atomic.Int64 // nanoseconds since start when Wait next measures CPU
	pauseUntil  atomic.Int64 // nanoseconds since start until which Wait callers pause
	throttled   atomic.Int64 // nanoseconds of pauses imposed so far

	mu       sync.Mutex // guards the measuring state; held only by the measuring goroutine
	credit   float64    // CPU nanoseconds the process may still use; negative is debt
	lastWall int64      // nanoseconds since start at the last measurement
	lastCPU  time.Duration

	sampleMu       sync.Mutex
	sampleWall     time.Time
	sampleCPU      time.Duration
	cgThrottleBase time.Duration
}

// New returns a Budget for the current process and applies its memory budget.
//
// It sets the Go runtime's soft memory limit (debug.SetMemoryLimit) to cfg.MemoryBytes, or to
// nine tenths of the cgroup's memory.max when that is lower, so the garbage collector gets to
// work before the kernel's OOM killer does. The memory limit is process-wide: the last Budget
// created sets it.
//
// It reads the cgroup v2 limits of the process's own cgroup and its ancestors. Mode is
// ModeCgroup when a CPU or memory limit is set there, ModeSelf otherwise (also when cgroup v2
// is absent or its files cannot be read). Wait enforces the CPU budget itself unless the
// cgroup's CPU limit is at or below the budget: a looser cgroup limit does not loosen the
// budget.
func New(cfg Config) *Budget {
	return newBudget(cfg, "/proc/self", "/sys/fs/cgroup")
}

func newBudget(cfg Config, procSelf, cgroupRoot string) *Budget {
	if cfg.CPUPercent <= 0 || math.IsNaN(cfg.CPUPercent) || math.IsInf(cfg.CPUPercent, 0) {
		cfg.CPUPercent = DefaultCPUPercent
	}
	if cfg.MemoryBytes == 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	// Unreadable or malformed cgroup files leave the limits found so far; with none the
	// Budget simply runs in self mode.
	cg, _ := detectCgroup(procSelf, cgroupRoot)

	b := &Budget{
		cfg:      cfg,
		mode:     ModeSelf,
		cg:       cg,
		rate:     cfg.CPUPercent / 100,
		procSelf: procSelf,
		start:    time.Now(),
	}
	if cg.cpuPercent > 0 || cg.memory > 0 {
		b.mode = ModeCgroup
	}
	b.selfThrottle = cg.cpuPercent == 0 || cg.cpuPercent > cfg.CPUPercent

	limit := cfg.MemoryBytes
	if cg.memory > 0 && cg.memory/10*9 < limit {
		limit = cg.memory / 10 * 9
	}
	debug.SetMemoryLimit(int64(min(limit, math.MaxInt64)))

	cpu, _ := cpuTime()
	b.lastCPU = cpu
	b.sampleCPU = cpu
	b.sampleWall = b.start
	b.nextMeasure.Store(int64(measureEvery))
	if b.cg.cpuDir != "" {
		b.cgThrottleBase, _ = readThrottled(b.cg.cpuDir)
	}
	return b
}

// Config returns the budget in force, with defaults applied.
func (b *Budget) Config() Config { return b.cfg }

// Mode returns ModeCgroup or ModeSelf; see New.
func (b *Budget) Mode() string { return b.mode }

// Wait is called by heavy work loops between units of work. It returns ctx.Err() if ctx is
// done, and otherwise nil once the work may go on.
//
// When Wait enforces the CPU budget (see New), it keeps the CPU use of the whole process,
// averaged over about a second, within the budget: CPU time used beyond the budget becomes a
// debt that Wait pays back by pausing its callers until the average is back under the budget.
// Every caller arriving during a pause waits for its end (or its ctx). Measuring costs one
// getrusage call at most every 50 ms; every other call only reads the clock and two atomics.
//
// When a cgroup CPU limit at or below the budget applies, the kernel enforces it, and Wait
// only checks ctx: pausing as well would leave CPU the budget allows unused.
func (b *Budget) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.selfThrottle {
		return nil
	}
	now := int64(time.Since(b.start))
	if now < b.nextMeasure.Load() && now >= b.pauseUntil.Load() {
		return nil
	}
	return b.waitSlow(ctx, now)
}

func (b *Budget) waitSlow(ctx context.Context, now int64) error {
	if until := b.pauseUntil.Load(); now < until {
		return sleep(ctx, time.Duration(until-now))
	}
	if !b.mu.TryLock() {
		return nil // another caller is measuring; it will pause everyone if need be
	}
	if now < b.nextMeasure.Load() {
		b.mu.Unlock()
		return nil
	}
	pause := b.measure(now)
	b.mu.Unlock()
	if pause <= 0 {
		return nil
	}
	return sleep(ctx, pause)
}

// measure updates the CPU credit and returns how long callers must pause. b.mu is held.
func (b *Budget) measure(now int64) time.Duration {
	b.nextMeasure.Store(now + int64(measureEvery))
	cpu, err := cpuTime()
	if err != nil {
		return 0 // without a measurement there is nothing to enforce; try again later
	}
	wall := now - b.lastWall
	used := cpu - b.lastCPU
	b.lastWall, b.lastCPU = now, cpu

	b.credit += b.rate*float64(wall) - float64(used)
	b.credit = min(b.credit, b.rate*float64(window))
	b.credit = max(b.credit, -b.rate*float64(maxPause))
	if b.credit >= 0 {
		return 0
	}
	// Paying the debt back at the budget's rate takes debt/rate of wall time.
	pause := time.Duration(-b.credit / b.rate)
	if pause <= 0 {
		return 0
	}
	b.pauseUntil.Store(now + int64(pause))
	b.throttled.Add(int64(pause))
	return pause
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Sample measures the process: CPU use since the previous Sample, resident memory, and the
// time work was throttled so far. Values that cannot be read are zero.
func (b *Budget) Sample() Sample {
	var s Sample
	now := time.Now()
	cpu, err := cpuTime()

	b.sampleMu.Lock()
	if err == nil {
		if wall := now.Sub(b.sampleWall); wall > 0 && cpu >= b.sampleCPU {
			s.CPUPercent = float64(cpu-b.sampleCPU) / float64(wall) * 100
		}
		b.sampleWall, b.sampleCPU = now, cpu
	}
	b.sampleMu.Unlock()

	s.RSSBytes, _ = rss(b.procSelf)
	s.Throttled = time.Duration(b.throttled.Load())
	if b.cg.cpuDir != "" {
		if t, err := readThrottled(b.cg.cpuDir); err == nil && t > b.cgThrottleBase {
			s.Throttled += t - b.cgThrottleBase
		}
	}
	return s
}

// cpuTime is the user plus system CPU time used by the process so far.
func cpuTime() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// rss is the resident set size from procSelf/statm, or from VmRSS in procSelf/status.
func rss(procSelf string) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(procSelf, "statm"))
	if err == nil {
		var v uint64
		if v, err = parseStatm(data, uint64(os.Getpagesize())); err == nil {
			return v, nil
		}
	}
	data, err2 := os.ReadFile(filepath.Join(procSelf, "status"))
	if err2 != nil {
		return 0, fmt.Errorf("rss: %w", errors.Join(err, err2))
	}
	return parseStatusRSS(data)
}

// parseStatm returns the resident size from /proc/self/statm ("size resident shared ...",
// in pages).
func parseStatm(data []byte, pageSize uint64) (uint64, error) {
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, errors.New("rss: short statm")
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rss: bad statm resident %q", truncate(f[1]))
	}
	if pageSize != 0 && pages > math.MaxUint64/pageSize {
		return 0, errors.New("rss: statm resident out of range")
	}
	return pages * pageSize, nil
}

// parseStatusRSS returns VmRSS from /proc/self/status ("VmRSS:     1234 kB").
func parseStatusRSS(data []byte) (uint64, error) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("rss: bad VmRSS line %q", truncate(line))
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > math.MaxUint64/1024 {
			return 0, fmt.Errorf("rss: bad VmRSS value %q", truncate(f[0]))
		}
		return kb * 1024, nil
	}
	return 0, errors.New("rss: no VmRSS in status")
}
