package budget

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// restoreMemoryLimit undoes the process-wide soft memory limit a Budget sets.
func restoreMemoryLimit(t testing.TB) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
}

// selfBudget is a Budget that sees no cgroup, so it always enforces the CPU budget itself.
func selfBudget(t testing.TB, cfg Config) *Budget {
	restoreMemoryLimit(t)
	return newBudget(cfg, "/proc/self", t.TempDir())
}

func processCPU(t testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var sink atomic.Uint64

// burn does a few microseconds of pure CPU work.
func burn() {
	x := sink.Load()
	for i := range 5000 {
		x = x*6364136223846793005 + uint64(i)
	}
	sink.Store(x)
}

func TestWaitThrottlesBusyLoop(t *testing.T) {
	b := selfBudget(t, Config{CPUPercent: 20})
	if b.Mode() != ModeSelf {
		t.Fatalf("mode %q, want self", b.Mode())
	}
	ctx := context.Background()
	cpu0, wall0 := processCPU(t), time.Now()
	for time.Since(wall0) < 1500*time.Millisecond {
		burn()
		if err := b.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cpu, wall := processCPU(t)-cpu0, time.Since(wall0)
	pct := float64(cpu) / float64(wall) * 100
	s := b.Sample()
	t.Logf("CPU %.1f%% of one core over %v with a 20%% budget; throttled %v", pct, wall, s.Throttled)
	if pct >= 45 {
		t.Errorf("CPU %.1f%%, want well under 100%% (< 45%%) with a 20%% budget", pct)
	}
	if s.Throttled <= 0 {
		t.Errorf("Throttled = %v, want > 0", s.Throttled)
	}
}

func TestWaitThrottlesConcurrentWorkers(t *testing.T) {
	b := selfBudget(t, Config{CPUPercent: 20})
	ctx := context.Background()
	cpu0, wall0 := processCPU(t), time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Since(wall0) < time.Second {
				burn()
				if err := b.Wait(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpu, wall := processCPU(t)-cpu0, time.Since(wall0)
	pct := float64(cpu) / float64(wall) * 100
	t.Logf("4 workers: CPU %.1f%% of one core with a 20%% budget; throttled %v", pct, b.Sample().Throttled)
	if pct >= 60 {
		t.Errorf("CPU %.1f%%, want well under the 200%% two busy cores give (< 60%%)", pct)
	}
}

func TestWaitWithinBudgetDoesNotPause(t *testing.T) {
	b := selfBudget(t, Config{CPUPercent: 1e6}) // far more than the machine has
	start := time.Now()
	for time.Since(start) < 200*time.Millisecond {
		burn()
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if th := b.Sample().Throttled; th != 0 {
		t.Errorf("Throttled = %v, want 0", th)
	}
}

func TestWaitHonoursCancel(t *testing.T) {
	b := selfBudget(t, Config{CPUPercent: 1})
	// Run up a debt: 200 ms of CPU at 1% is seconds of pause.
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		burn()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	var err error
	for err == nil && time.Since(start) < 3*time.Second {
		burn()
		err = b.Wait(ctx)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Wait took %v to notice cancellation", d)
	}

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := b.Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled ctx = %v", err)
	}
}

func TestSample(t *testing.T) {
	b := selfBudget(t, Config{})
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
		burn()
	}
	s := b.Sample()
	if s.RSSBytes == 0 {
		t.Error("RSS is 0")
	}
	if s.RSSBytes > 1<<40 {
		t.Errorf("RSS %d implausible", s.RSSBytes)
	}
	// A busy single goroutine since New: roughly one core, allowing for scheduling noise and
	// other test goroutines.
	if s.CPUPercent < 20 || s.CPUPercent > 400 {
		t.Errorf("CPU %.1f%% implausible for a busy loop", s.CPUPercent)
	}
	time.Sleep(100 * time.Millisecond)
	if s2 := b.Sample(); s2.CPUPercent > 50 {
		t.Errorf("CPU %.1f%% while sleeping", s2.CPUPercent)
	}
	t.Logf("%+v", s)
}

func TestNewDefaultsAndMemoryLimit(t *testing.T) {
	b := selfBudget(t, Config{CPUPercent: math.NaN()})
	if got := b.Config(); got.CPUPercent != DefaultCPUPercent || got.MemoryBytes != DefaultMemoryBytes {
		t.Errorf("defaults: %+v", got)
	}
	if got := debug.SetMemoryLimit(-1); got != DefaultMemoryBytes {
		t.Errorf("memory limit %d, want %d", got, DefaultMemoryBytes)
	}
	b = selfBudget(t, Config{CPUPercent: -3, MemoryBytes: math.MaxUint64})
	if b.Config().CPUPercent != DefaultCPUPercent {
		t.Errorf("negative CPU not defaulted: %+v", b.Config())
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("huge memory budget: limit %d", got)
	}
}

func TestRSSParsing(t *testing.T) {
	if v, err := parseStatm([]byte("12345 678 90 1 0 2 0\n"), 4096); err != nil || v != 678*4096 {
		t.Errorf("statm: %d, %v", v, err)
	}
	for _, bad := range []string{"", "1", "1 x", "1 -2"} {
		if _, err := parseStatm([]byte(bad), 4096); err == nil {
			t.Errorf("statm %q: want error", bad)
		}
	}
	status := "Name:\tagent\nVmPeak:\t  9999 kB\nVmRSS:\t    5120 kB\nThreads:\t4\n"
	if v, err := parseStatusRSS([]byte(status)); err != nil || v != 5120*1024 {
		t.Errorf("status: %d, %v", v, err)
	}
	for _, bad := range []string{"", "VmRSS: 12\n", "VmRSS: x kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); err == nil {
			t.Errorf("status %q: want error", bad)
		}
	}

	// Fallback from a missing statm to status.
	dir := t.TempDir()
	writeFile(t, dir, "status", status)
	if v, err := rss(dir); err != nil || v != 5120*1024 {
		t.Errorf("rss fallback: %d, %v", v, err)
	}
	if _, err := rss(t.TempDir()); err == nil {
		t.Error("rss with no files: want error")
	}
}

func writeFile(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkWait measures the uncontended fast path: a budget that is never exceeded, so Wait
// only reads the clock, and measures with getrusage once every 50 ms.
func BenchmarkWait(b *testing.B) {
	bg := selfBudget(b, Config{CPUPercent: 1e6})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := bg.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitParallel is the fast path with every core's goroutines calling Wait.
func BenchmarkWaitParallel(b *testing.B) {
	bg := selfBudget(b, Config{CPUPercent: 1e6})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bg.Wait(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNewLive runs New against the real host; whatever the host, the Budget must work.
func TestNewLive(t *testing.T) {
	restoreMemoryLimit(t)
	b := New(Config{CPUPercent: 50})
	if m := b.Mode(); m != ModeSelf && m != ModeCgroup {
		t.Errorf("mode %q", m)
	}
	if err := b.Wait(context.Background()); err != nil {
		t.Error(err)
	}
	t.Logf("mode %s, cgroup %+v, sample %+v", b.Mode(), b.cg, b.Sample())
}
