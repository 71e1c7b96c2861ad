package store

import (
	"encoding/json"
	"testing"
	"time"
)

func taskStates(t *testing.T, s *Store, taskID string) map[string]TaskHost {
	t.Helper()
	task, err := s.TaskByID(t.Context(), taskID)
	must(t, err)
	out := map[string]TaskHost{}
	for _, th := range task.Hosts {
		out[th.HostID] = th
	}
	return out
}

func pendingIDs(t *testing.T, s *Store, hostID string) []string {
	t.Helper()
	tasks, err := s.PendingTasks(t.Context(), hostID)
	must(t, err)
	var ids []string
	for _, task := range tasks {
		ids = append(ids, task.ID)
	}
	return ids
}

func TestTaskLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		hosts := []string{"h-7c1e", "h-9a02", "h-3bd4"}
		for _, h := range hosts {
			addHost(t, s, h, h, "web-prod")
		}
		addHost(t, s, "h-55f0", "build-runner-7", "ci")

		scan := Task{ID: "t-scan-1", Type: "malware.scan", Params: json.RawMessage(`{"paths":["/var/www","/tmp"],"max_depth":12}`),
			CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		must(t, s.CreateTask(ctx, scan, hosts))

		got, err := s.TaskByID(ctx, scan.ID)
		must(t, err)
		if got.Type != scan.Type || string(got.Params) != string(scan.Params) || got.CreatedBy != "alice" ||
			!got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(scan.ExpiresAt) || len(got.Hosts) != 3 {
			t.Fatalf("TaskByID = %+v", got)
		}
		for _, th := range got.Hosts {
			if th.State != TaskPending || !th.UpdatedAt.Equal(t0) || th.Result != nil {
				t.Errorf("new task on %s: %+v", th.HostID, th)
			}
		}
		for _, h := range hosts {
			if ids := pendingIDs(t, s, h); len(ids) != 1 || ids[0] != scan.ID {
				t.Errorf("PendingTasks(%s) = %v, want [%s]", h, ids, scan.ID)
			}
		}
		if ids := pendingIDs(t, s, "h-55f0"); len(ids) != 0 {
			t.Errorf("host outside the task has pending %v", ids)
		}

		// h-7c1e: dispatched, running, succeeded.
		steps := []TaskHost{
			{State: TaskDispatched},
			{State: TaskRunning, Progress: 40, Message: "scanned 18211 of 45000 files"},
			{State: TaskSucceeded, Progress: 100, Message: "2 files quarantined", Result: json.RawMessage(`{"scanned":45000,"detections":2}`)},
		}
		for i, step := range steps {
			clock.Advance(time.Minute)
			step.TaskID, step.HostID = scan.ID, "h-7c1e"
			must(t, s.UpdateTaskHost(ctx, step))
			th := taskStates(t, s, scan.ID)["h-7c1e"]
			if th.State != step.State || th.Progress != step.Progress || th.Message != step.Message ||
				string(th.Result) != string(step.Result) || !th.UpdatedAt.Equal(t0.Add(time.Duration(i+1)*time.Minute)) {
				t.Errorf("after %s: %+v", step.State, th)
			}
			if step.State == TaskDispatched {
				if ids := pendingIDs(t, s, "h-7c1e"); len(ids) != 0 {
					t.Errorf("dispatched task still pending: %v", ids)
				}
			}
		}
		final := taskStates(t, s, scan.ID)["h-7c1e"]

		// A late or repeated report after the end changes nothing.
		clock.Advance(time.Minute)
		for _, late := range []TaskHost{
			{State: TaskFailed, Message: "context canceled"},
			{State: TaskRunning, Progress: 90},
			{State: TaskSucceeded, Progress: 100, Result: json.RawMessage(`{"scanned":1}`)},
		} {
			late.TaskID, late.HostID = scan.ID, "h-7c1e"
			wantErrIs(t, "update after "+final.State, s.UpdateTaskHost(ctx, late), ErrNotFound)
		}
		if th := taskStates(t, s, scan.ID)["h-7c1e"]; jsonOf(t, th) != jsonOf(t, final) {
			t.Errorf("final state changed:\n got %s\nwant %s", jsonOf(t, th), jsonOf(t, final))
		}
		wantErrIs(t, "update of an unknown task", s.UpdateTaskHost(ctx, TaskHost{TaskID: "t-nope", HostID: "h-7c1e", State: TaskRunning}), ErrNotFound)
		wantErrIs(t, "update for a host outside the task", s.UpdateTaskHost(ctx, TaskHost{TaskID: scan.ID, HostID: "h-55f0", State: TaskRunning}), ErrNotFound)

		_, err = s.TaskByID(ctx, "t-nope")
		wantErrIs(t, "TaskByID unknown", err, ErrNotFound)
	})
}

