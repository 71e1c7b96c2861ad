package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// collector records what a Tailer delivers. It keeps the delivered slices without copying:
// the tests thereby also check the ownership rule (the tailer never reuses a delivered Text).
type collector struct {
	mu     sync.Mutex
	lines  []Line
	states []finding.ComponentState
}

func (c *collector) out(l Line) error {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
	return nil
}

func (c *collector) status(cs finding.ComponentState) {
	c.mu.Lock()
	c.states = append(c.states, cs)
	c.mu.Unlock()
}

func (c *collector) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.lines))
	for i, l := range c.lines {
		out[i] = string(l.Text)
	}
	return out
}

func (c *collector) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

func (c *collector) lastState() finding.ComponentState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) == 0 {
		return finding.ComponentState{}
	}
	return c.states[len(c.states)-1]
}

type running struct {
	t      *Tailer
	c      *collector
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run: %v", r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func startTail(t testing.TB, path string, st *State, opt TailOptions) *running {
	t.Helper()
	c := &collector{}
	if opt.Status == nil {
		opt.Status = c.status
	}
	tl, err := OpenTail(path, st, opt)
	if err != nil {
		t.Fatalf("OpenTail: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: tl, c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = tl.Run(ctx, c.out)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitLines(t testing.TB, c *collector, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.n() < len(want) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // anything extra shows up too
	if got := c.texts(); !equalStrings(got, want) {
		t.Fatalf("lines:\n got %q\nwant %q", got, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// modes runs a test with inotify and with polling only.
func modes(t *testing.T, fn func(t *testing.T, opt TailOptions)) {
	for _, m := range []struct {
		name string
		opt  TailOptions
	}{
		{"inotify", TailOptions{RotateWait: 50 * time.Millisecond}},
		{"poll", TailOptions{NoInotify: true, PollInterval: 20 * time.Millisecond, RotateWait: 50 * time.Millisecond}},
	} {
		t.Run(m.name, func(t *testing.T) { fn(t, m.opt) })
	}
}

func TestTailer(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, path string, opt TailOptions)
	}{
		{"append from end", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "old 1\nold 2\n")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "new 1\nnew 2\n")
			waitLines(t, r.c, "new 1", "new 2")
			appendFile(t, path, "new 3\n")
			waitLines(t, r.c, "new 1", "new 2", "new 3")
			if st := r.t.State(); st.Offset != int64(len("old 1\nold 2\nnew 1\nnew 2\nnew 3\n")) {
				t.Errorf("state offset %d", st.Offset)
			}
			if cs := r.c.lastState(); cs.State != finding.StateRunning || cs.Name != "file:"+path || cs.Kind != "source" {
				t.Errorf("status %+v", cs)
			}
		}},
		{"from start", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "a\nb\n")
			opt.FromStart = true
			r := startTail(t, path, nil, opt)
			waitLines(t, r.c, "a", "b")
		}},
		{"from end keeps the line being written whole", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "old\npart")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "ial\nnext\n")
			waitLines(t, r.c, "partial", "next")
		}},
		{"line offsets", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "ab\n\ncde\n")
			waitLines(t, r.c, "ab", "", "cde")
			r.c.mu.Lock()
			defer r.c.mu.Unlock()
			for i, want := range []int64{3, 4, 8} {
				if l := r.c.lines[i]; l.Offset != want || l.Path != path || l.Truncated {
					t.Errorf("line %d: %+v, want offset %d", i, l, want)
				}
			}
		}},
		{"rename rotation", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "1\n")
			waitLines(t, r.c, "1")
			old := r.t.State()
			appendFile(t, path, "2\n")
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path+".1", "3\n") // the writer has not reopened its log yet
			writeFile(t, path, "4\n")
			waitFor(t, "switch to new file", 5*time.Second, func() bool { return r.t.State().Inode != old.Inode && r.t.State().Inode != 0 })
			appendFile(t, path+".1", "5\n") // still within RotateWait
			appendFile(t, path, "6\n")
			deadline := time.Now().Add(5 * time.Second)
			for r.c.n() < 6 && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			got := r.c.texts()
			// 1-3 were in the old file before the switch, so they come first, and 4 comes
			// before 6 (same file); 5 was written to the old file after the switch, so it may
			// come anywhere after 3.
			rest := strings.Join(got[3:], ",")
			if len(got) != 6 || strings.Join(got[:3], ",") != "1,2,3" || (rest != "4,5,6" && rest != "4,6,5" && rest != "5,4,6") {
				t.Fatalf("lines %q", got)
			}
			if st := r.t.Stats(); st.Rotations != 1 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"partial line at rotation is delivered whole after RotateWait", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "a\nunfinis")
			waitLines(t, r.c, "a")
			appendFile(t, path, "hed")
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "b\n")
			waitLines(t, r.c, "a", "b", "unfinished")
		}},
		{"copytruncate", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "1\n2\n")
			waitLines(t, r.c, "1", "2")
			b, _ := os.ReadFile(path)
			writeFile(t, path+".1", string(b))
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendFile(t, path, "3\n")
			waitLines(t, r.c, "1", "2", "3")
			if st := r.t.Stats(); st.Truncations != 1 || st.Rotations != 0 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"truncate and regrow past the offset", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "first line\n")
			waitLines(t, r.c, "first line")
			// In one write the file is replaced by longer content: only the changed first
			// bytes show it is not an append.
			writeFile(t, path, "replaced content, longer than before\nx\n")
			waitLines(t, r.c, "first line", "replaced content, longer than before", "x")
			if st := r.t.Stats(); st.Truncations != 1 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"delete and recreate", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "1\n")
			waitLines(t, r.c, "1")
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "unavailable status", 5*time.Second, func() bool { return r.c.lastState().State == finding.StateUnavailable })
			if st := r.t.State(); st.Inode != 0 || st.Offset != 0 {
				t.Errorf("state while missing: %+v", st)
			}
			writeFile(t, path, "2\n")
			waitLines(t, r.c, "1", "2")
			waitFor(t, "running status", 5*time.Second, func() bool { return r.c.lastState().State == finding.StateRunning })
		}},
		{"missing at start", func(t *testing.T, path string, opt TailOptions) {
			r := startTail(t, path, nil, opt)
			waitFor(t, "unavailable status", 5*time.Second, func() bool { return r.c.lastState().State == finding.StateUnavailable })
			if cs := r.c.lastState(); !strings.Contains(cs.Reason, "waiting for") {
				t.Errorf("reason %q", cs.Reason)
			}
			writeFile(t, path, "first\n") // a new file is read from its start
			waitLines(t, r.c, "first")
			waitFor(t, "running status", 5*time.Second, func() bool { return r.c.lastState().State == finding.StateRunning })
		}},
		{"missing directory at start", func(t *testing.T, path string, opt TailOptions) {
			path = filepath.Join(filepath.Dir(path), "later", "auth.log")
			r := startTail(t, path, nil, opt)
			time.Sleep(30 * time.Millisecond)
			if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "x\n")
			waitLines(t, r.c, "x")
		}},
		{"partial line is held", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "abc")
			time.Sleep(100 * time.Millisecond)
			if n := r.c.n(); n != 0 {
				t.Fatalf("partial line delivered: %q", r.c.texts())
			}
			if st := r.t.State(); st.Offset != 0 {
				t.Errorf("state covers a partial line: %+v", st)
			}
			appendFile(t, path, "def\n")
			waitLines(t, r.c, "abcdef")
		}},
		{"overlong line", func(t *testing.T, path string, opt TailOptions) {
			opt.MaxLineBytes = 16
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			long := strings.Repeat("x", 40)
			appendFile(t, path, long[:10]) // arrives in pieces
			time.Sleep(30 * time.Millisecond)
			appendFile(t, path, long[10:]+"\nshort\n"+strings.Repeat("y", 100)+"\n")
			waitLines(t, r.c, long[:16], "short", strings.Repeat("y", 16))
			r.c.mu.Lock()
			tr := []bool{r.c.lines[0].Truncated, r.c.lines[1].Truncated, r.c.lines[2].Truncated}
			off := r.c.lines[0].Offset
			r.c.mu.Unlock()
			if !tr[0] || tr[1] || !tr[2] || off != 41 {
				t.Errorf("truncated flags %v, offset %d", tr, off)
			}
			if st := r.t.Stats(); st.Overlong != 2 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"binary and invalid UTF-8 pass through", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			garbage := "\x00\xff\xfe\xc3\x28 \x1b[31m\r"
			appendFile(t, path, garbage+"\n\x00\n")
			waitLines(t, r.c, garbage, "\x00")
		}},
		{"burst of 100000 lines", func(t *testing.T, path string, opt TailOptions) {
			writeFile(t, path, "")
			r := startTail(t, path, nil, opt)
			const n = 100000
			var b bytes.Buffer
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				fmt.Fprintf(&b, "Jan  1 00:00:00 host sshd[%d]: Failed password for root from 192.0.2.1 port 22 ssh2\n", i)
				if b.Len() > 100_000 { // writes end mid-line
					k := b.Len() - 17
					f.Write(b.Bytes()[:k])
					rest := append([]byte(nil), b.Bytes()[k:]...)
					b.Reset()
					b.Write(rest)
				}
			}
			f.Write(b.Bytes())
			f.Close()
			waitFor(t, "all lines", 20*time.Second, func() bool { return r.c.n() >= n })
			got := r.c.texts()
			if len(got) != n {
				t.Fatalf("%d lines", len(got))
			}
			for i, s := range got {
				if want := fmt.Sprintf("sshd[%d]:", i); !strings.Contains(s, want) {
					t.Fatalf("line %d = %q", i, s)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			modes(t, func(t *testing.T, opt TailOptions) {
				tc.run(t, filepath.Join(t.TempDir(), "auth.log"), opt)
			})
		})
	}
}

