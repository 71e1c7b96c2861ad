package procevents

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// Rule keys tag the records of the rules this source installs. The kernel writes one record
// per syscall with the key of the first rule that matched, which may be an audit daemon's own
// rule for the same syscall: so exec and network events are taken whatever their key, and only
// file events, whose syscalls other rules audit for other reasons, need ours.
const (
	keyExec = "palisade-exec"
	keyNet  = "palisade-net"
	keyFile = "palisade-file"
)

// Limits on what one event may carry, so a hostile argv cannot blow up memory downstream.
const (
	maxArgs     = 1024
	maxArgBytes = 64 << 10
	maxPending  = 4096 // record groups waiting for their end-of-event record
)

// syscallNames maps (audit arch, syscall number) to the names this source handles.
var syscallNames = func() map[uint64]string {
	want := map[string]bool{"execve": true, "execveat": true, "connect": true, "accept": true, "accept4": true}
	for _, n := range []string{"open", "openat", "openat2", "creat", "truncate", "ftruncate", "rename", "renameat",
		"renameat2", "unlink", "unlinkat", "rmdir", "chmod", "fchmod", "fchmodat", "fchmodat2", "link", "linkat",
		"symlink", "symlinkat", "mkdir", "mkdirat", "write", "pwrite64", "writev", "sendfile", "copy_file_range"} {
		want[n] = true
	}
	m := map[uint64]string{}
	for arch, name := range auparse.AuditArchNames {
		for nr, sc := range auparse.AuditSyscalls[name] {
			if want[sc] {
				m[uint64(arch)<<32|uint64(uint32(nr))] = sc
			}
		}
	}
	return m
}()

// group is the records of one audit event (one serial) seen so far. Bodies are copies.
type group struct {
	serial   uint64
	time     time.Time
	syscall  []byte
	execve   [][]byte
	cwd      string
	sockaddr []byte
	paths    [][]byte
	acceptFD int // the accepted socket's descriptor, to find its peer
}

// assembler joins records into events by serial. Records of one event arrive together and
// end with an EOE record; a group whose EOE was lost is flushed by age.
type assembler struct {
	open      map[uint64]*group
	order     []uint64 // serials in arrival order, for flushing by age
	malformed uint64
	dropped   uint64 // groups flushed without their end record, or beyond maxPending
}

func newAssembler() *assembler { return &assembler{open: map[uint64]*group{}} }

// push adds one raw record and returns a finished group, if this record finished one.
func (a *assembler) push(typ uint16, data []byte) *group {
	switch typ {
	case typeSyscall, typeExecve, typeCwd, typeSockaddr, typePath, typeEOE:
	default:
		return nil
	}
	r, err := parseRecord(typ, data)
	if err != nil {
		a.malformed++
		return nil
	}
	g := a.open[r.serial]
	if typ == typeEOE {
		if g != nil {
			delete(a.open, r.serial)
		}
		return g
	}
	if g == nil {
		if typ != typeSyscall {
			return nil // a record of an event we do not follow (its SYSCALL was not ours)
		}
		if len(a.open) >= maxPending {
			a.evictOldest()
		}
		g = &group{serial: r.serial, time: r.time}
		a.open[r.serial] = g
		a.order = append(a.order, r.serial)
	}
	body := append([]byte(nil), r.body...)
	switch typ {
	case typeSyscall:
		g.syscall = body
	case typeExecve:
		g.execve = append(g.execve, body)
	case typeCwd:
		g.cwd = textField(body, "cwd")
	case typeSockaddr:
		g.sockaddr = body
	case typePath:
		g.paths = append(g.paths, body)
	}
	return nil
}

// expire drops groups older than age (their end record was lost) and compacts the order list.
func (a *assembler) expire(now time.Time, age time.Duration) {
	keep := a.order[:0]
	for _, s := range a.order {
		g := a.open[s]
		if g == nil {
			continue
		}
		if now.Sub(g.time) > age {
			delete(a.open, s)
			a.dropped++
			continue
		}
		keep = append(keep, s)
	}
	a.order = keep
}

