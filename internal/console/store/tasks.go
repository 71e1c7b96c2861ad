package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Per-host task states. A task waits as pending until its host is connected, is dispatched
// over the host's stream, and ends in one of the final states.
const (
	TaskPending    = "pending"
	TaskDispatched = "dispatched"
	TaskRunning    = "running"
	TaskSucceeded  = "succeeded"
	TaskFailed     = "failed"
	TaskRejected   = "rejected" // the agent does not know the type or refused the parameters
	TaskExpired    = "expired"  // the host did not take it before the task expired
)

// FinalTaskState reports whether st ends a task on a host.
func FinalTaskState(st string) bool {
	return st == TaskSucceeded || st == TaskFailed || st == TaskRejected || st == TaskExpired
}

// Task is an operator's request that agents do one thing of a known type.
type Task struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Params    json.RawMessage `json:"params"`
	CreatedBy string          `json:"created_by"`
	CreatedAt time.Time       `json:"created_at"`
	ExpiresAt time.Time       `json:"expires_at"`
	Hosts     []TaskHost      `json:"hosts,omitempty"`
}

// TaskHost is a task's state on one host.
type TaskHost struct {
	TaskID    string          `json:"-"`
	HostID    string          `json:"host_id"`
	State     string          `json:"state"`
	Progress  int             `json:"progress"`
	Message   string          `json:"message,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// CreateTask stores a task pending on each of hostIDs.
func (s *Store) CreateTask(ctx context.Context, t Task, hostIDs []string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO tasks(id, type, params, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
			t.ID, t.Type, string(t.Params), t.CreatedBy, ms(t.CreatedAt), ms(t.ExpiresAt)); err != nil {
			return fmt.Errorf("insert task: %w", err)
		}
		for _, h := range hostIDs {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_hosts(task_id, host_id, state, updated_at) VALUES (?, ?, ?, ?)`),
				t.ID, h, TaskPending, ms(t.CreatedAt)); err != nil {
				return fmt.Errorf("task host %s: %w", h, err)
			}
		}
		return nil
	})
}

const taskCols = `id, type, params, created_by, created_at, expires_at`

func scanTask(row interface{ Scan(...any) error }) (Task, error) {
	var t Task
	var params string
	var c, e int64
	err := row.Scan(&t.ID, &t.Type, &params, &t.CreatedBy, &c, &e)
	t.Params, t.CreatedAt, t.ExpiresAt = json.RawMessage(params), fromMS(c), fromMS(e)
	return t, err
}

// TaskByID returns a task with its per-host states.
func (s *Store) TaskByID(ctx context.Context, id string) (Task, error) {
	t, err := scanTask(s.queryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id))
	if err != nil {
		return t, notFound(err, "task "+id)
	}
	rows, err := s.query(ctx, `SELECT task_id, host_id, state, progress, message, result, updated_at FROM task_hosts WHERE task_id = ? ORDER BY host_id`, id)
	if err != nil {
		return t, err
	}
	defer rows.Close()
	for rows.Next() {
		th, err := scanTaskHost(rows)
		if err != nil {
			return t, err
		}
		t.Hosts = append(t.Hosts, th)
	}
	return t, rows.Err()
}

func scanTaskHost(row interface{ Scan(...any) error }) (TaskHost, error) {
	var th TaskHost
	var result string
	var up int64
	err := row.Scan(&th.TaskID, &th.HostID, &th.State, &th.Progress, &th.Message, &result, &up)
	if result != "" {
		th.Result = json.RawMessage(result)
	}
	th.UpdatedAt = fromMS(up)
	return th, err
}

// ListTasks returns tasks, newest first.
func (s *Store) ListTasks(ctx context.Context, limit, offset int) ([]Task, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return s.queryTasks(ctx, `SELECT `+taskCols+` FROM tasks ORDER BY created_at DESC, id LIMIT ? OFFSET ?`, limit, offset)
}

// PendingTasks returns the unexpired tasks waiting for hostID, oldest first.
func (s *Store) PendingTasks(ctx context.Context, hostID string) ([]Task, error) {
	return s.queryTasks(ctx, `SELECT t.id, t.type, t.params, t.created_by, t.created_at, t.expires_at
		FROM tasks t JOIN task_hosts th ON th.task_id = t.id
		WHERE th.host_id = ? AND th.state = ? AND t.expires_at > ? ORDER BY t.created_at`, hostID, TaskPending, ms(s.Now()))
}

func (s *Store) queryTasks(ctx context.Context, query string, args ...any) ([]Task, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// UpdateTaskHost records a task's progress on a host. A final state is never overwritten: a late
// or repeated report after the end changes nothing and returns ErrNotFound.
func (s *Store) UpdateTaskHost(ctx context.Context, th TaskHost) error {
	res, err := s.exec(ctx, `UPDATE task_hosts SET state = ?, progress = ?, message = ?, result = ?, updated_at = ?
		WHERE task_id = ? AND host_id = ? AND state NOT IN (?, ?, ?, ?)`,
		th.State, th.Progress, th.Message, string(th.Result), ms(s.Now()), th.TaskID, th.HostID,
		TaskSucceeded, TaskFailed, TaskRejected, TaskExpired)
	return affectedOne(res, err, "open task "+th.TaskID+" on host "+th.HostID)
}

// StaleRunning is how long a running task may go without a progress report before its expiry
// ends it: long tasks keep reporting progress, a host that died mid-task stops.
const StaleRunning = 10 * time.Minute

// ExpireTasks ends the unfinished host states of tasks past their expiry: pending or dispatched
// (the host never took the task) and running without a report for StaleRunning (the host died
// mid-task and never came back). It returns how many changed.
func (s *Store) ExpireTasks(ctx context.Context) (int64, error) {
	now := s.Now()
	res, err := s.exec(ctx, `UPDATE task_hosts SET state = ?, message = 'the host did not finish the task before it expired', updated_at = ?
		WHERE (state IN (?, ?) OR (state = ? AND updated_at < ?)) AND task_id IN (SELECT id FROM tasks WHERE expires_at <= ?)`,
		TaskExpired, ms(now), TaskPending, TaskDispatched, TaskRunning, ms(now.Add(-StaleRunning)), ms(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// RequeueDispatched puts tasks dispatched to hostID or running there back to pending; used when
// a host reconnects, since the stream that carried them, or the agent running them, may have
// died. An agent still running a task it is sent again ignores the repeat.
func (s *Store) RequeueDispatched(ctx context.Context, hostID string) error {
	_, err := s.exec(ctx, `UPDATE task_hosts SET state = ? WHERE host_id = ? AND state IN (?, ?)`, TaskPending, hostID, TaskDispatched, TaskRunning)
	return err
}
