package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/palisade-cwpp/palisade/internal/agent/hostinfo"
	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/task"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// taskFunc runs one task of a known type. It reports progress through the callback and
// returns a JSON-encodable result. It must honour ctx.
type taskFunc func(ctx context.Context, t *pb.TaskAssign, progress func(pct int, msg string)) (any, error)

// taskRunner runs tasks of the types compiled into the agent, one at a time per type.
type taskRunner struct {
	a       *Agent
	types   map[string]taskFunc
	mu      sync.Mutex
	running map[string]bool // task IDs in progress, so a redelivered task is not run twice

	quarantineMu sync.Mutex
}

func newTaskRunner(a *Agent) *taskRunner {
	r := &taskRunner{a: a, running: map[string]bool{}}
	r.types = map[string]taskFunc{
		task.CollectFacts: r.collectFacts,
		task.BlockIP:      r.block,
		task.UnblockIP:    r.block,
		task.Quarantine:   r.quarantine,
		task.Restore:      r.quarantine,
		task.Scan:         r.scan,

		task.CollectInventory: r.collectInventory,
	}
	return r
}

// start runs t in the background, sending updates to out. Unknown types are rejected.
func (r *taskRunner) start(ctx context.Context, t *pb.TaskAssign, out func(*pb.TaskUpdate)) {
	fn, ok := r.types[t.GetType()]
	if !ok {
		out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "rejected", Message: fmt.Sprintf("this agent does not know task type %q", t.GetType())})
		return
	}
	params := json.RawMessage(t.GetParams())
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	if !json.Valid(params) {
		out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "rejected", Message: "task parameters are not valid JSON"})
		return
	}
	r.mu.Lock()
	if r.running[t.GetTaskId()] {
		r.mu.Unlock()
		return
	}
	r.running[t.GetTaskId()] = true
	r.mu.Unlock()
	go func() {
		defer func() { r.mu.Lock(); delete(r.running, t.GetTaskId()); r.mu.Unlock() }()
		out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "running", Progress: 0})
		res, err := fn(ctx, t, func(pct int, msg string) {
			out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "running", Progress: uint32(min(max(pct, 0), 99)), Message: msg})
		})
		if err != nil {
			out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "failed", Message: err.Error()})
			return
		}
		b, err := json.Marshal(res)
		if err != nil {
			out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "failed", Message: "encode result: " + err.Error()})
			return
		}
		out(&pb.TaskUpdate{TaskId: t.GetTaskId(), State: "succeeded", Progress: 100, Result: b})
	}()
}

// collectFacts gathers the host facts afresh; they also go to the console as a new Hello on
// the next connection.
func (r *taskRunner) collectFacts(ctx context.Context, t *pb.TaskAssign, progress func(int, string)) (any, error) {
	if err := task.Validate(t.GetType(), t.GetParams()); err != nil {
		return nil, err
	}
	facts, err := hostinfo.Collect(Version)
	if err != nil {
		return nil, err
	}
	return facts, nil
}

// block runs block-ip and unblock-ip.
func (r *taskRunner) block(ctx context.Context, t *pb.TaskAssign, progress func(int, string)) (any, error) {
	return r.a.runBlockTask(ctx, t.GetType(), t.GetParams(), t.GetCreatedBy())
}

// quarantine runs quarantine-file and restore-file.
func (r *taskRunner) quarantine(ctx context.Context, t *pb.TaskAssign, progress func(int, string)) (any, error) {
	// One store, one key: quarantine tasks run one at a time.
	r.quarantineMu.Lock()
	defer r.quarantineMu.Unlock()
	q, err := respond.OpenQuarantine(filepath.Join(r.a.cfg.DataDir, "quarantine"))
	if err != nil {
		return nil, err
	}
	if t.GetType() == task.Restore {
		var p task.RestoreParams
		if err := task.Decode(t.GetType(), t.GetParams(), &p); err != nil {
			return nil, err
		}
		return q.Restore(p.ID)
	}
	var p task.QuarantineParams
	if err := task.Decode(t.GetType(), t.GetParams(), &p); err != nil {
		return nil, err
	}
	reason := p.Reason
	if reason == "" {
		reason = "ordered by " + t.GetCreatedBy()
	}
	return q.Isolate(p.Path, p.SHA256, reason)
}

// scan runs a malware scan task.
func (r *taskRunner) scan(ctx context.Context, t *pb.TaskAssign, progress func(int, string)) (any, error) {
	return r.a.runScanTask(ctx, t.GetParams(), progress)
}