func (a *assembler) evictOldest() {
	for len(a.order) > 0 {
		s := a.order[0]
		a.order = a.order[1:]
		if _, ok := a.open[s]; ok {
			delete(a.open, s)
			a.dropped++
			return
		}
	}
}

// event turns a finished group into an event, without the process tree (the tree adds it).
// It returns nil for groups that are not events of ours or that failed (a failed execve).
func (g *group) event() *behavior.Event {
	if g.syscall == nil {
		return nil
	}
	b := g.syscall
	arch, _ := hexField(b, "arch")
	nr := uintField(b, "syscall", 1<<32)
	sc := syscallNames[arch<<32|nr&0xffffffff]
	key := textField(b, "key")
	exit, _ := intField(b, "exit")
	success := textField(b, "success") == "yes"
	ev := &behavior.Event{Time: g.time, Proc: procFromSyscall(b, g.cwd)}
	switch {
	case sc == "execve" || sc == "execveat":
		if !success {
			return nil
		}
		ev.Kind = behavior.KindExec
		ev.Proc.Args = execArgs(g.execve)
		if p := execPath(g.paths); ev.Proc.Exe == "" {
			ev.Proc.Exe = p
		}
		ev.Proc.Start = g.time
	case sc == "connect":
		if !success && exit != -115 { // EINPROGRESS: a non-blocking connect under way
			return nil
		}
		remote, proto, ok := sockaddr(g.sockaddr)
		if !ok {
			return nil
		}
		ev.Kind = behavior.KindConnect
		ev.Net = &behavior.Conn{Proto: proto, Remote: remote}
	case sc == "accept" || sc == "accept4":
		if !success {
			return nil
		}
		ev.Kind = behavior.KindAccept
		ev.Net = &behavior.Conn{}
		g.acceptFD = int(exit)
	case strings.Contains(key, keyFile) && sc != "":
		if !success {
			return nil
		}
		op := fileOp(sc, g.paths)
		path := filePath(g.paths, g.cwd)
		if op == "" || path == "" {
			return nil
		}
		ev.Kind = behavior.KindFile
		ev.File = &behavior.FileOp{Path: path, Op: op}
		if op == "chmod" {
			if sc == "fchmodat" || sc == "fchmodat2" {
				m, _ := hexField(b, "a2")
				ev.File.Mode = uint32(m)
			} else {
				m, _ := hexField(b, "a1")
				ev.File.Mode = uint32(m)
			}
		}
	default:
		return nil
	}
	return ev
}

func procFromSyscall(b []byte, cwd string) behavior.Process {
	return behavior.Process{
		PID:  int32(uintField(b, "pid", 0)),
		PPID: int32(uintField(b, "ppid", 0)),
		UID:  uint32(uintField(b, "uid", behavior.UnsetUID)), EUID: uint32(uintField(b, "euid", behavior.UnsetUID)),
		GID: uint32(uintField(b, "gid", behavior.UnsetUID)), EGID: uint32(uintField(b, "egid", behavior.UnsetUID)),
		AUID: uint32(uintField(b, "auid", behavior.UnsetUID)),
		TTY:  tty(textField(b, "tty")),
		Comm: textField(b, "comm"),
		Exe:  textField(b, "exe"),
		Cwd:  cwd,
	}
}

// tty turns audit's "pts0" into "pts/0"; "(none)" is no terminal.
func tty(s string) string {
	if rest, ok := strings.CutPrefix(s, "pts"); ok && rest != "" {
		return "pts/" + rest
	}
	return s
}

