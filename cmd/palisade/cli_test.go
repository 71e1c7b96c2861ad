package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// startConsole serves a console in-process on loopback and points the CLI at it through the
// environment, with the admin token the console wrote to its cli.json.
func startConsole(t *testing.T) *console.Console {
	t.Helper()
	cfg := console.Config{
		DataDir:      filepath.Join(t.TempDir(), "console"),
		AgentListen:  "127.0.0.1:0",
		APIListen:    "127.0.0.1:0",
		OfflineAfter: console.Duration(5 * time.Second),
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := console.Open(ctx, cfg, "correct-horse-battery", io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatalf("open console: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "cli.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cli console.CLIConfig
	if err := json.Unmarshal(b, &cli); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PALISADE_URL", c.APIURL())
	t.Setenv("PALISADE_TOKEN", cli.Token)
	t.Setenv("PALISADE_CA", filepath.Join(cfg.DataDir, "ca.crt"))
	// Keep a developer's own credentials out of the test.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("PALISADE_DATA_DIR", t.TempDir())
	return c
}

// run runs "palisade ARGS..." in-process and returns its exit code and standard output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd, ok := commands[args[0]]
	if !ok {
		t.Fatalf("no command %q", args[0])
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	stdout := os.Stdout
	os.Stdout = w
	var runErr error
	func() {
		defer func() { os.Stdout = stdout }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		runErr = cmd.run(ctx, args[1:])
	}()
	w.Close()
	s := <-out
	r.Close()
	code := exitCode(runErr)
	t.Logf("palisade %s: exit %d, err %v", strings.Join(args, " "), code, runErr)
	return code, s
}

// addEvent enrolls a host directly in the store and gives it one event.
func addEvent(t *testing.T, c *console.Console) string {
	t.Helper()
	ctx := context.Background()
	tok, err := api.NewEnrollToken(ctx, c.Store, "default", time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Store.EnrollHost(ctx, store.HashSecret(tok.Token), store.Host{ID: "h-cli", Hostname: "cli-host", CertSerial: "1"}); err != nil {
		t.Fatal(err)
	}
	f := finding.Finding{ID: finding.NewID(), RuleID: "bruteforce.ssh-password-guessing", Category: finding.CategoryBruteForce,
		Severity: finding.SeverityHigh, Title: "SSH password guessing", Time: time.Now()}
	if _, err := c.Store.IngestFindings(ctx, "h-cli", []finding.Finding{f}, time.Hour); err != nil {
		t.Fatal(err)
	}
	events, _, err := c.Store.ListEvents(ctx, store.EventFilter{HostID: "h-cli"})
	if err != nil || len(events) != 1 {
		t.Fatalf("events %v: %v", events, err)
	}
	return events[0].ID
}

func TestCommands(t *testing.T) {
	c := startConsole(t)
	eventID := addEvent(t, c)
	notZip := filepath.Join(t.TempDir(), "not.zip")
	os.WriteFile(notZip, []byte("not a zip"), 0o644)
	osvZip := filepath.Join(t.TempDir(), "all.zip")
	writeOSVZip(t, osvZip)

	tests := []struct {
		args []string
		want int
	}{
		{[]string{"hosts", "list"}, exitOK},
		{[]string{"hosts", "list", "--json"}, exitOK},
		{[]string{"hosts", "show", "nonexistent"}, exitNotFound},
		{[]string{"hosts", "show"}, exitUsage},
		{[]string{"hosts", "show", "a", "b"}, exitUsage},
		{[]string{"hosts", "revoke", "nonexistent"}, exitNotFound},
		{[]string{"hosts"}, exitUsage},
		{[]string{"hosts", "frobnicate"}, exitUsage},
		{[]string{"hosts", "--help"}, exitOK},
		{[]string{"hosts", "list", "--help"}, exitOK},
		{[]string{"hosts", "list", "--bogus-flag"}, exitUsage},
		{[]string{"hosts", "list", "--online", "maybe"}, exitRejected},
		{[]string{"events", "list"}, exitOK},
		{[]string{"events", "list", "--severity", "bogus"}, exitRejected},
		{[]string{"events", "list", "--category", "bogus"}, exitRejected},
		{[]string{"events", "list", "--limit", "-1"}, exitRejected},
		{[]string{"events", "show", "nonexistent"}, exitNotFound},
		{[]string{"events", "handle", "nonexistent", "--status", "ignored"}, exitNotFound},
		{[]string{"events", "handle", eventID, "--status", "closed"}, exitRejected},
		{[]string{"tasks", "create"}, exitUsage},
		{[]string{"tasks", "create", "--type", "collect-facts", "--all", "--params", "{"}, exitUsage},
		{[]string{"tasks", "create", "--type", "rm-rf", "--all"}, exitRejected},
		{[]string{"tasks", "create", "--type", "collect-facts"}, exitRejected},
		{[]string{"tasks", "create", "--type", "collect-facts", "--hosts", "h-nope"}, exitRejected},
		{[]string{"tasks", "show", "t-nope"}, exitNotFound},
		{[]string{"tasks", "list"}, exitOK},
		{[]string{"token", "list"}, exitOK},
		{[]string{"token", "create", "--ttl", "forever"}, exitRejected},
		{[]string{"token", "delete", "et-nope"}, exitNotFound},
		{[]string{"users", "list"}, exitOK},
		{[]string{"users", "delete", "nobody"}, exitNotFound},
		{[]string{"users", "role", "admin"}, exitUsage},
		{[]string{"audit", "--limit", "5"}, exitOK},
		{[]string{"policy", "list"}, exitOK},
		{[]string{"policy", "show", "fleet"}, exitOK},
		{[]string{"policy", "show", "group:nope"}, exitNotFound},
		{[]string{"policy", "show", "everything"}, exitRejected},
		{[]string{"policy", "set", "fleet", "/nonexistent.json"}, exitError},
		{[]string{"policy", "delete", "group:nope"}, exitNotFound},
		{[]string{"blocks", "list"}, exitOK},
		{[]string{"blocks", "add", "127.0.0.1", "--all"}, exitRejected},
		{[]string{"blocks", "add", "203.0.113.7"}, exitRejected},
		{[]string{"blocks", "add", "203.0.113.7", "--ttl", "1h", "--hosts", "h-nope"}, exitRejected},
		{[]string{"blocks", "remove"}, exitUsage},
		{[]string{"reputation", "import", "/nonexistent", "--source", "x"}, exitError},
		{[]string{"reputation", "import", "-"}, exitUsage},
		{[]string{"reputation", "lookup", "nothex"}, exitRejected},
		{[]string{"reputation", "lookup", strings.Repeat("0", 64)}, exitOK},
		{[]string{"vulns"}, exitOK},
		{[]string{"vulns", "--emergency", "--severity", "high"}, exitOK},
		{[]string{"vulns", "--severity", "bogus"}, exitRejected},
		{[]string{"vulns", "--host", "h-nope"}, exitNotFound},
		{[]string{"vulns", "emergency"}, exitOK},
		{[]string{"vulns", "status"}, exitOK},
		{[]string{"vulns", "show", "DSA-0000-1"}, exitNotFound},
		{[]string{"vulns", "packages", "h-nope"}, exitNotFound},
		{[]string{"vulns", "import", "/nonexistent"}, exitError},
		{[]string{"vulns", "import", notZip}, exitRejected},
		{[]string{"vulns", "import", osvZip}, exitOK},
		{[]string{"vulns", "accept", "DSA-5724-1"}, exitUsage},
		{[]string{"vulns", "accept", "DSA-5724-1", "--all"}, exitUsage},
		{[]string{"vulns", "accept", "DSA-5724-1", "--all", "--until", "100000h"}, exitRejected},
		{[]string{"vulns", "accept", "DSA-5724-1", "--all", "--until", "24h", "--comment", "lab only"}, exitOK},
		{[]string{"vulns", "acceptances", "--expired"}, exitOK},
		{[]string{"vulns", "unaccept", "va-nope"}, exitNotFound},
		{[]string{"vulns", "frobnicate"}, exitUsage},
		{[]string{"version"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if code, out := run(t, tt.args...); code != tt.want {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tt.want, out)
			}
		})
	}
}

func TestTokenCreatePrintsToken(t *testing.T) {
	startConsole(t)
	code, out := run(t, "token", "create", "--ttl", "1h")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "pe_") || strings.ContainsAny(tok, " \n\t") || len(tok) != len("pe_")+48 {
		t.Fatalf("standard output %q is not just an enrollment token", out)
	}
	code, out = run(t, "token", "create", "--group", "web", "--json", "--ttl", "2h")
	if code != exitOK {
		t.Fatalf("--json: exit code %d", code)
	}
	var r api.EnrollTokenResponse
	if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.Token, "pe_") || r.Group != "web" {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if d := time.Until(r.ExpiresAt); d < 110*time.Minute || d > 2*time.Hour {
		t.Errorf("token expires in %s, want 2h", d)
	}
}

func TestHostsList(t *testing.T) {
	c := startConsole(t)
	addEvent(t, c)
	code, out := run(t, "hosts", "list")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	if !strings.HasPrefix(out, "ID") || !strings.Contains(out, "h-cli") || !strings.Contains(out, "cli-host") {
		t.Fatalf("hosts list output:\n%s", out)
	}
}

func TestBogusToken(t *testing.T) {
	startConsole(t)
	t.Setenv("PALISADE_TOKEN", "pal_bogus")
	for _, args := range [][]string{{"hosts", "list"}, {"events", "list"}, {"token", "create"}} {
		if code, _ := run(t, args...); code != exitAuth {
			t.Errorf("%v with a bogus token: exit code %d, want %d", args, code, exitAuth)
		}
	}
}

func TestViewerRoleIsAuthError(t *testing.T) {
	c := startConsole(t)
	ctx := context.Background()
	if err := c.Store.CreateUser(ctx, store.User{ID: "u-v", Name: "v", Role: store.RoleViewer, PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.CreateAPIToken(ctx, store.APIToken{ID: "at-v", Name: "v", TokenHash: store.HashSecret("pal_viewer-token"), UserID: "u-v", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PALISADE_TOKEN", "pal_viewer-token")
	if code, _ := run(t, "hosts", "list"); code != exitOK {
		t.Errorf("viewer hosts list: exit %d", code)
	}
	if code, _ := run(t, "token", "create"); code != exitAuth {
		t.Errorf("viewer token create: exit %d, want %d", code, exitAuth)
	}
}

func TestNotLoggedIn(t *testing.T) {
	t.Setenv("PALISADE_URL", "")
	t.Setenv("PALISADE_TOKEN", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("PALISADE_DATA_DIR", t.TempDir())
	if code, _ := run(t, "hosts", "list"); code != exitAuth {
		t.Errorf("exit code %d, want %d", code, exitAuth)
	}
}

func TestUnreachableConsole(t *testing.T) {
	startConsole(t)
	t.Setenv("PALISADE_URL", "https://127.0.0.1:1")
	if code, _ := run(t, "hosts", "list"); code != exitError {
		t.Errorf("exit code %d, want %d", code, exitError)
	}
}

// Flags may follow positional arguments: "events handle ID --status ignored".
func TestFlagsAfterPositionalArguments(t *testing.T) {
	c := startConsole(t)
	eventID := addEvent(t, c)
	code, out := run(t, "events", "handle", eventID, "--status", "ignored", "--comment", "lab host")
	if code != exitOK {
		t.Fatalf("exit code %d: %s", code, out)
	}
	if !strings.Contains(out, "is now ignored") {
		t.Errorf("output %q", out)
	}
	e, err := c.Store.EventByID(context.Background(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != store.StatusIgnored || e.Comment != "lab host" || e.HandledBy != "admin" {
		t.Errorf("event after handle: status %q comment %q by %q", e.Status, e.Comment, e.HandledBy)
	}
	// Flags first work too.
	if code, _ := run(t, "events", "handle", "--status", "open", eventID); code != exitOK {
		t.Fatalf("flags first: exit code %d", code)
	}
	if e, _ := c.Store.EventByID(context.Background(), eventID); e.Status != store.StatusOpen {
		t.Errorf("status %q after reopening", e.Status)
	}
	if code, _ := run(t, "events", "show", eventID, "--json"); code != exitUsage {
		// "events show" has no --json flag: an unknown flag is a usage error wherever it stands.
		t.Errorf("unknown flag after the argument: exit code %d, want %d", code, exitUsage)
	}
}

func TestParse(t *testing.T) {
	newFS := func() (*flag.FlagSet, *string, *bool) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.String("status", "handled", ""), fs.Bool("json", false, "")
	}
	tests := []struct {
		args       []string
		want       int
		pos        []string
		status     string
		asJSON     bool
		usageError bool
	}{
		{[]string{"a"}, 1, []string{"a"}, "handled", false, false},
		{[]string{"a", "--status", "ignored"}, 1, []string{"a"}, "ignored", false, false},
		{[]string{"--status=ignored", "a", "--json"}, 1, []string{"a"}, "ignored", true, false},
		{[]string{"a", "--json", "b"}, 2, []string{"a", "b"}, "handled", true, false},
		{[]string{"a", "--", "--json"}, -1, []string{"a", "--json"}, "handled", false, false},
		{[]string{"a", "b"}, 1, nil, "", false, true},
		{[]string{}, 1, nil, "", false, true},
		{[]string{"a", "--nope"}, 1, nil, "", false, true},
		{[]string{"a", "--status"}, 1, nil, "", false, true},
	}
	for _, tt := range tests {
		fs, status, asJSON := newFS()
		pos, err := parse(fs, tt.args, tt.want, "args")
		var ue usageError
		if tt.usageError {
			if !errors.As(err, &ue) {
				t.Errorf("parse(%q) = %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%q): %v", tt.args, err)
			continue
		}
		if strings.Join(pos, "|") != strings.Join(tt.pos, "|") || *status != tt.status || *asJSON != tt.asJSON {
			t.Errorf("parse(%q) = %q status=%q json=%v", tt.args, pos, *status, *asJSON)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{flag.ErrHelp, exitOK},
		{usagef("x"), exitUsage},
		{&apiError{status: 401}, exitAuth},
		{&apiError{status: 403}, exitAuth},
		{&apiError{status: 404}, exitNotFound},
		{&apiError{status: 400}, exitRejected},
		{&apiError{status: 409}, exitRejected},
		{&apiError{status: 422}, exitRejected},
		{&apiError{status: 500}, exitError},
		{&apiError{status: 429}, exitError},
		{errNotLoggedIn, exitAuth},
		{errors.New("network"), exitError},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// writeOSVZip writes a one-record OSV archive, laid out as osv.dev's all.zip.
func writeOSVZip(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("DSA-5724-1.json")
	w.Write([]byte(`{"id":"DSA-5724-1","modified":"2024-07-01T12:00:00Z","upstream":["CVE-2024-6387"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssh"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:9.2p1-2+deb12u3"}]}]}]}`))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