// ExpireTasks ends every unfinished host state (pending, dispatched, running) of tasks past their
// expiry, as its doc comment says since the set-wise ingest commit; final states and unexpired
// tasks are left alone. (docs/API.md and docs/ARCHITECTURE.md still say "pending → expired" only.)
func TestExpireTasksEndsUnfinishedHostsOfExpiredTasksOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		clock := useClock(s, t0)
		hosts := []string{"h-7c1e", "h-9a02", "h-3bd4", "h-55f0", "h-e81a"}
		for _, h := range hosts {
			addHost(t, s, h, h, "web-prod")
		}
		short := Task{ID: "t-short", Type: "baseline.check", Params: json.RawMessage(`{}`), CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		long := Task{ID: "t-long", Type: "vuln.inventory", Params: json.RawMessage(`{"full":true}`), CreatedBy: "bob", CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(24 * time.Hour)}
		must(t, s.CreateTask(ctx, short, hosts))
		must(t, s.CreateTask(ctx, long, hosts))
		// Where each host got to with the short task; h-3bd4 never connected.
		progress := map[string][]string{
			"h-7c1e": {TaskDispatched, TaskRunning, TaskSucceeded},
			"h-9a02": {TaskDispatched, TaskRunning},
			"h-55f0": {TaskDispatched},
			"h-e81a": {TaskDispatched, TaskRejected},
		}
		for h, states := range progress {
			for _, st := range states {
				must(t, s.UpdateTaskHost(ctx, TaskHost{TaskID: short.ID, HostID: h, State: st}))
			}
		}
		// h-7c1e is running the long task too.
		must(t, s.UpdateTaskHost(ctx, TaskHost{TaskID: long.ID, HostID: "h-7c1e", State: TaskRunning, Progress: 30}))

		if ids := pendingIDs(t, s, "h-3bd4"); len(ids) != 2 || ids[0] != short.ID || ids[1] != long.ID {
			t.Errorf("PendingTasks before expiry = %v, want oldest first", ids)
		}
		clock.Set(short.ExpiresAt.Add(-time.Millisecond))
		if n, err := s.ExpireTasks(ctx); err != nil || n != 0 {
			t.Errorf("ExpireTasks before expiry = %d, %v; want 0", n, err)
		}

		clock.Set(short.ExpiresAt)
		// An expired task is no longer offered, even before ExpireTasks runs.
		if ids := pendingIDs(t, s, "h-3bd4"); len(ids) != 1 || ids[0] != long.ID {
			t.Errorf("PendingTasks at expiry = %v, want only %s", ids, long.ID)
		}
		n, err := s.ExpireTasks(ctx)
		if err != nil || n != 2 {
			t.Errorf("ExpireTasks = %d, %v; want 2 (pending h-3bd4, dispatched h-55f0)", n, err)
		}
		// h-9a02 reported progress recently: a long task keeps running past expiry while it
		// reports; only a silence of StaleRunning ends it.
		if st := taskStates(t, s, short.ID)["h-9a02"].State; st != TaskRunning {
			t.Errorf("recently reporting running task: %s, want running", st)
		}
		clock.Set(short.ExpiresAt.Add(StaleRunning))
		if n, err := s.ExpireTasks(ctx); err != nil || n != 1 {
			t.Errorf("ExpireTasks after a silence = %d, %v; want 1 (running h-9a02)", n, err)
		}
		states := taskStates(t, s, short.ID)
		for host, want := range map[string]string{
			"h-7c1e": TaskSucceeded, // final states stay
			"h-e81a": TaskRejected,
			"h-3bd4": TaskExpired, // pending
			"h-9a02": TaskExpired, // running, never reported an end
			"h-55f0": TaskExpired, // dispatched, never started
		} {
			if states[host].State != want {
				t.Errorf("short task on %s: %s, want %s", host, states[host].State, want)
			}
		}
		if th := states["h-3bd4"]; !th.UpdatedAt.Equal(short.ExpiresAt) || th.Message == "" {
			t.Errorf("expired host state: %+v", th)
		}
		for host, th := range taskStates(t, s, long.ID) {
			want := TaskPending
			if host == "h-7c1e" {
				want = TaskRunning
			}
			if th.State != want {
				t.Errorf("unexpired task on %s: %s, want %s", host, th.State, want)
			}
		}
		if n, err := s.ExpireTasks(ctx); err != nil || n != 0 {
			t.Errorf("second ExpireTasks = %d, %v; want 0", n, err)
		}
		// Expired is final: a host cannot take it or report on it late.
		wantErrIs(t, "running an expired task", s.UpdateTaskHost(ctx, TaskHost{TaskID: short.ID, HostID: "h-3bd4", State: TaskRunning}), ErrNotFound)
		wantErrIs(t, "finishing an expired task", s.UpdateTaskHost(ctx, TaskHost{TaskID: short.ID, HostID: "h-9a02", State: TaskSucceeded}), ErrNotFound)

		tasks, err := s.ListTasks(ctx, 0, 0)
		must(t, err)
		if len(tasks) != 2 || tasks[0].ID != long.ID || tasks[1].ID != short.ID {
			t.Errorf("ListTasks (newest first) = %+v", tasks)
		}
	})
}

