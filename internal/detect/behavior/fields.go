package behavior

import (
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
)

// fieldType is what a field holds; it decides which operators apply.
type fieldType uint8

const (
	typeString  fieldType = iota + 1 // one string
	typeStrings                      // several strings: a comparison holds if it holds for any
	typeNumber                       // an integer
	typeBool                         // true or false
	typeAddr                         // an IP address, compared as text or with cidr
)

func (t fieldType) String() string {
	switch t {
	case typeString:
		return "string"
	case typeStrings:
		return "string list"
	case typeNumber:
		return "number"
	case typeBool:
		return "boolean"
	case typeAddr:
		return "address"
	}
	return "unknown"
}

// anchorKind says which per-event index can find rules that compare a field: the engine looks
// rules up by the process name, the parent's name, the ancestors' names, literals in the command
// line, or event flags, instead of evaluating every rule.
type anchorKind uint8

const (
	anchorNone    anchorKind = iota
	anchorName               // proc.name / proc.exe: value is the lower-case base name
	anchorParent             // parent.name / parent.exe
	anchorAncs               // ancestors.name / ancestors.exe
	anchorCmdline            // proc.cmdline / proc.args: value is a lower-case literal substring
	anchorFlag               // a boolean field that is true: value is the field name
	anchorFile               // file.path / file.name: value is a lower-case literal substring of the path
	anchorPort               // net.remote_port: value is the port number
)

// field is one name a condition can compare, with the accessor that reads it from an event.
type field struct {
	name   string
	typ    fieldType
	doc    string
	anchor anchorKind
	exe    bool // the value is an executable path: literal anchors use its base name
	str    func(*evalCtx) string
	strs   func(*evalCtx) []string
	num    func(*evalCtx) (int64, bool)
	boo    func(*evalCtx) bool
	addr   func(*evalCtx) netip.Addr
}

// evalCtx is one event being evaluated, with the derived values computed at most once.
type evalCtx struct {
	ev      *Event
	setuid  *setuidList
	cmdline string
	hasCmd  bool
	lcmd    string
	hasLcmd bool
	lower   []byte // lower-case command line, for the literal prefilter
	pcmd    string
	hasPcmd bool
	ancName []string
	ancExe  []string
	ancCmd  []string
	paths   []string
	hasPath bool
	outs    []string
	hasOuts bool
	sub     *subEval // for "any ancestor", allocated on first use and kept
	level   int      // inside "any ancestor": the ancestor's generation (1 = the parent)
}

func (c *evalCtx) reset(ev *Event) {
	*c = evalCtx{ev: ev, setuid: c.setuid, lower: c.lower[:0], ancName: c.ancName[:0], ancExe: c.ancExe[:0], ancCmd: c.ancCmd[:0], paths: c.paths[:0], outs: c.outs[:0], sub: c.sub}
}

// cmdlineField is proc.cmdline, whose lower-case form the context caches.
var cmdlineField = fields["proc.cmdline"]

func (c *evalCtx) lowerCmdline() string {
	if !c.hasLcmd {
		c.lcmd, c.hasLcmd = lowerASCII(c.procCmdline()), true
	}
	return c.lcmd
}

func (c *evalCtx) procCmdline() string {
	if !c.hasCmd {
		c.cmdline, c.hasCmd = c.ev.Proc.Cmdline(), true
	}
	return c.cmdline
}

func (c *evalCtx) parent() *Process {
	if len(c.ev.Ancestors) == 0 {
		return &noProcess
	}
	return &c.ev.Ancestors[0]
}

var noProcess = Process{PID: -1, UID: UnsetUID, EUID: UnsetUID, AUID: UnsetUID}

func (c *evalCtx) parentCmdline() string {
	if !c.hasPcmd {
		if len(c.ev.Ancestors) > 0 {
			c.pcmd = c.ev.Ancestors[0].Cmdline()
		}
		c.hasPcmd = true
	}
	return c.pcmd
}

func (c *evalCtx) ancestorNames() []string {
	if len(c.ancName) == 0 && len(c.ev.Ancestors) > 0 {
		for i := range c.ev.Ancestors {
			c.ancName = append(c.ancName, c.ev.Ancestors[i].Name())
		}
	}
	return c.ancName
}

