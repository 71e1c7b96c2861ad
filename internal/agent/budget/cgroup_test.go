package budget

import (
	"context"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
)

func TestParseCPUMax(t *testing.T) {
	for _, tc := range []struct {
		in      string
		pct     float64
		limited bool
		bad     bool
	}{
		{in: "max 100000\n"},
		{in: "max"},
		{in: "50000 100000\n", pct: 50, limited: true},
		{in: "200000 100000", pct: 200, limited: true},
		{in: "5000 100000", pct: 5, limited: true},
		{in: "25000", pct: 25, limited: true},
		{in: "", bad: true},
		{in: "max 0", bad: true},
		{in: "0 100000", bad: true},
		{in: "-1 100000", bad: true},
		{in: "abc 100000", bad: true},
		{in: "1 2 3", bad: true},
	} {
		pct, limited, err := parseCPUMax(tc.in)
		if (err != nil) != tc.bad || pct != tc.pct || limited != tc.limited {
			t.Errorf("parseCPUMax(%q) = %v, %v, %v; want %v, %v, bad=%v",
				tc.in, pct, limited, err, tc.pct, tc.limited, tc.bad)
		}
	}
}

func TestParseMemoryMax(t *testing.T) {
	for _, tc := range []struct {
		in      string
		bytes   uint64
		limited bool
		bad     bool
	}{
		{in: "max\n"},
		{in: "209715200\n", bytes: 209715200, limited: true},
		{in: "0"},
		{in: "18446744073709551615"},
		{in: "", bad: true},
		{in: "-5", bad: true},
		{in: "1G", bad: true},
	} {
		n, limited, err := parseMemoryMax(tc.in)
		if (err != nil) != tc.bad || n != tc.bytes || limited != tc.limited {
			t.Errorf("parseMemoryMax(%q) = %v, %v, %v; want %v, %v, bad=%v",
				tc.in, n, limited, err, tc.bytes, tc.limited, tc.bad)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"0::/system.slice/palisade-agent.service\n", "/system.slice/palisade-agent.service", true},
		{"0::/\n", "/", true},
		{"12:memory:/x\n1:cpu:/\n0::/user.slice/u\n", "/user.slice/u", true},
		{"0::/../../etc\n", "/etc", true},
		{"4:memory:/docker/abc\n", "", false},
		{"0::relative\n", "", false},
		{"", "", false},
	} {
		got, ok := parseProcCgroup([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseProcCgroup(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// cgroupFixture builds a fake /proc/self and /sys/fs/cgroup with the agent in
// /system.slice/agent.service, and returns their paths.
func cgroupFixture(t *testing.T, files map[string]string) (procSelf, cgroupRoot string) {
	t.Helper()
	root := t.TempDir()
	procSelf = filepath.Join(root, "proc", "self")
	cgroupRoot = filepath.Join(root, "sys", "fs", "cgroup")
	writeFile(t, procSelf, "cgroup", "0::/system.slice/agent.service\n")
	writeFile(t, cgroupRoot, "cgroup.controllers", "cpuset cpu io memory pids\n")
	writeFile(t, cgroupRoot, "system.slice/agent.service/cgroup.procs", "1\n")
	for name, content := range files {
		writeFile(t, cgroupRoot, name, content)
	}
	return procSelf, cgroupRoot
}

func TestDetectCgroup(t *testing.T) {
	const svc = "system.slice/agent.service/"
	for _, tc := range []struct {
		name  string
		files map[string]string
		cpu   float64
		mem   uint64
		mode  string
	}{
		{
			name:  "unlimited",
			files: map[string]string{svc + "cpu.max": "max 100000\n", svc + "memory.max": "max\n"},
			mode:  ModeSelf,
		},
		{
			name:  "no limit files",
			files: nil,
			mode:  ModeSelf,
		},
		{
			name:  "cpu limit",
			files: map[string]string{svc + "cpu.max": "50000 100000\n", svc + "memory.max": "max\n"},
			cpu:   50,
			mode:  ModeCgroup,
		},
		{
			name:  "memory limit",
			files: map[string]string{svc + "cpu.max": "max 100000\n", svc + "memory.max": "104857600\n"},
			mem:   104857600,
			mode:  ModeCgroup,
		},
		{
			name: "tighter parent",
			files: map[string]string{
				svc + "cpu.max":           "50000 100000\n",
				svc + "memory.max":        "524288000\n",
				"system.slice/cpu.max":    "10000 100000\n",
				"system.slice/memory.max": "max\n",
				"cpu.max":                 "1000 100000\n", // the mount root counts too (a container's own cgroup)
				"memory.max":              "1048576\n",
			},
			cpu:  1,
			mem:  1048576,
			mode: ModeCgroup,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			procSelf, cgroupRoot := cgroupFixture(t, tc.files)
			lim, err := detectCgroup(procSelf, cgroupRoot)
			if err != nil {
				t.Fatal(err)
			}
			if lim.cpuPercent != tc.cpu || lim.memory != tc.mem {
				t.Errorf("limits %+v, want cpu %v mem %v", lim, tc.cpu, tc.mem)
			}
			restoreMemoryLimit(t)
			if b := newBudget(Config{}, procSelf, cgroupRoot); b.Mode() != tc.mode {
				t.Errorf("mode %q, want %q", b.Mode(), tc.mode)
			}
		})
	}
}

func TestDetectCgroupFallbacks(t *testing.T) {
	// Hybrid host: cgroup v2 at /sys/fs/cgroup/unified.
	root := t.TempDir()
	procSelf := filepath.Join(root, "proc")
	cgroupRoot := filepath.Join(root, "cgroup")
	writeFile(t, procSelf, "cgroup", "1:cpu:/\n0::/a\n")
	writeFile(t, cgroupRoot, "unified/cgroup.controllers", "")
	writeFile(t, cgroupRoot, "unified/a/cpu.max", "20000 100000")
	lim, err := detectCgroup(procSelf, cgroupRoot)
	if err != nil || lim.cpuPercent != 20 {
		t.Errorf("hybrid: %+v, %v", lim, err)
	}

	// Container without a cgroup namespace: the path is the host's, the mount is our own.
	procSelf, cgroupRoot = cgroupFixture(t, map[string]string{"memory.max": "1000000\n"})
	writeFile(t, procSelf, "cgroup", "0::/kubepods/pod1/ctr\n")
	lim, err = detectCgroup(procSelf, cgroupRoot)
	if err != nil || lim.memory != 1000000 || lim.dir != cgroupRoot {
		t.Errorf("container: %+v, %v", lim, err)
	}

	// No cgroup v2 at all, and no /proc/self/cgroup: errors, self mode.
	empty := t.TempDir()
	if _, err := detectCgroup(empty, empty); err == nil {
		t.Error("missing /proc/self/cgroup: want error")
	}
	writeFile(t, empty, "cgroup", "0::/\n")
	if _, err := detectCgroup(empty, empty); err == nil {
		t.Error("no v2 mount: want error")
	}

	// Garbage limit files: an error, no limit, no panic.
	procSelf, cgroupRoot = cgroupFixture(t, map[string]string{
		"system.slice/agent.service/cpu.max":    "lots\n",
		"system.slice/agent.service/memory.max": "\x00\xff",
	})
	lim, err = detectCgroup(procSelf, cgroupRoot)
	if err == nil || lim.cpuPercent != 0 || lim.memory != 0 {
		t.Errorf("garbage: %+v, %v", lim, err)
	}
	restoreMemoryLimit(t)
	if b := newBudget(Config{}, procSelf, cgroupRoot); b.Mode() != ModeSelf {
		t.Errorf("garbage: mode %q", b.Mode())
	}
}

func TestCgroupModeWaitAndThrottled(t *testing.T) {
	procSelf, cgroupRoot := cgroupFixture(t, map[string]string{
		"system.slice/agent.service/cpu.max":    "5000 100000\n",
		"system.slice/agent.service/memory.max": "104857600\n",
		"system.slice/agent.service/cpu.stat":   "usage_usec 100\nnr_throttled 3\nthrottled_usec 1500\n",
	})
	restoreMemoryLimit(t)
	b := newBudget(Config{CPUPercent: 5, MemoryBytes: 1 << 30}, procSelf, cgroupRoot)
	if b.Mode() != ModeCgroup {
		t.Fatalf("mode %q", b.Mode())
	}
	// The soft memory limit stays under the cgroup's hard one.
	if got, want := debug.SetMemoryLimit(-1), int64(104857600/10*9); got != want {
		t.Errorf("memory limit %d, want %d", got, want)
	}
	// The kernel enforces 5%: Wait never pauses, however busy the loop.
	start := time.Now()
	for time.Since(start) < 150*time.Millisecond {
		burn()
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Throttled counts the kernel's throttling since New.
	writeFile(t, cgroupRoot, "system.slice/agent.service/cpu.stat",
		"usage_usec 200\nnr_throttled 5\nthrottled_usec 4500\n")
	if s := b.Sample(); s.Throttled != 3*time.Millisecond {
		t.Errorf("Throttled %v, want 3ms", s.Throttled)
	}

	// A cgroup limit looser than the budget does not loosen it: Wait still throttles.
	procSelf, cgroupRoot = cgroupFixture(t, map[string]string{
		"system.slice/agent.service/cpu.max": "200000 100000\n",
	})
	b = newBudget(Config{CPUPercent: 5}, procSelf, cgroupRoot)
	if b.Mode() != ModeCgroup || !b.selfThrottle {
		t.Errorf("loose cgroup limit: mode %q selfThrottle %v", b.Mode(), b.selfThrottle)
	}
}
