package procevents

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

func TestAssembleExecWithSplitArguments(t *testing.T) {
	a := newAssembler()
	recs := []struct {
		typ  uint16
		text string
	}{
		{typeSyscall, `audit(1796422632.296:4): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1394 pid=1401 auid=1000 uid=1000 gid=1000 euid=0 suid=0 fsuid=0 egid=1000 sgid=1000 fsgid=1000 tty=pts3 ses=2 comm="sh" exe="/usr/bin/dash" key="palisade-exec"`},
		{typeExecve, `audit(1796422632.296:4): argc=4 a0="sh" a1="-c" a2_len=6 a2[0]=6563 a2[1]=686F2068 a3=74776F20776F726473`},
		{typeCwd, `audit(1796422632.296:4): cwd=2F746D702F776974682073706163652F`},
		{typePath, `audit(1796422632.296:4): item=0 name="/usr/bin/sh" inode=1 nametype=NORMAL`},
		{typeProctitle, `audit(1796422632.296:4): proctitle=7368`},
	}
	for _, r := range recs {
		if g := a.push(r.typ, []byte(r.text)); g != nil {
			t.Fatalf("finished early at type %d", r.typ)
		}
	}
	g := a.push(typeEOE, []byte(`audit(1796422632.296:4): `))
	if g == nil {
		t.Fatal("EOE did not finish the event")
	}
	ev := g.event()
	if ev == nil || ev.Kind != behavior.KindExec {
		t.Fatalf("event %+v", ev)
	}
	if want := []string{"sh", "-c", "echo h", "two words"}; !slices.Equal(ev.Proc.Args, want) {
		t.Errorf("args %q, want %q", ev.Proc.Args, want)
	}
	p := ev.Proc
	if p.PID != 1401 || p.PPID != 1394 || p.UID != 1000 || p.EUID != 0 || p.AUID != 1000 || p.TTY != "pts/3" ||
		p.Exe != "/usr/bin/dash" || p.Cwd != "/tmp/with space/" || p.Comm != "sh" {
		t.Errorf("process %+v", p)
	}
	if ev.Time.UnixMilli() != 1796422632296 {
		t.Errorf("time %v", ev.Time)
	}
}

func TestAssembleSkipsFailuresAndForeignRecords(t *testing.T) {
	a := newAssembler()
	// A failed execve (ENOENT) is no event; a record with no SYSCALL before it is ignored.
	a.push(typeSyscall, []byte(`audit(1.000:9): arch=c000003e syscall=59 success=no exit=-2 pid=5 ppid=1 key="palisade-exec"`))
	if g := a.push(typeEOE, []byte(`audit(1.000:9): `)); g == nil || g.event() != nil {
		t.Error("failed execve became an event")
	}
	if g := a.push(typeCwd, []byte(`audit(1.000:10): cwd="/"`)); g != nil {
		t.Error("orphan record finished something")
	}
	if g := a.push(typeEOE, []byte(`audit(1.000:10): `)); g != nil {
		t.Error("EOE of an unknown serial finished something")
	}
	if a.push(typeSyscall, []byte(`garbage`)) != nil || a.malformed != 1 {
		t.Errorf("malformed %d", a.malformed)
	}
}

func TestSockaddr(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"saddr=0200115C7F0000010000000000000000", "127.0.0.1:4444"},
		{"saddr=0A0001BB00000000200107F800000000000000000000000100000000", "[2001:7f8::1]:443"},
	} {
		got, proto, ok := sockaddr([]byte(tc.body))
		if !ok || got.String() != tc.want || proto != "inet" {
			t.Errorf("%s: %v %q %v, want %s", tc.body, got, proto, ok, tc.want)
		}
	}
	if _, _, ok := sockaddr([]byte("saddr=01002F746D702F736F636B00")); ok {
		t.Error("unix socket taken as an internet address")
	}
}

func TestProcHelpers(t *testing.T) {
	if ap, ok := parseHexAddr("0100007F:1F90"); !ok || ap != netip.MustParseAddrPort("127.0.0.1:8080") {
		t.Errorf("v4: %v", ap)
	}
	if ap, ok := parseHexAddr("0000000000000000FFFF00000100007F:0050"); !ok || ap != netip.MustParseAddrPort("127.0.0.1:80") {
		t.Errorf("mapped v6: %v", ap)
	}
	id := "3f1c6b0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	for _, cg := range []string{
		"0::/system.slice/docker-" + id + ".scope\n",
		"12:pids:/docker/" + id + "\n1:name=systemd:/docker/" + id + "\n",
		"0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope\n",
	} {
		if got := containerIDFromCgroup([]byte(cg)); got != id {
			t.Errorf("%q: %q", cg, got)
		}
	}
	if got := containerIDFromCgroup([]byte("0::/user.slice/user-1000.slice/session-2.scope\n")); got != "" {
		t.Errorf("host process in container %q", got)
	}
}

// FuzzAssemble feeds arbitrary record sequences: no panic, and events stay within limits.
func FuzzAssemble(f *testing.F) {
	f.Add(uint16(typeSyscall), `audit(1.1:1): arch=c000003e syscall=59 success=yes exit=0 pid=1 ppid=0 key="palisade-exec"`,
		uint16(typeExecve), `audit(1.1:1): argc=2 a0="x" a1_len=4 a1[0]=41 a1[1]=4242`)
	f.Add(uint16(typeSyscall), `audit(1.1:2): arch=c000003e syscall=42 success=yes exit=0 key="palisade-net"`,
		uint16(typeSockaddr), `audit(1.1:2): saddr=0A00`)
	f.Add(uint16(typePath), `audit(1.1:3): item=0 name=(null) nametype=CREATE`, uint16(typeCwd), `audit(x`)
	f.Fuzz(func(t *testing.T, t1 uint16, r1 string, t2 uint16, r2 string) {
		a := newAssembler()
		a.push(t1, []byte(r1))
		a.push(t2, []byte(r2))
		for _, s := range []uint64{1, 2, 3} {
			if g := a.open[s]; g != nil {
				if ev := g.event(); ev != nil && len(ev.Proc.Args) > maxArgs {
					t.Fatalf("%d args", len(ev.Proc.Args))
				}
			}
		}
		_, _ = field([]byte(r1), "a0")
	})
}