func (c *evalCtx) ancestorExes() []string {
	if len(c.ancExe) == 0 && len(c.ev.Ancestors) > 0 {
		for i := range c.ev.Ancestors {
			c.ancExe = append(c.ancExe, c.ev.Ancestors[i].Exe)
		}
	}
	return c.ancExe
}

func (c *evalCtx) ancestorCmdlines() []string {
	if len(c.ancCmd) == 0 && len(c.ev.Ancestors) > 0 {
		for i := range c.ev.Ancestors {
			c.ancCmd = append(c.ancCmd, c.ev.Ancestors[i].Cmdline())
		}
	}
	return c.ancCmd
}

// argPaths are the arguments after argv[0] that do not start with "-", as clean absolute paths
// (relative ones resolved against the working directory when it is known).
func (c *evalCtx) argPaths() []string {
	if !c.hasPath {
		c.hasPath = true
		p := &c.ev.Proc
		for i := 1; i < len(p.Args); i++ {
			a := p.Args[i]
			if a == "" || a[0] == '-' || a[0] == '+' || strings.Contains(a, "://") {
				continue
			}
			if r := absPath(p.Cwd, a); r != "" {
				c.paths = append(c.paths, r)
			}
		}
	}
	return c.paths
}

func absPath(cwd, p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	if cwd == "" || !strings.HasPrefix(cwd, "/") {
		return ""
	}
	return path.Join(cwd, p)
}

// outputFiles is where a downloader writes: curl -o/--output FILE or -O (the URL's base name),
// wget -O/--output-document FILE or, without it, the URL's base name; as absolute paths.
func (c *evalCtx) outputFiles() []string {
	if c.hasOuts {
		return c.outs
	}
	c.hasOuts = true
	p := &c.ev.Proc
	name := p.Name()
	curl, wget := name == "curl", name == "wget"
	if !curl && !wget {
		return nil
	}
	var explicit []string
	remoteName := false
	var urls []string
	for i := 1; i < len(p.Args); i++ {
		a := p.Args[i]
		next := func() string {
			if i+1 < len(p.Args) {
				i++
				return p.Args[i]
			}
			return ""
		}
		switch {
		case curl && (a == "-o" || a == "--output"), wget && (a == "-O" || a == "--output-document"):
			explicit = append(explicit, next())
		case curl && strings.HasPrefix(a, "--output="), wget && strings.HasPrefix(a, "--output-document="):
			explicit = append(explicit, a[strings.IndexByte(a, '=')+1:])
		case curl && (a == "-O" || a == "--remote-name"):
			remoteName = true
		case len(a) > 2 && a[0] == '-' && a[1] != '-':
			// a cluster of short options: "-fsSLo FILE", "-qO-", "-oFILE"
			out := byte('o')
			if wget {
				out = 'O'
			}
			if i := strings.IndexByte(a, out); i > 0 {
				if rest := a[i+1:]; rest != "" {
					explicit = append(explicit, rest)
				} else {
					explicit = append(explicit, next())
				}
			} else if curl && strings.IndexByte(a, 'O') > 0 {
				remoteName = true
			}
		case strings.Contains(a, "://"):
			urls = append(urls, a)
		}
	}
	if wget && len(explicit) == 0 {
		remoteName = true
	}
	for _, f := range explicit {
		if f != "" && f != "-" {
			if r := absPath(p.Cwd, f); r != "" {
				c.outs = append(c.outs, r)
			}
		}
	}
	if remoteName {
		for _, u := range urls {
			if i := strings.Index(u, "://"); i >= 0 {
				u = u[i+3:]
			}
			if i := strings.IndexAny(u, "?#"); i >= 0 {
				u = u[:i]
			}
			slash := strings.IndexByte(u, '/')
			if slash < 0 {
				continue
			}
			if b := path.Base(u[slash:]); b != "/" && b != "." {
				if r := absPath(p.Cwd, b); r != "" {
					c.outs = append(c.outs, r)
				}
			}
		}
	}
	return c.outs
}

func stdRemote(c *evalCtx) string {
	if ap, ok := c.ev.SocketPeer(); ok {
		return ap.String()
	}
	return ""
}

