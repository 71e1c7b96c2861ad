package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent"
	"github.com/palisade-cwpp/palisade/internal/agent/budget"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// TestTaskSurvivesConsoleRestart restarts the console while a slow scan runs on the agent: the
// task is sent again on the new stream, the agent does not run it twice, and its result arrives
// over the new stream.
func TestTaskSurvivesConsoleRestart(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	sigs, tree := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(sigs, "x.hdb"), []byte("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"), 0o644)
	for i := 0; i < 2000; i++ {
		os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%04d", i)), []byte(fmt.Sprintf("file %d", i)), 0o644)
	}
	// A tiny CPU budget makes the scan take seconds, long enough to restart the console under it.
	a, err := agent.New(agent.Config{DataDir: ta.dir, HeartbeatInterval: time.Second, Budget: budget.Config{CPUPercent: 5},
		Auth: agent.AuthConfig{Disabled: true}, Malware: agent.MalwareConfig{Signatures: []string{sigs}, Realtime: []string{}},
		Behavior: agent.BehaviorConfig{Disabled: true}, Inventory: agent.InventoryConfig{Disabled: true}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done; a.Close() }()
	host := a.HostID()
	eventually(t, 10*time.Second, "agent online", func() bool { return hostOnline(tc, host) })

	var tk store.Task
	tc.call("POST", "/api/v1/tasks", api.TaskRequest{Type: task.Scan, Params: mustJSON(t, task.ScanParams{Mode: "custom", Paths: []string{tree}}), Hosts: []string{host}}, &tk)
	eventually(t, 10*time.Second, "scan running", func() bool {
		tc.call("GET", "/api/v1/tasks/"+tk.ID, nil, &tk)
		return tk.Hosts[0].State == store.TaskRunning
	})
	tc.stop()
	tc.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tc.call("GET", "/api/v1/tasks/"+tk.ID, nil, &tk)
		if store.FinalTaskState(tk.Hosts[0].State) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result over the new stream; task on the host: %+v", tk.Hosts[0])
		}
		time.Sleep(100 * time.Millisecond)
	}
	var res agent.ScanResult
	mustf(t, tk.Hosts[0].State == store.TaskSucceeded && jsonInto(tk.Hosts[0].Result, &res) == nil && res.Stats.Files == 2000,
		"task after the restart: %+v %s", tk.Hosts[0], tk.Hosts[0].Result)
}
