package respond

// Helpers for the tests that use the real kernel. Everything they do happens inside network
// namespaces the test creates (named palisade-test-<random>) and removes in its cleanup: the
// firewall code under test only ever runs with NetNS set to such a namespace, and the only
// addresses used are 198.18.0.0/15 (benchmarking range) and fd00::/8 on the namespaces' own veth
// pair. Nothing touches the host's own firewall or network.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const testNSPrefix = "palisade-test-"

// ci reports whether missing prerequisites must fail the test instead of skipping it.
func ci() bool { return os.Getenv("CI") == "true" }

// requireTool skips (or under CI=true fails) the test when a binary is missing.
func requireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := findBinary(n); err != nil {
			msg := fmt.Sprintf("%s is needed for this test (Debian: apt-get install %s): %v", n, debianPackage(n), err)
			if ci() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

func debianPackage(bin string) string {
	switch bin {
	case "ip":
		return "iproute2"
	case "iptables", "ip6tables":
		return "iptables"
	case "nft":
		return "nftables"
	}
	return bin
}

// requireKernel skips (or under CI=true fails) unless we are root with the ip tool.
func requireKernel(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if ci() {
			t.Fatal("the firewall tests need root (network namespaces, netfilter)")
		}
		t.Skip("the firewall tests need root (network namespaces, netfilter)")
	}
	requireTool(t, "ip")
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	bin, err := findBinary("ip")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNS creates a namespace palisade-test-<random><suffix> with its loopback up, removed when
// the test ends, and returns its name and path.
func newNS(t testing.TB, suffix string) (name, path string) {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name = testNSPrefix + hex.EncodeToString(b[:]) + suffix
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		bin, _ := findBinary("ip")
		if out, err := exec.Command(bin, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("remove namespace %s: %v: %s", name, err, out)
		}
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

// testNSPath is a guard for the hard rule: firewall code in tests runs only in our namespaces.
func testNSPath(t testing.TB, path string) string {
	t.Helper()
	if !strings.HasPrefix(path, "/run/netns/"+testNSPrefix) {
		t.Fatalf("refusing to run firewall code outside a test namespace (%q)", path)
	}
	return path
}

// testNet is two namespaces joined by a veth pair: "attacker" (198.18.0.1/30, fd00:5a1e::1/64)
// and "server" (198.18.0.2/30, fd00:5a1e::2/64).
type testNet struct {
	attacker, server string // namespace paths
}

var (
	attackerAddr4 = "198.18.0.1"
	serverAddr4   = "198.18.0.2"
	attackerAddr6 = "fd00:5a1e::1"
	serverAddr6   = "fd00:5a1e::2"
)

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	a, aPath := newNS(t, "-a")
	s, sPath := newNS(t, "-s")
	// Created inside the attacker namespace with its peer moved straight into the server
	// namespace: the host's own namespace never sees either end.
	ip(t, "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", s)
	ip(t, "-n", a, "addr", "add", attackerAddr4+"/30", "dev", "veth0")
	ip(t, "-n", s, "addr", "add", serverAddr4+"/30", "dev", "veth1")
	ip(t, "-n", a, "-6", "addr", "add", attackerAddr6+"/64", "dev", "veth0", "nodad")
	ip(t, "-n", s, "-6", "addr", "add", serverAddr6+"/64", "dev", "veth1", "nodad")
	ip(t, "-n", a, "link", "set", "veth0", "up")
	ip(t, "-n", s, "link", "set", "veth1", "up")
	return &testNet{attacker: aPath, server: sPath}
}

// listen starts a TCP server in the namespace at nsPath on addr (port 0) that accepts and closes
// connections, and returns its address.
func listen(t testing.TB, nsPath, host string) string {
	t.Helper()
	var ln net.Listener
	err := inNetNS(testNSPath(t, nsPath), func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// connect opens a TCP connection from the namespace at nsPath to addr.
func connect(nsPath, addr string, timeout time.Duration) error {
	return inNetNS(nsPath, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

const dialTimeout = 700 * time.Millisecond

func mustConnect(t testing.TB, n *testNet, addr, when string) {
	t.Helper()
	if err := connect(n.attacker, addr, 3*time.Second); err != nil {
		t.Fatalf("%s: connect to %s: %v", when, addr, err)
	}
}

func mustNotConnect(t testing.TB, n *testNet, addr, when string) {
	t.Helper()
	err := connect(n.attacker, addr, dialTimeout)
	if err == nil {
		t.Fatalf("%s: connected to %s", when, addr)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Logf("%s: connect failed without a timeout: %v", when, err)
	}
}

// inNS runs a command in the namespace (for inspecting state with the CLI tools).
func inNS(t testing.TB, nsPath string, bin string, args ...string) string {
	t.Helper()
	path, err := findBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	err = inNetNS(testNSPath(t, nsPath), func() error {
		var err error
		out, err = exec.Command(path, args...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}