// RequeueDispatched, run when a host says Hello, puts its dispatched and running tasks back to
// pending (the stream or the agent that had them may have died); final states stay.
func TestRequeueDispatched(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		useClock(s, t0)
		addHost(t, s, "h-7c1e", "web-01", "web-prod")
		addHost(t, s, "h-9a02", "web-02", "web-prod")
		for i, id := range []string{"t-a", "t-b", "t-c"} {
			must(t, s.CreateTask(ctx, Task{ID: id, Type: "malware.scan", Params: json.RawMessage(`{}`), CreatedBy: "alice",
				CreatedAt: t0.Add(time.Duration(i) * time.Second), ExpiresAt: t0.Add(time.Hour)}, []string{"h-7c1e", "h-9a02"}))
		}
		// h-7c1e got all three over a stream that then died: t-a was never started, t-b
		// was running, t-c had failed. h-9a02 had t-a dispatched too.
		for _, u := range []TaskHost{
			{TaskID: "t-a", HostID: "h-7c1e", State: TaskDispatched},
			{TaskID: "t-b", HostID: "h-7c1e", State: TaskDispatched},
			{TaskID: "t-b", HostID: "h-7c1e", State: TaskRunning, Progress: 5},
			{TaskID: "t-c", HostID: "h-7c1e", State: TaskDispatched},
			{TaskID: "t-c", HostID: "h-7c1e", State: TaskFailed, Message: "permission denied"},
			{TaskID: "t-a", HostID: "h-9a02", State: TaskDispatched},
		} {
			must(t, s.UpdateTaskHost(ctx, u))
		}
		if ids := pendingIDs(t, s, "h-7c1e"); len(ids) != 0 {
			t.Errorf("pending before reconnect: %v", ids)
		}

		must(t, s.RequeueDispatched(ctx, "h-7c1e"))
		if ids := pendingIDs(t, s, "h-7c1e"); len(ids) != 2 || ids[0] != "t-a" || ids[1] != "t-b" {
			t.Errorf("pending after requeue = %v, want [t-a t-b]", ids)
		}
		if st := taskStates(t, s, "t-c")["h-7c1e"].State; st != TaskFailed {
			t.Errorf("t-c on h-7c1e after requeue: %s, want failed", st)
		}
		// Other hosts are not touched.
		if st := taskStates(t, s, "t-a")["h-9a02"].State; st != TaskDispatched {
			t.Errorf("t-a on h-9a02: %s, want dispatched", st)
		}
		must(t, s.RequeueDispatched(ctx, "h-7c1e")) // nothing to do is fine
	})
}