func TestTailerLatency(t *testing.T) {
	modes(t, func(t *testing.T, opt TailOptions) {
		opt.PollInterval = 0 // the default 250 ms when polling
		path := filepath.Join(t.TempDir(), "auth.log")
		writeFile(t, path, "")
		r := startTail(t, path, nil, opt)
		time.Sleep(50 * time.Millisecond)
		var worst time.Duration
		for i := range 5 {
			start := time.Now()
			appendFile(t, path, fmt.Sprintf("line %d\n", i))
			waitFor(t, "line", 2*time.Second, func() bool { return r.c.n() > i })
			worst = max(worst, time.Since(start))
			time.Sleep(time.Duration(i) * 37 * time.Millisecond)
		}
		t.Logf("worst delivery latency %v", worst)
		if worst > 500*time.Millisecond {
			t.Errorf("worst latency %v", worst)
		}
	})
}

const anyCount = ^uint64(0)

// TestTailerResume checks that a restarted tailer neither re-delivers nor skips lines.
func TestTailerResume(t *testing.T) {
	type step func(t *testing.T, path string)
	tests := []struct {
		name        string
		whileDown   step
		want        []string
		truncations uint64
	}{
		{"appended while down", func(t *testing.T, path string) {
			appendFile(t, path, "3\n4\n")
		}, []string{"3", "4"}, 0},
		{"nothing new", func(t *testing.T, path string) {}, nil, 0},
		{"partial line completed while down", func(t *testing.T, path string) {
			appendFile(t, path, "partial ")
		}, []string{"half done"}, 0},
		{"rotated while down", func(t *testing.T, path string) {
			appendFile(t, path, "3\n")
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "4\n")
		}, []string{"3", "4"}, 0},
		{"rotated with dateext while down, new file not yet created", func(t *testing.T, path string) {
			appendFile(t, path, "3\n")
			if err := os.Rename(path, path+"-20250101"); err != nil {
				t.Fatal(err)
			}
		}, []string{"3"}, 0},
		{"truncated while down", func(t *testing.T, path string) {
			writeFile(t, path, "n\n") // same inode, shorter
		}, []string{"n"}, 1},
		{"rewritten in place while down", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("different and longer content\n")
			f.Close()
		}, []string{"different and longer content"}, 1},
		{"replaced by another file while down", func(t *testing.T, path string) {
			os.Remove(path)
			writeFile(t, path, "other\n")
		}, []string{"other"}, anyCount}, // the file system may reuse the inode: then only the head hash tells
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "auth.log")
			statePath := filepath.Join(dir, "state.json")
			writeFile(t, path, "")
			opt := TailOptions{RotateWait: 30 * time.Millisecond}
			r := startTail(t, path, nil, opt)
			appendFile(t, path, "1\n2\n")
			waitLines(t, r.c, "1", "2")
			r.stop(t)
			if err := SaveStates(statePath, []State{r.t.State()}); err != nil {
				t.Fatal(err)
			}
			tc.whileDown(t, path)

			states, err := LoadStates(statePath)
			if err != nil {
				t.Fatal(err)
			}
			st := FindState(states, path)
			if st == nil || st.Offset != 4 || st.Inode == 0 || st.HeadLen != 4 {
				t.Fatalf("saved state %+v", st)
			}
			r2 := startTail(t, path, st, opt)
			if tc.name == "partial line completed while down" {
				appendFile(t, path, "done\n")
				tc.want = []string{"partial done"}
			}
			waitLines(t, r2.c, tc.want...)
			if st := r2.t.Stats(); tc.truncations != anyCount && st.Truncations != tc.truncations {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestTailerStateForOtherPath(t *testing.T) {
	if _, err := OpenTail("/var/log/a", &State{Path: "/var/log/b"}, TailOptions{}); err == nil {
		t.Fatal("state for another path accepted")
	}
	if _, err := OpenTail("", nil, TailOptions{}); err == nil {
		t.Fatal("empty path accepted")
	}
	tl, err := OpenTail(filepath.Join(t.TempDir(), "x"), &State{}, TailOptions{}) // zero state = none
	if err != nil {
		t.Fatal(err)
	}
	tl.Close()
}

func TestTailerOutError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.log")
	writeFile(t, path, "1\n2\n3\n")
	tl, err := OpenTail(path, nil, TailOptions{FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("consumer full")
	var got []string
	err = tl.Run(context.Background(), func(l Line) error {
		if string(l.Text) == "2" {
			return boom
		}
		got = append(got, string(l.Text))
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v", err)
	}
	// The failed line is not delivered: the state points after "1".
	if st := tl.State(); st.Offset != 2 || len(got) != 1 {
		t.Fatalf("state %+v, got %q", st, got)
	}
	if err := tl.Run(context.Background(), func(Line) error { return nil }); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestTailerNotRegular(t *testing.T) {
	dir := t.TempDir()
	c := &collector{}
	r := startTail(t, dir, nil, TailOptions{Status: c.status, PollInterval: 10 * time.Millisecond})
	_ = r
	waitFor(t, "unavailable", 5*time.Second, func() bool {
		cs := c.lastState()
		return cs.State == finding.StateUnavailable && strings.Contains(cs.Reason, "not a regular file")
	})
}

func TestStatesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sources.json")
	if st, err := LoadStates(p); err != nil || st != nil {
		t.Fatalf("missing file: %v %v", st, err)
	}
	want := []State{
		{Path: "/var/log/auth.log", Dev: 2049, Inode: 1234, Offset: 99, Size: 120, HeadLen: 99, HeadHash: 1<<64 - 1},
		{Path: "/var/log/wtmp", Dev: 2049, Inode: 77, Offset: 384 * 3, Size: 384 * 3},
	}
	for range 2 { // overwriting works too
		if err := SaveStates(p, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadStates(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	writeFile(t, p, "{not json")
	if _, err := LoadStates(p); err == nil {
		t.Fatal("corrupt file accepted")
	}
	writeFile(t, p, `{"version":9,"files":[]}`)
	if _, err := LoadStates(p); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func TestComponentStateOf(t *testing.T) {
	if cs := ComponentStateOf("journal", nil); cs.State != finding.StateRunning || cs.Kind != "source" {
		t.Errorf("%+v", cs)
	}
	err := fmt.Errorf("wrapped: %w", &UnavailableError{Source: "journal", Reason: "no journald"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatal("not ErrUnavailable")
	}
	if cs := ComponentStateOf("journal", err); cs.State != finding.StateUnavailable || cs.Reason != "no journald" {
		t.Errorf("%+v", cs)
	}
	if cs := ComponentStateOf("journal", errors.New("x")); cs.State != finding.StateDegraded {
		t.Errorf("%+v", cs)
	}
}
