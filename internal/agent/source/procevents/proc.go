package procevents

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// procfs reads what audit records do not carry (ancestors started before the agent, the state
// of standard descriptors, the container) from a /proc tree. Reads of a process that has
// already exited fail quietly: its event still carries everything audit gave.
type procfs struct{ root string }

func (p procfs) path(pid int32, rest string) string {
	return p.root + "/" + strconv.Itoa(int(pid)) + "/" + rest
}

// alive says whether pid still runs.
func (p procfs) alive(pid int32) bool {
	_, err := os.Stat(p.root + "/" + strconv.Itoa(int(pid)))
	return err == nil
}

// process reads a running process: the fallback for processes no exec event was seen for.
func (p procfs) process(pid int32) (behavior.Process, bool) {
	status, err := os.ReadFile(p.path(pid, "status"))
	if err != nil {
		return behavior.Process{}, false
	}
	pr := behavior.Process{PID: pid, AUID: behavior.UnsetUID}
	for line := range bytes.Lines(status) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		f := strings.Fields(string(v))
		switch string(k) {
		case "Name":
			if len(f) > 0 {
				pr.Comm = f[0]
			}
		case "PPid":
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				pr.PPID = int32(n)
			}
		case "Uid":
			if len(f) >= 2 {
				pr.UID, pr.EUID = atou(f[0]), atou(f[1])
			}
		case "Gid":
			if len(f) >= 2 {
				pr.GID, pr.EGID = atou(f[0]), atou(f[1])
			}
		}
	}
	pr.Exe, _ = os.Readlink(p.path(pid, "exe"))
	pr.Cwd, _ = os.Readlink(p.path(pid, "cwd"))
	if b, err := os.ReadFile(p.path(pid, "cmdline")); err == nil && len(b) > 0 {
		pr.Args = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	if b, err := os.ReadFile(p.path(pid, "loginuid")); err == nil {
		pr.AUID = atou(strings.TrimSpace(string(b)))
	}
	pr.ContainerID = p.containerID(pid)
	return pr, true
}

func atou(s string) uint32 {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return behavior.UnsetUID
	}
	return uint32(n)
}

// containerPattern finds a container ID in a cgroup path: docker-<id>.scope, /docker/<id>,
// cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, /kubepods/…/<id>.
var containerPattern = regexp.MustCompile(`(?:^|[/-])([0-9a-f]{64})(?:\.scope)?(?:/|$)`)

func (p procfs) containerID(pid int32) string {
	b, err := os.ReadFile(p.path(pid, "cgroup"))
	if err != nil {
		return ""
	}
	return containerIDFromCgroup(b)
}

func containerIDFromCgroup(b []byte) string {
	for line := range bytes.Lines(b) {
		// "0::/system.slice/docker-<id>.scope" (v2) or "12:pids:/docker/<id>" (v1)
		_, path, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if !ok {
			continue
		}
		_, path, _ = bytes.Cut(path, []byte(":"))
		if m := containerPattern.FindSubmatch(path); m != nil {
			return string(m[1])
		}
	}
	return ""
}

// std reads what descriptors 0, 1 and 2 of a process refer to, and whether the process still
// runs. A network socket is resolved to its peer through the process's own network namespace
// (/proc/PID/net/…).
func (p procfs) std(pid int32) ([3]behavior.StdFD, bool) {
	var out [3]behavior.StdFD
	var sockets map[uint64]int // inode -> fd index, resolved in one pass over the tables
	for i := range out {
		link, err := os.Readlink(p.path(pid, "fd/"+strconv.Itoa(i)))
		if err != nil {
			if i == 0 && errors.Is(err, fs.ErrNotExist) && !p.alive(pid) {
				return out, false
			}
			continue
		}
		switch {
		case link == "/dev/null":
			out[i].Type = behavior.FDNull
		case strings.HasPrefix(link, "pipe:"):
			out[i].Type = behavior.FDPipe
		case strings.HasPrefix(link, "/dev/pts/"), strings.HasPrefix(link, "/dev/tty"), link == "/dev/console":
			out[i].Type = behavior.FDTTY
		case strings.HasPrefix(link, "socket:["):
			ino, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
			if err != nil {
				continue
			}
			if sockets == nil {
				sockets = map[uint64]int{}
			}
			sockets[ino] |= 1 << i
		case strings.HasPrefix(link, "/"):
			out[i].Type = behavior.FDFile
		}
	}
	if sockets == nil {
		return out, true
	}
	peers := p.peers(pid, sockets)
	for ino, mask := range sockets {
		peer, isInet := peers[ino]
		for i := range out {
			if mask&(1<<i) == 0 {
				continue
			}
			if isInet {
				out[i] = behavior.StdFD{Type: behavior.FDSocket, Remote: peer}
			} else {
				out[i].Type = behavior.FDUnix
			}
		}
	}
	return out, true
}

// peers looks the wanted socket inodes up in the process's TCP and UDP tables.
func (p procfs) peers(pid int32, want map[uint64]int) map[uint64]netip.AddrPort {
	found := map[uint64]netip.AddrPort{}
	for _, table := range []string{"net/tcp", "net/tcp6", "net/udp", "net/udp6"} {
		if len(found) == len(want) {
			break
		}
		f, err := os.Open(p.path(pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			ino, remote, ok := parseSocketLine(sc.Text())
			if !ok {
				continue
			}
			if _, w := want[ino]; w {
				found[ino] = remote
			}
		}
		f.Close()
	}
	return found
}

// peer finds one socket's inode and peer given a descriptor of the process.
func (p procfs) peer(pid int32, fd int) (netip.AddrPort, bool) {
	link, err := os.Readlink(p.path(pid, "fd/"+strconv.Itoa(fd)))
	if err != nil || !strings.HasPrefix(link, "socket:[") {
		return netip.AddrPort{}, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
	if err != nil {
		return netip.AddrPort{}, false
	}
	peer, ok := p.peers(pid, map[uint64]int{ino: 0})[ino]
	return peer, ok
}

// parseSocketLine reads "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..." from
// /proc/net/tcp{,6} and udp{,6}.
func parseSocketLine(line string) (uint64, netip.AddrPort, bool) {
	f := strings.Fields(line)
	if len(f) < 10 || f[0] == "sl" {
		return 0, netip.AddrPort{}, false
	}
	ino, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return 0, netip.AddrPort{}, false
	}
	remote, ok := parseHexAddr(f[2])
	return ino, remote, ok
}

// parseHexAddr reads "0100007F:1F90" (IPv4) or 32 hex digits ":PORT" (IPv6), each 32-bit word
// in host (little-endian) order.
func parseHexAddr(s string) (netip.AddrPort, bool) {
	a, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	var addr netip.Addr
	if len(raw) == 4 {
		addr = netip.AddrFrom4([4]byte(raw))
	} else {
		addr = netip.AddrFrom16([16]byte(raw)).Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), true
}
