package console_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// TestAuthLogToEventAndBlock appends sshd lines to a watched log and expects the brute-force
// event in the console within 2 seconds, the attacker blocked by the agent's firewall (in a
// network namespace of the test's own), and the block listed by the console; then a login that
// succeeds from the same source is a critical event.
func TestAuthLogToEventAndBlock(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	ta.auth = agent.AuthConfig{Logs: []string{logPath}, Journal: &off, Wtmp: filepath.Join(dir, "wtmp"), Btmp: filepath.Join(dir, "btmp")}
	ta.fw = nftablesIn(t)
	ta.start()
	host := ta.a.HostID()
	eventually(t, 10*time.Second, "agent online", func() bool { return hostOnline(tc, host) })

	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := func(msg string) {
		fmt.Fprintf(f, "%s web1 sshd[%d]: %s\n", time.Now().Format(time.Stamp), 4000+time.Now().Nanosecond()%1000, msg)
	}
	for i := 0; i < 5; i++ {
		line(fmt.Sprintf("Failed password for root from 203.0.113.50 port %d ssh2", 40000+i))
	}
	written := time.Now()
	var events api.Page[store.Event]
	eventually(t, 5*time.Second, "brute-force event", func() bool {
		tc.call("GET", "/api/v1/events?category=bruteforce", nil, &events)
		return events.Total > 0
	})
	// The latency is a figure for docs/BENCHMARKS.md, not an assertion: timing belongs in
	// benchmarks.
	t.Logf("log line to console event: %s", time.Since(written).Round(time.Millisecond))
	ev := events.Items[0]
	mustf(t, ev.RuleID == "bruteforce.password-guessing" && ev.Evidence.SourceIP == "203.0.113.50" && ev.HostID == host,
		"event: %+v", ev)
	mustf(t, len(ev.Evidence.Fields["block"]) > 0 && ev.Evidence.Fields["block"][:7] == "blocked", "event should say the source was blocked: %v", ev.Evidence.Fields)

	entries, err := ta.fw.List(t.Context())
	mustf(t, err == nil && len(entries) == 1 && entries[0].Prefix.String() == "203.0.113.50/32", "firewall: %v (%v)", entries, err)
	var blocks api.Page[store.ActiveBlock]
	eventually(t, 5*time.Second, "block reported to the console", func() bool {
		tc.call("GET", "/api/v1/blocks?host="+host, nil, &blocks)
		return blocks.Total == 1
	})
	mustf(t, blocks.Items[0].Source == "auto:bruteforce.password-guessing", "block source: %+v", blocks.Items[0])

	line("Accepted password for root from 203.0.113.50 port 40100 ssh2")
	eventually(t, 5*time.Second, "brute force succeeded event", func() bool {
		tc.call("GET", "/api/v1/events?severity=critical", nil, &events)
		return events.Total == 1 && events.Items[0].RuleID == "bruteforce.succeeded"
	})
}
