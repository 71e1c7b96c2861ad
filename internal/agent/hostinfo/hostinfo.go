// Package hostinfo collects the facts an agent reports about the server it runs on: hostname,
// operating system (from os-release), kernel release, architecture, IP addresses, boot time and
// machine ID, gathered into a finding.HostFacts.
//
// It only reads what the host already exposes (files under /etc and /proc, uname, the interface
// list); it runs no commands, needs no privileges, and does not cache or send anything. It is not
// an inventory of packages or services, and it does not decide what the facts mean — the console
// does. Collection is best effort: a fact that cannot be read is left empty.
package hostinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// Collect gathers the facts about this host. agentVersion is copied into the result as is.
//
// Facts that cannot be read (a missing /etc/machine-id in a container, say) stay empty and are
// not an error. Collect returns an error, joining the individual failures, only when nothing at
// all could be read; the facts returned then hold only agentVersion.
func Collect(agentVersion string) (finding.HostFacts, error) {
	return newCollector("/").collect(agentVersion)
}

// collector reads host facts with its file paths relative to root, and its non-file sources
// (hostname, uname, interface addresses) replaceable, so that tests can run it on fixtures.
type collector struct {
	root     string
	hostname func() (string, error)
	uname    func() (release, machine string, err error)
	addrs    func() ([]net.Addr, error)
	goarch   string
}

func newCollector(root string) *collector {
	return &collector{
		root:     root,
		hostname: os.Hostname,
		uname:    uname,
		addrs:    net.InterfaceAddrs,
		goarch:   runtime.GOARCH,
	}
}

func (c *collector) path(p string) string { return filepath.Join(c.root, p) }

func (c *collector) collect(agentVersion string) (finding.HostFacts, error) {
	facts := finding.HostFacts{AgentVersion: agentVersion}
	var errs []error
	read := false
	note := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
			return false
		}
		read = true
		return true
	}

	if h, err := c.hostname(); note(wrap("hostname", err)) {
		facts.Hostname = h
	}
	if osr, err := c.osRelease(); note(err) {
		facts.OSID = osr["ID"]
		facts.OSVersion = osr["VERSION_ID"]
		facts.OSPretty = osr["PRETTY_NAME"]
		if facts.OSID == "" { // os-release(5): ID defaults to "linux"
			facts.OSID = "linux"
		}
		if facts.OSPretty == "" { // and PRETTY_NAME to "Linux"
			facts.OSPretty = "Linux"
		}
	}
	release, machine, err := c.uname()
	if note(wrap("uname", err)) {
		facts.Kernel = release
	}
	facts.Arch = unameArch(c.goarch, machine)
	if ips, err := c.ipAddresses(); note(err) {
		facts.IPAddresses = ips
	}
	if bt, err := c.bootTime(); note(err) {
		facts.BootTime = bt
	}
	if id, err := c.machineID(); note(err) {
		facts.MachineID = id
	}

	if !read {
		return facts, fmt.Errorf("hostinfo: no host facts could be read: %w", errors.Join(errs...))
	}
	return facts, nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// osRelease reads /etc/os-release, falling back to /usr/lib/os-release as os-release(5) says.
func (c *collector) osRelease() (map[string]string, error) {
	var errs []error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		data, err := os.ReadFile(c.path(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("os-release: %w", err))
			continue
		}
		return parseOSRelease(data), nil
	}
	return nil, errors.Join(errs...)
}

// bootTime reads the btime line of /proc/stat.
func (c *collector) bootTime() (time.Time, error) {
	f, err := os.Open(c.path("proc/stat"))
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	defer f.Close()
	return parseBtime(f)
}

// parseBtime finds the "btime <seconds since the epoch>" line in /proc/stat contents.
func parseBtime(r io.Reader) (time.Time, error) {
	sc := bufio.NewScanner(r)
	// The intr line, which comes before btime, can run to tens of kilobytes on big machines.
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("btime"))
		if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
		if err != nil || v <= 0 {
			return time.Time{}, fmt.Errorf("boot time: bad btime line %q", truncate(line, 64))
		}
		return time.Unix(v, 0).UTC(), nil
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, fmt.Errorf("boot time: reading /proc/stat: %w", err)
	}
	return time.Time{}, errors.New("boot time: no btime line in /proc/stat")
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// machineID reads /etc/machine-id, falling back to the D-Bus copy. The ID must be the 32 lower
// case hex digits machine-id(5) specifies; anything else (such as "uninitialized" early in boot)
// counts as absent.
func (c *collector) machineID() (string, error) {
	var errs []error
	for _, p := range []string{"etc/machine-id", "var/lib/dbus/machine-id"} {
		data, err := os.ReadFile(c.path(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("machine id: %w", err))
			continue
		}
		id := strings.TrimSpace(string(data))
		if !validMachineID(id) {
			errs = append(errs, fmt.Errorf("machine id: %s does not hold a valid ID", c.path(p)))
			continue
		}
		return id, nil
	}
	return "", errors.Join(errs...)
}

func validMachineID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// ipAddresses lists the host's unicast addresses, IPv4 and IPv6, without loopback and
// link-local ones (fe80::/10, 169.254.0.0/16), deduplicated and sorted (IPv4 first, then
// numerically).
func (c *collector) ipAddresses() ([]string, error) {
	addrs, err := c.addrs()
	if err != nil {
		return nil, fmt.Errorf("interface addresses: %w", err)
	}
	return filterAddrs(addrs), nil
}

func filterAddrs(addrs []net.Addr) []string {
	var ips []netip.Addr
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		// IsGlobalUnicast excludes loopback, link-local, multicast, unspecified and broadcast;
		// private ranges (10/8, fd00::/8, ...) are kept: they are how the host is reached.
		if !ip.IsGlobalUnicast() {
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		ips = append(ips, addr.Unmap())
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	if len(ips) == 0 {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func uname() (release, machine string, err error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", "", err
	}
	return unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), nil
}

// goarchToMachine maps Go architecture names to the names uname -m prints, which is what
// package managers and vulnerability feeds use.
var goarchToMachine = map[string]string{
	"amd64":    "x86_64",
	"386":      "i686",
	"arm64":    "aarch64",
	"ppc64":    "ppc64",
	"ppc64le":  "ppc64le",
	"s390x":    "s390x",
	"riscv64":  "riscv64",
	"loong64":  "loongarch64",
	"mips":     "mips",
	"mipsle":   "mips",
	"mips64":   "mips64",
	"mips64le": "mips64",
}

// unameArch is the architecture of the agent binary in uname -m terms. For 32-bit ARM, whose
// GOARCH does not say which ARM, and for unknown GOARCH values the kernel's machine name is used
// when known.
func unameArch(goarch, machine string) string {
	if m, ok := goarchToMachine[goarch]; ok {
		return m
	}
	if goarch == "arm" {
		if strings.HasPrefix(machine, "arm") {
			return machine
		}
		return "armv7l"
	}
	if machine != "" {
		return machine
	}
	return goarch
}