func procFields(prefix string, get func(*evalCtx) *Process, cmdline func(*evalCtx) string, anchor anchorKind) []*field {
	return []*field{
		{name: prefix + ".exe", typ: typeString, anchor: anchor, exe: true, doc: "executable path as the kernel resolved it",
			str: func(c *evalCtx) string { return get(c).Exe }},
		{name: prefix + ".name", typ: typeString, anchor: anchor, doc: "base name of the executable (the kernel task name when the executable is unknown)",
			str: func(c *evalCtx) string { return get(c).Name() }},
		{name: prefix + ".comm", typ: typeString, doc: "kernel task name (at most 15 bytes)",
			str: func(c *evalCtx) string { return get(c).Comm }},
		{name: prefix + ".cmdline", typ: typeString, doc: "arguments joined by single spaces (the executable when argv is unknown)",
			str: cmdline},
		{name: prefix + ".args", typ: typeStrings, doc: "each argument, argv[0] included",
			strs: func(c *evalCtx) []string { return get(c).Args }},
		{name: prefix + ".argc", typ: typeNumber, doc: "number of arguments",
			num: func(c *evalCtx) (int64, bool) { return int64(len(get(c).Args)), get(c).PID >= 0 }},
		{name: prefix + ".cwd", typ: typeString, doc: "working directory",
			str: func(c *evalCtx) string { return get(c).Cwd }},
		{name: prefix + ".pid", typ: typeNumber, doc: "process ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.PID), p.PID >= 0 }},
		{name: prefix + ".ppid", typ: typeNumber, doc: "parent process ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.PPID), p.PID >= 0 }},
		{name: prefix + ".uid", typ: typeNumber, doc: "real user ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.UID), p.PID >= 0 }},
		{name: prefix + ".euid", typ: typeNumber, doc: "effective user ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.EUID), p.PID >= 0 }},
		{name: prefix + ".gid", typ: typeNumber, doc: "real group ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.GID), p.PID >= 0 }},
		{name: prefix + ".egid", typ: typeNumber, doc: "effective group ID",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.EGID), p.PID >= 0 }},
		{name: prefix + ".auid", typ: typeNumber, doc: "audit login user ID; 4294967295 when no login started the process",
			num: func(c *evalCtx) (int64, bool) { p := get(c); return int64(p.AUID), p.PID >= 0 }},
		{name: prefix + ".tty", typ: typeString, doc: `controlling terminal, e.g. "pts/0"; empty when none`,
			str: func(c *evalCtx) string { return get(c).TTY }},
		{name: prefix + ".has_tty", typ: typeBool, doc: "the process has a controlling terminal",
			boo: func(c *evalCtx) bool { return get(c).TTY != "" }},
		{name: prefix + ".container", typ: typeString, doc: "container ID; empty on the host",
			str: func(c *evalCtx) string { return get(c).ContainerID }},
		{name: prefix + ".in_container", typ: typeBool, doc: "the process runs in a container",
			boo: func(c *evalCtx) bool { return get(c).ContainerID != "" }},
		{name: prefix + ".setuid_allowed", typ: typeBool, doc: "the executable is in the engine's list of legitimate setuid programs (Config.SetuidAllow)",
			boo: func(c *evalCtx) bool { return c.setuid.allows(get(c).Exe) }},
	}
}

// fields are all the names a condition can use, by name.
var fields = func() map[string]*field {
	all := procFields("proc", func(c *evalCtx) *Process { return &c.ev.Proc }, (*evalCtx).procCmdline, anchorName)
	all[3].anchor = anchorCmdline // proc.cmdline
	all[4].anchor = anchorCmdline // proc.args
	all = append(all, procFields("parent", (*evalCtx).parent, (*evalCtx).parentCmdline, anchorParent)...)
	all = append(all,
		&field{name: "kind", typ: typeString, doc: "exec, connect, accept, file or exit",
			str: func(c *evalCtx) string { return c.ev.Kind.String() }},
		&field{name: "host", typ: typeString, doc: "host name, when the source sets it",
			str: func(c *evalCtx) string { return c.ev.Host }},
		&field{name: "proc.gained_root", typ: typeBool, anchor: anchorFlag, doc: "effective uid is 0 while the parent's is known and is not 0",
			boo: func(c *evalCtx) bool {
				return c.ev.Proc.EUID == 0 && len(c.ev.Ancestors) > 0 && c.ev.Ancestors[0].EUID != 0 && c.ev.Ancestors[0].EUID != UnsetUID
			}},
		&field{name: "proc.arg_paths", typ: typeStrings, doc: `arguments after argv[0] not starting with "-" or "+", as clean absolute paths (relative ones resolved against proc.cwd)`,
			strs: (*evalCtx).argPaths},
		&field{name: "proc.output_file", typ: typeStrings, doc: "for curl and wget: the files the download is written to (-o/-O/--output..., or the URL's base name), as absolute paths",
			strs: (*evalCtx).outputFiles},
		&field{name: "ancestors.name", typ: typeStrings, anchor: anchorAncs, doc: "base names of all ancestors, parent first",
			strs: (*evalCtx).ancestorNames},
		&field{name: "ancestors.exe", typ: typeStrings, anchor: anchorAncs, exe: true, doc: "executables of all ancestors",
			strs: (*evalCtx).ancestorExes},
		&field{name: "ancestors.cmdline", typ: typeStrings, doc: "command lines of all ancestors",
			strs: (*evalCtx).ancestorCmdlines},
		&field{name: "ancestors.count", typ: typeNumber, doc: "number of known ancestors",
			num: func(c *evalCtx) (int64, bool) { return int64(len(c.ev.Ancestors)), true }},
		&field{name: "ancestor.level", typ: typeNumber, doc: `inside "any ancestor (...)": the ancestor's generation, 1 for the parent; 0 elsewhere`,
			num: func(c *evalCtx) (int64, bool) { return int64(c.level), true }},
		&field{name: "net.proto", typ: typeString, doc: "tcp, udp or unix",
			str: func(c *evalCtx) string {
				if c.ev.Net == nil {
					return ""
				}
				return c.ev.Net.Proto
			}},
		&field{name: "net.remote_ip", typ: typeAddr, doc: "peer address (connect: destination; accept: client)",
			addr: func(c *evalCtx) netip.Addr {
				if c.ev.Net == nil {
					return netip.Addr{}
				}
				return c.ev.Net.Remote.Addr().Unmap()
			}},
		&field{name: "net.local_ip", typ: typeAddr, doc: "local address",
			addr: func(c *evalCtx) netip.Addr {
				if c.ev.Net == nil {
					return netip.Addr{}
				}
				return c.ev.Net.Local.Addr().Unmap()
			}},
		&field{name: "net.remote_port", typ: typeNumber, anchor: anchorPort, doc: "peer port",
			num: func(c *evalCtx) (int64, bool) {
				if c.ev.Net == nil || !c.ev.Net.Remote.IsValid() {
					return 0, false
				}
				return int64(c.ev.Net.Remote.Port()), true
			}},
		&field{name: "net.local_port", typ: typeNumber, doc: "local port",
			num: func(c *evalCtx) (int64, bool) {
				if c.ev.Net == nil || !c.ev.Net.Local.IsValid() {
					return 0, false
				}
				return int64(c.ev.Net.Local.Port()), true
			}},
		&field{name: "net.remote_is_private", typ: typeBool, doc: "peer is in a private range (RFC 1918, RFC 4193, link-local, CGNAT 100.64.0.0/10)",
			boo: func(c *evalCtx) bool { return c.ev.Net != nil && isPrivate(c.ev.Net.Remote.Addr()) }},
		&field{name: "net.remote_is_loopback", typ: typeBool, doc: "peer is a loopback address",
			boo: func(c *evalCtx) bool { return c.ev.Net != nil && c.ev.Net.Remote.Addr().Unmap().IsLoopback() }},
		&field{name: "net.remote_is_public", typ: typeBool, doc: "peer is a valid address that is neither private, loopback, unspecified nor multicast",
			boo: func(c *evalCtx) bool { return c.ev.Net != nil && isPublic(c.ev.Net.Remote.Addr()) }},
		&field{name: "file.path", typ: typeString, anchor: anchorFile, doc: "changed path",
			str: func(c *evalCtx) string {
				if c.ev.File == nil {
					return ""
				}
				return c.ev.File.Path
			}},
		&field{name: "file.name", typ: typeString, anchor: anchorFile, doc: "base name of file.path",
			str: func(c *evalCtx) string {
				if c.ev.File == nil || c.ev.File.Path == "" {
					return ""
				}
				return path.Base(c.ev.File.Path)
			}},
		&field{name: "file.op", typ: typeString, doc: "create, write, rename, chmod or delete",
			str: func(c *evalCtx) string {
				if c.ev.File == nil {
					return ""
				}
				return c.ev.File.Op
			}},
		&field{name: "file.mode", typ: typeNumber, doc: "new mode of a chmod (write octal values as 0755)",
			num: func(c *evalCtx) (int64, bool) {
				if c.ev.File == nil || c.ev.File.Op != "chmod" {
					return 0, false
				}
				return int64(c.ev.File.Mode), true
			}},
		&field{name: "file.executable", typ: typeBool, doc: "a chmod that leaves any execute bit set",
			boo: func(c *evalCtx) bool { return c.ev.File != nil && c.ev.File.Op == "chmod" && c.ev.File.Mode&0o111 != 0 }},
		&field{name: "std.in", typ: typeString, doc: "type of fd 0: tty, pipe, file, socket, unix, null or unknown",
			str: func(c *evalCtx) string { return c.ev.Std[0].Type.String() }},
		&field{name: "std.out", typ: typeString, doc: "type of fd 1",
			str: func(c *evalCtx) string { return c.ev.Std[1].Type.String() }},
		&field{name: "std.err", typ: typeString, doc: "type of fd 2",
			str: func(c *evalCtx) string { return c.ev.Std[2].Type.String() }},
		&field{name: "std.socket", typ: typeBool, doc: "any of fds 0-2 is a network socket, wherever it goes",
			boo: func(c *evalCtx) bool {
				s := &c.ev.Std
				return s[0].Type == FDSocket || s[1].Type == FDSocket || s[2].Type == FDSocket
			}},
		&field{name: "std.socket_remote", typ: typeBool, anchor: anchorFlag, doc: "any of fds 0-2 is a network socket connected to a known peer that is not loopback or unspecified",
			boo: func(c *evalCtx) bool { _, ok := c.ev.SocketPeer(); return ok }},
		&field{name: "std.remote", typ: typeString, doc: `peer "ip:port" of the first fd of 0-2 that makes std.socket_remote true`,
			str: stdRemote},
		&field{name: "std.remote_ip", typ: typeAddr, doc: "peer address of std.remote",
			addr: func(c *evalCtx) netip.Addr { ap, _ := c.ev.SocketPeer(); return ap.Addr().Unmap() }},
	)
	m := make(map[string]*field, len(all))
	for _, f := range all {
		m[f.name] = f
	}
	return m
}()

// FieldNames lists every field a condition can use, sorted.
func FieldNames() []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var privatePrefixes = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10"),
}

func isPrivate(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range privatePrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && !isPrivate(a)
}

// setuidList is the engine's list of legitimate setuid programs: base names or absolute paths.
type setuidList struct {
	names map[string]bool
	paths map[string]bool
}

// DefaultSetuidAllow are the programs that legitimately run as root for an unprivileged caller
// on common distributions; Config.SetuidAllow replaces the list.
var DefaultSetuidAllow = []string{
	"sudo", "sudoedit", "su", "pkexec", "passwd", "chsh", "chfn", "newgrp", "sg", "gpasswd", "expiry", "chage",
	"mount", "umount", "fusermount", "fusermount3", "ping", "ping6", "traceroute6.iputils", "Xorg.wrap",
	"dbus-daemon-launch-helper", "polkit-agent-helper-1", "unix_chkpwd", "ssh-keysign", "at", "crontab",
	"doas", "newuidmap", "newgidmap", "pam_timestamp_check", "userhelper", "staprun", "suexec",
	"chrome-sandbox", "snap-confine", "lxc-user-nic", "mount.nfs", "mount.cifs", "ntfs-3g", "kismet_cap_linux_wifi",
}

func newSetuidList(entries []string) *setuidList {
	l := &setuidList{names: map[string]bool{}, paths: map[string]bool{}}
	for _, e := range entries {
		if strings.HasPrefix(e, "/") {
			l.paths[path.Clean(e)] = true
		} else {
			l.names[e] = true
		}
	}
	return l
}

func (l *setuidList) allows(exe string) bool {
	if l == nil || exe == "" {
		return false
	}
	if l.paths[exe] {
		return true
	}
	return l.names[exe[strings.LastIndexByte(exe, '/')+1:]]
}

func formatUint(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
