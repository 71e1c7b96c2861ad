package console_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/api"
)

// testConsole is a console served in-process on loopback, restartable on the same ports and
// data directory.
type testConsole struct {
	t         testing.TB
	cfg       console.Config
	c         *console.Console
	cancel    context.CancelFunc
	done      chan error
	token     string // admin API token from cli.json
	http      *http.Client
	agentAddr string
}

func quietLog() *slog.Logger {
	if os.Getenv("PALISADE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startConsole(t testing.TB, mutate ...func(*console.Config)) *testConsole {
	t.Helper()
	cfg := console.Config{
		DataDir:      filepath.Join(t.TempDir(), "console"),
		AgentListen:  freeAddr(t),
		APIListen:    freeAddr(t),
		OfflineAfter: console.Duration(5 * time.Second),
	}
	own := [2]string{cfg.AgentListen, cfg.APIListen}
	for _, m := range mutate {
		m(&cfg)
	}
	tc := &testConsole{t: t, cfg: cfg, agentAddr: cfg.AgentListen}
	// A port released by freeAddr can be taken meanwhile, for long, by another test binary (as
	// the local port of a connection): a first start moves to other ports instead of waiting.
	for i := 0; ; i++ {
		err := tc.tryStart(5)
		if err == nil {
			break
		}
		if i == 5 || !errors.Is(err, syscall.EADDRINUSE) || own != [2]string{tc.cfg.AgentListen, tc.cfg.APIListen} {
			t.Fatalf("open console: %v", err)
		}
		tc.cfg.AgentListen, tc.cfg.APIListen = freeAddr(t), freeAddr(t)
		tc.agentAddr, own = tc.cfg.AgentListen, [2]string{tc.cfg.AgentListen, tc.cfg.APIListen}
	}
	t.Cleanup(tc.stop)
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "cli.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cli console.CLIConfig
	if err := json.Unmarshal(b, &cli); err != nil {
		t.Fatal(err)
	}
	tc.token = cli.Token
	return tc
}

func (tc *testConsole) start() {
	tc.t.Helper()
	// The ports were just released by a previous instance; retry briefly.
	if err := tc.tryStart(50); err != nil {
		tc.t.Fatalf("open console: %v", err)
	}
}

func (tc *testConsole) tryStart(attempts int) error {
	ctx, cancel := context.WithCancel(context.Background())
	var c *console.Console
	var err error
	for i := 0; i < attempts; i++ {
		if c, err = console.Open(ctx, tc.cfg, "correct-horse-battery", io.Discard, quietLog()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cancel()
		return err
	}
	tc.c, tc.cancel, tc.done = c, cancel, make(chan error, 1)
	go func() { tc.done <- c.Serve(ctx) }()
	tc.http = newHTTPClient(tc.t, filepath.Join(tc.cfg.DataDir, "ca.crt"))
	return nil
}

func (tc *testConsole) stop() {
	if tc.cancel == nil {
		return
	}
	tc.cancel()
	<-tc.done
	tc.cancel = nil
}

func newHTTPClient(t testing.TB, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsWithRoot(t, pem)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
}

// call performs an API request with the admin token (or the given one) and decodes the answer.
func (tc *testConsole) call(method, path string, in, out any, headers ...string) int {
	tc.t.Helper()
	return doJSON(tc.t, tc.http, method, tc.c.APIURL()+path, in, out, append([]string{"Authorization", "Bearer " + tc.token}, headers...)...)
}

func doJSON(t testing.TB, hc *http.Client, method, url string, in, out any, headers ...string) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" && headers[i+1] != "Bearer " {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

// enrollToken creates an enrollment token through the API.
func (tc *testConsole) enrollToken(ttl string) string {
	tc.t.Helper()
	var r api.EnrollTokenResponse
	if code := tc.call("POST", "/api/v1/enroll-tokens", api.EnrollTokenRequest{TTL: ttl}, &r); code != http.StatusCreated {
		tc.t.Fatalf("create enrollment token: HTTP %d", code)
	}
	return r.Token
}

// testAgent is an agent enrolled to a test console, run in-process.
type testAgent struct {
	t       testing.TB
	dir     string
	fw      respond.Firewall      // nil: the agent finds none in a test binary and cannot block
	auth    agent.AuthConfig      // zero: authentication sources off, so the host's own logs stay out
	malware agent.MalwareConfig   // zero: no signatures, so nothing is scanned or watched
	behave  *agent.BehaviorConfig // nil: no kernel process events (one audit user at a time)
	// inventoryRoot is the file system the package inventory reads; empty: inventory off, so
	// the test machine's own packages stay out.
	inventoryRoot string
	heartbeat     time.Duration // zero: every second
	a             *agent.Agent
	cancel        context.CancelFunc
	done          chan error
}

func enrollAgent(t testing.TB, tc *testConsole) *testAgent {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "agent")
	if _, err := agent.Enroll(context.Background(), agent.EnrollOptions{DataDir: dir, Server: tc.agentAddr,
		Token: tc.enrollToken("1h"), CAPin: tc.c.CA.Pin(), AgentVersion: "test"}); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return &testAgent{t: t, dir: dir}
}

func (ta *testAgent) start() {
	ta.t.Helper()
	auth := ta.auth
	if auth.Logs == nil && auth.Journal == nil {
		auth.Disabled = true
	}
	behave := agent.BehaviorConfig{Disabled: true}
	if ta.behave != nil {
		behave = *ta.behave
	}
	inv := agent.InventoryConfig{Disabled: ta.inventoryRoot == "", Root: ta.inventoryRoot, LanguageDirs: []string{}, CheckInterval: 100 * time.Millisecond}
	a, err := agent.New(agent.Config{DataDir: ta.dir, HeartbeatInterval: cmp.Or(ta.heartbeat, time.Second), Firewall: ta.fw, Auth: auth, Malware: ta.malware,
		Behavior: behave, Inventory: inv}, quietLog())
	if err != nil {
		ta.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta.a, ta.cancel, ta.done = a, cancel, make(chan error, 1)
	go func() { ta.done <- a.Run(ctx) }()
	ta.t.Cleanup(ta.stop)
}

func (ta *testAgent) stop() {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	<-ta.done
	ta.a.Close()
	ta.cancel = nil
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostOnline(tc *testConsole, id string) bool {
	var h struct {
		Online bool `json:"online"`
	}
	code := tc.call("GET", "/api/v1/hosts/"+id, nil, &h)
	return code == 200 && h.Online
}

func mustf(t testing.TB, cond bool, format string, a ...any) {
	t.Helper()
	if !cond {
		t.Fatalf(format, a...)
	}
}

func tlsWithRoot(t testing.TB, pem []byte) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	return &tls.Config{RootCAs: pool}
}

// testNetns creates a network namespace of the test's own, for firewall changes that must not
// touch the host, and returns its path.
func testNetns(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	name := fmt.Sprintf("palisade-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

// nftablesIn returns an nftables firewall bound to a fresh test namespace.
func nftablesIn(t testing.TB) respond.Firewall {
	t.Helper()
	fw, err := respond.NewNFTables(respond.NFTOptions{NetNS: testNetns(t)})
	if err != nil {
		t.Fatalf("nftables in a test namespace: %v", err)
	}
	t.Cleanup(func() { fw.Close() })
	return fw
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// doJSONRaw posts a text body with the admin token and decodes the JSON answer.
func doJSONRaw(t testing.TB, tc *testConsole, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("POST", tc.c.APIURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tc.token)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := tc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}
