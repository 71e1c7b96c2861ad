package console_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

func testFinding(i int) finding.Finding {
	return finding.Finding{
		RuleID: "test.lossless", Category: finding.CategoryBruteForce, Severity: finding.SeverityMedium,
		Title:    fmt.Sprintf("test finding %d", i),
		DedupKey: fmt.Sprintf("source-%d", i%50), // repeats aggregate into 50 events
		Evidence: finding.Evidence{SourceIP: fmt.Sprintf("203.0.113.%d", i%50), Lines: []string{fmt.Sprintf("line %d", i)}},
	}
}

// assertExactlyOnce checks that every ID in want is stored, and that the events count every
// stored finding exactly once.
func assertExactlyOnce(t *testing.T, st *store.Store, want map[string]bool) {
	t.Helper()
	ctx := context.Background()
	missing := 0
	for id := range want {
		ok, err := st.HasFinding(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			missing++
		}
	}
	mustf(t, missing == 0, "%d of %d findings lost", missing, len(want))
	stored, err := st.FindingCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events, _, err := st.ListEvents(ctx, store.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, e := range events {
		sum += e.Count
	}
	mustf(t, sum == stored, "events count %d findings but %d distinct findings are stored: some were counted twice", sum, stored)
	t.Logf("%d findings emitted and acknowledged, %d stored, %d events", len(want), stored, len(events))
}

// TestLosslessAcrossRestarts emits findings while the console restarts twice and the agent
// restarts once, mid-stream.
func TestLosslessAcrossRestarts(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.start()

	const total = 20000
	var mu sync.Mutex
	emitted := map[string]bool{}
	var emitter *agent.Agent = ta.a
	progress := make(chan int, total)
	go func() {
		for i := 0; i < total; i++ {
			f := testFinding(i)
			f.ID = finding.NewID()
			mu.Lock()
			a := emitter
			for a == nil { // the agent is restarting
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				a = emitter
			}
			if err := a.Emit(f); err != nil {
				t.Errorf("emit: %v", err)
			}
			emitted[f.ID] = true
			mu.Unlock()
			progress <- i
			if i%100 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		close(progress)
	}()
	waitFor := func(n int) {
		for i := range progress {
			if i >= n {
				return
			}
		}
	}
	waitFor(total / 4)
	tc.stop() // console down while findings keep coming
	waitFor(total / 3)
	tc.start()
	waitFor(total / 2)
	mu.Lock()
	emitter = nil
	mu.Unlock()
	ta.stop()
	ta.start()
	mu.Lock()
	emitter = ta.a
	mu.Unlock()
	waitFor(3 * total / 4)
	tc.stop()
	tc.start()
	waitFor(total)

	eventually(t, 60*time.Second, "spool drained", func() bool { return ta.a.SpoolStats().Depth == 0 })
	mu.Lock()
	defer mu.Unlock()
	mustf(t, len(emitted) == total, "emitted %d", len(emitted))
	assertExactlyOnce(t, tc.c.Store, emitted)
}

const childEnv = "PALISADE_TEST_AGENT_CHILD"

// TestAgentChild is not a test: it is the agent process that TestLosslessAgentSIGKILL starts
// and kills. It emits findings for ever, printing each ID once Emit has returned.
func TestAgentChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("helper process for TestLosslessAgentSIGKILL")
	}
	a, err := agent.New(agent.Config{DataDir: dir, HeartbeatInterval: time.Second, Auth: agent.AuthConfig{Disabled: true},
		Behavior: agent.BehaviorConfig{Disabled: true}, Inventory: agent.InventoryConfig{Disabled: true}}, quietLog())
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	go a.Run(context.Background())
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		f := testFinding(i)
		f.ID = finding.NewID()
		if err := a.Emit(f); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Fprintln(w, "emitted", f.ID)
		w.Flush()
	}
}

// TestLosslessAgentSIGKILL kills a real agent process with SIGKILL while it writes findings
// and sends them, restarts it, and checks that every finding it had spooled reaches the store
// exactly once.
func TestLosslessAgentSIGKILL(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	emitted := map[string]bool{}
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAgentChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), childEnv+"="+ta.dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "emitted "); ok {
				emitted[id] = true
				if n++; n == 3000 {
					break
				}
			} else if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		// Mid-write and mid-stream: the child is still appending and sending.
		cmd.Process.Signal(syscall.SIGKILL)
		// IDs the child printed before it died are owed too.
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "emitted "); ok {
				emitted[id] = true
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}
	// A clean restart delivers whatever the killed processes left in the spool.
	ta.start()
	eventually(t, 60*time.Second, "spool drained", func() bool { return ta.a.SpoolStats().Depth == 0 })
	assertExactlyOnce(t, tc.c.Store, emitted)
}

// TestSpoolOverflowIsReported fills a small spool while the console is down: the agent refuses
// and counts the excess, and once it reconnects the console opens an event saying so.
func TestSpoolOverflowIsReported(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	tc.stop()
	a, err := agent.New(agent.Config{DataDir: ta.dir, HeartbeatInterval: time.Second, SpoolMaxBytes: 64 << 10, Auth: agent.AuthConfig{Disabled: true},
		Behavior: agent.BehaviorConfig{Disabled: true}, Inventory: agent.InventoryConfig{Disabled: true}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	refused := 0
	for i := 0; i < 1000; i++ {
		if err := a.Emit(testFinding(i)); err != nil {
			refused++
		}
	}
	mustf(t, refused > 0 && a.SpoolStats().Dropped == uint64(refused), "refused %d, spool counted %d", refused, a.SpoolStats().Dropped)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	tc.start()
	var events []store.Event
	eventually(t, 20*time.Second, "spool overflow event", func() bool {
		events, _, err = tc.c.Store.ListEvents(context.Background(), store.EventFilter{Category: string(finding.CategoryAgent)})
		return err == nil && len(events) == 1
	})
	e := events[0]
	mustf(t, e.RuleID == "agent.spool-overflow" && e.Count == int64(refused) && e.Severity == "high",
		"event: rule %s count %d severity %s, want %d dropped", e.RuleID, e.Count, e.Severity, refused)
}