// execArgs rebuilds argv from EXECVE records: "argc=3 a0="ls" a1=2D6C", with long arguments
// split as "a1_len=9000 a1[0]=… a1[1]=…" and very long argument lists spread over several
// records. Argument values are always hex when split.
func execArgs(recs [][]byte) []string {
	argc := -1
	args := map[int]*strings.Builder{}
	total := 0
	for _, body := range recs {
		eachField(body, func(name, value []byte) bool {
			n := string(name)
			if n == "argc" {
				if v, err := strconv.Atoi(string(value)); err == nil {
					argc = v
				}
				return true
			}
			if len(n) < 2 || n[0] != 'a' || n[1] < '0' || n[1] > '9' {
				return true
			}
			idx, rest := leadingInt(n[1:])
			if idx < 0 || idx >= maxArgs || strings.HasPrefix(rest, "_len") {
				return true
			}
			if rest != "" && !strings.HasPrefix(rest, "[") {
				return true
			}
			part := text(value)
			if rest != "" { // a chunk: always hex, never quoted
				dec, err := hex.DecodeString(string(value))
				if err != nil {
					return true
				}
				part = string(dec)
			}
			if total+len(part) > maxArgBytes {
				return true
			}
			total += len(part)
			sb := args[idx]
			if sb == nil {
				sb = &strings.Builder{}
				args[idx] = sb
			}
			sb.WriteString(part)
			return true
		})
	}
	n := argc
	if n < 0 || n > maxArgs {
		n = min(len(args), maxArgs)
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if sb := args[i]; sb != nil {
			out = append(out, sb.String())
		} else {
			out = append(out, "")
		}
	}
	return out
}

func leadingInt(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 {
		return -1, s
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:]
}

// execPath is the executed file's name from the first PATH record, when SYSCALL had no exe.
func execPath(paths [][]byte) string {
	for _, p := range paths {
		if uintField(p, "item", 99) == 0 {
			return textField(p, "name")
		}
	}
	return ""
}

// sockaddr decodes the hex struct sockaddr of a SOCKADDR record. Only internet addresses are
// events here; unix-domain and netlink connects are not.
func sockaddr(body []byte) (netip.AddrPort, string, bool) {
	v, ok := field(body, "saddr")
	if !ok {
		return netip.AddrPort{}, "", false
	}
	raw := make([]byte, hex.DecodedLen(len(v)))
	if _, err := hex.Decode(raw, v); err != nil || len(raw) < 2 {
		return netip.AddrPort{}, "", false
	}
	switch binary.LittleEndian.Uint16(raw) {
	case 2: // AF_INET
		if len(raw) < 8 {
			return netip.AddrPort{}, "", false
		}
		addr := netip.AddrFrom4([4]byte(raw[4:8]))
		return netip.AddrPortFrom(addr, binary.BigEndian.Uint16(raw[2:4])), "inet", true
	case 10: // AF_INET6
		if len(raw) < 24 {
			return netip.AddrPort{}, "", false
		}
		addr := netip.AddrFrom16([16]byte(raw[8:24])).Unmap()
		return netip.AddrPortFrom(addr, binary.BigEndian.Uint16(raw[2:4])), "inet", true
	}
	return netip.AddrPort{}, "", false
}

// fileOp names what a syscall did to a watched path.
func fileOp(sc string, paths [][]byte) string {
	for _, p := range paths {
		switch textField(p, "nametype") {
		case "CREATE":
			if sc != "rename" && sc != "renameat" && sc != "renameat2" {
				return "create"
			}
		case "DELETE":
			if !strings.HasPrefix(sc, "rename") {
				return "delete"
			}
		}
	}
	switch {
	case strings.HasPrefix(sc, "rename"):
		return "rename"
	case strings.HasPrefix(sc, "unlink"), sc == "rmdir":
		return "delete"
	case strings.Contains(sc, "chmod"):
		return "chmod"
	case strings.HasPrefix(sc, "link"), strings.HasPrefix(sc, "symlink"), strings.HasPrefix(sc, "mkdir"), sc == "creat":
		return "create"
	case sc != "":
		return "write"
	}
	return ""
}

// filePath is the watched path an event is about: the last PATH record that names a file (a
// rename's target, a created file), made absolute with the process's cwd.
func filePath(paths [][]byte, cwd string) string {
	var name string
	for _, p := range paths {
		nt := textField(p, "nametype")
		if nt == "PARENT" {
			continue
		}
		if n := textField(p, "name"); n != "" {
			name = n
		}
	}
	if name == "" {
		return ""
	}
	if !strings.HasPrefix(name, "/") && cwd != "" {
		name = strings.TrimSuffix(cwd, "/") + "/" + name
	}
	return name
}
