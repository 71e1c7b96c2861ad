package behavior

import (
	"net/netip"
	"time"
)

// Kind says what a process did.
type Kind uint8

const (
	KindExec    Kind = iota + 1 // a process image was executed (execve, execveat)
	KindConnect                 // an outbound connection was attempted (connect)
	KindAccept                  // an inbound connection was accepted (accept, accept4)
	KindFile                    // a watched file was created, written, renamed or changed mode
	KindExit                    // a process ended
)

var kindNames = [...]string{KindExec: "exec", KindConnect: "connect", KindAccept: "accept", KindFile: "file", KindExit: "exit"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String; it returns 0 for an unknown name.
func ParseKind(s string) Kind {
	for k, n := range kindNames {
		if n == s && n != "" {
			return Kind(k)
		}
	}
	return 0
}

// Event is one thing a process did, as the agent's kernel event source saw it, with the process
// and its ancestry resolved. Sources fill what they can; an empty field is unknown, not empty.
type Event struct {
	Kind Kind
	Time time.Time

	Proc      Process
	Ancestors []Process // parent first, then its parent, up to init or the first unknown

	Net  *Conn    // KindConnect, KindAccept
	File *FileOp  // KindFile
	Std  [3]StdFD // state of fds 0, 1, 2 when the event was seen (exec events)
	Host string   // host name, for host-wide sequences in multi-host replays
}

// Process is a process as an event saw it.
type Process struct {
	PID, PPID   int32
	Exe         string   // executable path, resolved by the kernel
	Args        []string // argv as executed; Args[0] may differ from Exe
	Cwd         string
	UID, EUID   uint32
	GID, EGID   uint32
	AUID        uint32 // login uid: the user who logged in, kept across sudo/su; 1<<32-1 when unset
	TTY         string // "pts/0"; empty when none
	Start       time.Time
	ContainerID string // from the cgroup path; empty on the host
	Comm        string // kernel task name (16 bytes)
}

// UnsetUID is the audit login uid of a process no login started (daemons, boot).
const UnsetUID = 1<<32 - 1

// Conn is a network connection a process made or accepted.
type Conn struct {
	Proto  string // "tcp", "udp", "unix"
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// FileOp is a change to a watched path.
type FileOp struct {
	Path string
	Op   string // "create", "write", "rename", "chmod", "delete"
	Mode uint32 // new mode, for chmod
}

// FDType is what a standard descriptor refers to.
type FDType uint8

const (
	FDUnknown FDType = iota
	FDTTY
	FDPipe
	FDFile
	FDSocket // a network socket; Remote says where it goes when connected
	FDUnix   // a unix-domain socket
	FDNull   // /dev/null
)

var fdTypeNames = [...]string{FDUnknown: "unknown", FDTTY: "tty", FDPipe: "pipe", FDFile: "file", FDSocket: "socket", FDUnix: "unix", FDNull: "null"}

func (t FDType) String() string {
	if int(t) < len(fdTypeNames) {
		return fdTypeNames[t]
	}
	return "unknown"
}

// StdFD is the state of one of a process's standard descriptors.
type StdFD struct {
	Type   FDType
	Remote netip.AddrPort // for FDSocket: the peer, when connected
}

// Name is the base name of the process's executable ("bash" for /usr/bin/bash), or its kernel
// task name when the executable is unknown. A multi-call executable (busybox, the xtables binary
// behind iptables) acts as the program its argv[0] names, so for those Name is argv[0]'s base
// name: /usr/sbin/xtables-nft-multi run as "iptables -F" is iptables. Other names cannot be
// chosen that way: a symlink named "apt" to an attacker's binary still has that binary's name.
func (p *Process) Name() string {
	if p.Exe == "" {
		return p.Comm
	}
	name := lastElem(p.Exe)
	if multiCall[name] && len(p.Args) > 0 {
		if a0 := lastElem(p.Args[0]); a0 != "" {
			return a0
		}
	}
	return name
}

// multiCall are executables that dispatch on the name they were run under.
var multiCall = map[string]bool{
	"busybox": true, "toybox": true,
	"xtables-nft-multi": true, "xtables-legacy-multi": true, "xtables-multi": true,
}

// lastElem is what follows the last slash (all of path when there is none).
func lastElem(path string) string {
	i := len(path) - 1
	for i >= 0 && path[i] != '/' {
		i--
	}
	return path[i+1:]
}

// Cmdline is the argument vector joined by single spaces, or the executable when argv is
// unknown.
func (p *Process) Cmdline() string {
	switch len(p.Args) {
	case 0:
		return p.Exe
	case 1:
		return p.Args[0]
	}
	n := len(p.Args) - 1
	for _, a := range p.Args {
		n += len(a)
	}
	b := make([]byte, 0, n)
	for i, a := range p.Args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	return string(b)
}

// Parent is the first ancestor, or nil when the ancestry is unknown.
func (e *Event) Parent() *Process {
	if len(e.Ancestors) == 0 {
		return nil
	}
	return &e.Ancestors[0]
}

// SocketPeer returns the peer of the first standard descriptor (0, 1, then 2) that is a network
// socket connected to an address other than loopback or unspecified: the mark of a shell whose
// input or output goes to another host. An IPv4-mapped peer is returned as IPv4.
func (e *Event) SocketPeer() (netip.AddrPort, bool) {
	for _, fd := range e.Std {
		if fd.Type == FDSocket && fd.Remote.IsValid() {
			a := fd.Remote.Addr().Unmap()
			if !a.IsLoopback() && !a.IsUnspecified() {
				return netip.AddrPortFrom(a, fd.Remote.Port()), true
			}
		}
	}
	return netip.AddrPort{}, false
}
