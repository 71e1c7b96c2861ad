package budget

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupLimits are the cgroup v2 limits that apply to this process. Zero means unlimited.
type cgroupLimits struct {
	dir        string  // the process's cgroup directory; "" when cgroup v2 is not found
	cpuDir     string  // the directory whose cpu.max sets cpuPercent (for cpu.stat)
	cpuPercent float64 // CPU quota as a percentage of one core
	memory     uint64  // memory.max in bytes
}

// detectCgroup finds this process's cgroup v2 directory from procSelf/cgroup and reads the CPU
// and memory limits that apply to it: the tightest cpu.max and memory.max of the cgroup and
// its ancestors below the mount point, because a parent's limit (a systemd slice, a pod)
// constrains its children too. cgroupRoot is where cgroup v2 is mounted ("/sys/fs/cgroup"; on
// hybrid hosts its "unified" subdirectory is tried as well).
//
// Missing limit files mean no limit; an unparseable one is an error, with whatever was read so
// far returned alongside.
func detectCgroup(procSelf, cgroupRoot string) (cgroupLimits, error) {
	var lim cgroupLimits
	data, err := os.ReadFile(filepath.Join(procSelf, "cgroup"))
	if err != nil {
		return lim, fmt.Errorf("cgroup: %w", err)
	}
	rel, ok := parseProcCgroup(data)
	if !ok {
		return lim, errors.New("cgroup: no cgroup v2 entry in /proc/self/cgroup")
	}
	mount, ok := findV2Mount(cgroupRoot)
	if !ok {
		return lim, fmt.Errorf("cgroup: no cgroup v2 hierarchy mounted at %s", cgroupRoot)
	}
	dir := filepath.Join(mount, filepath.FromSlash(rel))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		// Inside a container without its own cgroup namespace the path names a cgroup of the
		// host, and the container sees its own cgroup at the mount point.
		dir = mount
	}
	lim.dir = dir

	var errs []error
	for d := dir; ; d = filepath.Dir(d) {
		if pct, limited, err := readCPUMax(filepath.Join(d, "cpu.max")); err != nil {
			errs = append(errs, err)
		} else if limited && (lim.cpuPercent == 0 || pct < lim.cpuPercent) {
			lim.cpuPercent, lim.cpuDir = pct, d
		}
		if mem, limited, err := readMemoryMax(filepath.Join(d, "memory.max")); err != nil {
			errs = append(errs, err)
		} else if limited && (lim.memory == 0 || mem < lim.memory) {
			lim.memory = mem
		}
		if d == mount || len(d) <= len(mount) || filepath.Dir(d) == d {
			break
		}
	}
	return lim, errors.Join(errs...)
}

// parseProcCgroup returns the path of the cgroup v2 entry ("0::/path") in /proc/self/cgroup.
func parseProcCgroup(data []byte) (string, bool) {
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "0::")
		if !ok {
			continue
		}
		if !strings.HasPrefix(rest, "/") {
			return "", false
		}
		// Clean with forward slashes: "/../x" must not climb out of the mount.
		return path.Clean(rest), true
	}
	return "", false
}

// findV2Mount returns root if it is a cgroup v2 mount, else root/unified on hybrid hosts.
func findV2Mount(root string) (string, bool) {
	for _, m := range []string{root, filepath.Join(root, "unified")} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.controllers")); err == nil {
			return m, true
		}
	}
	return "", false
}

func readCPUMax(p string) (percent float64, limited bool, err error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	percent, limited, err = parseCPUMax(string(data))
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %s: %w", p, err)
	}
	return percent, limited, nil
}

// parseCPUMax parses cpu.max, "$QUOTA $PERIOD" in microseconds or "max $PERIOD", into a
// percentage of one core. The period may be omitted (it defaults to 100000).
func parseCPUMax(s string) (percent float64, limited bool, err error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("bad cpu.max %q", truncate(s))
	}
	period := uint64(100000)
	if len(f) == 2 {
		period, err = strconv.ParseUint(f[1], 10, 64)
		if err != nil || period == 0 {
			return 0, false, fmt.Errorf("bad cpu.max period %q", truncate(f[1]))
		}
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || quota == 0 {
		return 0, false, fmt.Errorf("bad cpu.max quota %q", truncate(f[0]))
	}
	return float64(quota) / float64(period) * 100, true, nil
}

func readMemoryMax(p string) (bytes uint64, limited bool, err error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	bytes, limited, err = parseMemoryMax(string(data))
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %s: %w", p, err)
	}
	return bytes, limited, nil
}

// parseMemoryMax parses memory.max: a byte count or "max".
func parseMemoryMax(s string) (bytes uint64, limited bool, err error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("bad memory.max %q", truncate(s))
	}
	if v == 0 || v == math.MaxUint64 {
		// 0 would forbid any memory at all and cannot be the limit of a running process; treat
		// it, like the maximum, as no usable limit.
		return 0, false, nil
	}
	return v, true, nil
}

// readThrottled returns throttled_usec from cpu.stat in dir.
func readThrottled(dir string) (time.Duration, error) {
	f, err := os.Open(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("throttled_usec "))
		if !ok {
			continue
		}
		us, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
		if err != nil || us < 0 {
			return 0, fmt.Errorf("cgroup: bad throttled_usec %q", truncate(string(rest)))
		}
		return time.Duration(min(us, math.MaxInt64/int64(time.Microsecond))) * time.Microsecond, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cgroup: reading cpu.stat: %w", err)
	}
	return 0, errors.New("cgroup: no throttled_usec in cpu.stat")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
