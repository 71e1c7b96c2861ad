package console_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// TestQuarantineTaskRoundTrip isolates a flagged file from the console and restores it.
func TestQuarantineTaskRoundTrip(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.start()
	host := ta.a.HostID()
	eventually(t, 10*time.Second, "agent online", func() bool { return hostOnline(tc, host) })

	path := filepath.Join(t.TempDir(), "miner")
	content := []byte("#!/bin/sh\necho pretend miner\n")
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	run := func(typ string, params any) store.TaskHost {
		t.Helper()
		var tk store.Task
		b := mustJSON(t, params)
		code := tc.call("POST", "/api/v1/tasks", api.TaskRequest{Type: typ, Params: b, Hosts: []string{host}}, &tk)
		mustf(t, code == http.StatusCreated, "%s: HTTP %d", typ, code)
		eventually(t, 10*time.Second, typ+" done", func() bool {
			tc.call("GET", "/api/v1/tasks/"+tk.ID, nil, &tk)
			return store.FinalTaskState(tk.Hosts[0].State)
		})
		return tk.Hosts[0]
	}
	// A file that is not the flagged one (wrong hash) is left alone.
	th := run(task.Quarantine, task.QuarantineParams{Path: path, SHA256: hex.EncodeToString(make([]byte, 32))})
	mustf(t, th.State == store.TaskFailed, "wrong hash: %+v", th)
	_, err := os.Stat(path)
	mustf(t, err == nil, "file must stay when the hash differs")

	th = run(task.Quarantine, task.QuarantineParams{Path: path, SHA256: hex.EncodeToString(sum[:]), Reason: "test"})
	var item respond.QuarantineItem
	mustf(t, th.State == store.TaskSucceeded && jsonInto(th.Result, &item) == nil && item.Path == path, "quarantine: %+v %s", th, th.Result)
	_, err = os.Stat(path)
	mustf(t, os.IsNotExist(err), "file still in place after quarantine")

	th = run(task.Restore, task.RestoreParams{ID: item.ID})
	mustf(t, th.State == store.TaskSucceeded, "restore: %+v", th)
	got, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	mustf(t, err == nil && bytes.Equal(got, content) && fi.Mode().Perm() == 0o755, "restored file: %q %v (%v)", got, fi.Mode(), err)
}
