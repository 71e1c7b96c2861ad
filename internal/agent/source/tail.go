package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Line is one line of a followed text file.
//
// Ownership: Text belongs to the receiver. The tailer never writes to it again after handing
// it over, so it may be kept, sent on a channel or appended to (its capacity ends at its
// length) without copying. Small lines are carved out of shared 8 KiB blocks, so keeping one
// line keeps at most its block alive; lines over 1 KiB get their own allocation.
type Line struct {
	// Text is the line without its '\n', exactly as written: no '\r' removal, no UTF-8
	// validation (invalid bytes and NULs are delivered as they are).
	Text []byte
	// Path is the followed path. After a rotation the line may come from the file that used
	// to be at Path.
	Path string
	// Offset is the offset just after this line (after its '\n') in the file it came from.
	Offset int64
	// Truncated is set when the line was longer than TailOptions.MaxLineBytes and Text holds
	// only its first MaxLineBytes bytes; it is also counted in FollowStats.Overlong.
	Truncated bool
}

// Tailer follows a text log file (auth.log, secure) and delivers each complete line exactly
// once, in order, across appends and rotations.
//
// Behaviour:
//   - Start: with a saved State for the same file (device and inode, not shorter, same first
//     bytes), at its offset. With no state, at the end of the file (TailOptions.FromStart
//     changes that). A file that is not there yet is waited for (Status reports
//     unavailable) and read from its start when it appears. If the saved file was rotated
//     while the agent was down and is still in the same directory under a name starting with
//     the base name (auth.log.1, auth.log-20250101), its unread end is delivered first.
//   - Appends are seen at once through inotify (Linux), else by polling every PollInterval.
//   - Rename rotation (logrotate's default "create"): when the path names another file, the
//     old file is read to its end, then the new one from offset 0; the old one is still read
//     for RotateWait, because writers keep writing to it until they reopen their log.
//   - Deletion: as rotation; a file created later at the path is read from offset 0.
//   - copytruncate (same file, shorter than the read position, or its first bytes changed):
//     reading restarts at offset 0. Lines written between logrotate's copy and its truncate
//     are lost; that is inherent to copytruncate.
//   - A last line without '\n' is held until it is completed. It is delivered as it is when
//     its file is left (truncated, or RotateWait after a rotation). A line is never split.
//   - A line longer than MaxLineBytes is delivered once, cut, with Truncated set.
//
// Ordering: lines of one file are delivered in file order, and a rotated file's lines written
// before the switch come before the new file's. Lines a writer adds to the old file after the
// switch (before it reopens its log) are delivered when seen, possibly after newer lines of the
// new file. State describes the current file only; such late lines in a rotated file are not
// covered by it.
type Tailer struct {
	f    *follower
	slab []byte
}

// OpenTail prepares to follow path, resuming from st when it describes the file now there
// (st may be nil, or a zero State: no saved position). A missing or unreadable file is not an
// error: Run waits for it and reports through opt.Status. OpenTail fails only for an empty
// path or a state saved for another path.
func OpenTail(path string, st *State, opt TailOptions) (*Tailer, error) {
	opt.defaults("file", path)
	f, err := newFollower(path, st, opt, format{
		kind:      "file",
		newFramer: newLineFramer(opt.MaxLineBytes),
		endStart:  lineEndStart(opt.MaxLineBytes),
		align:     func(off int64) int64 { return off },
	})
	if err != nil {
		return nil, err
	}
	return &Tailer{f: f}, nil
}

// Run follows the file until ctx ends, calling out with each line from this goroutine. It
// returns nil when ctx ends, or the error out returned (the line out failed on counts as not
// delivered: State still points before it). Run may be called once; it closes the files when
// it returns.
func (t *Tailer) Run(ctx context.Context, out func(Line) error) error {
	path := t.f.path
	return t.f.run(ctx, func(unit []byte, end int64, truncated bool) error {
		return out(Line{Text: t.own(unit), Path: path, Offset: end, Truncated: truncated})
	})
}

const (
	slabSize   = 8 << 10
	slabMaxCut = 1 << 10
)

// own copies a line into memory the receiver owns.
func (t *Tailer) own(b []byte) []byte {
	if len(b) > slabMaxCut {
		return append([]byte(nil), b...)
	}
	if cap(t.slab)-len(t.slab) < len(b) {
		t.slab = make([]byte, 0, slabSize)
	}
	i := len(t.slab)
	t.slab = append(t.slab, b...)
	return t.slab[i:len(t.slab):len(t.slab)]
}

// State is the position after the last line whose out call returned nil, in the file now at
// the path. It is safe to call from any goroutine, including from inside out (where it does
// not yet include the line being handled). Save it with SaveStates after the consumer has
// processed the lines up to it; resuming from it neither re-delivers nor skips lines.
func (t *Tailer) State() State { return t.f.state() }

// Stats returns counters since OpenTail. Safe from any goroutine.
func (t *Tailer) Stats() FollowStats { return t.f.statsSnapshot() }

// Close releases the open file when Run was never called. Run closes everything itself when
// it returns; Close must not be called while Run is running.
func (t *Tailer) Close() error {
	if !t.f.running.Load() {
		t.f.close()
	}
	return nil
}

type stateFile struct {
	Version int     `json:"version"`
	Files   []State `json:"files"`
}

// SaveStates writes the states to path atomically: a temporary file in the same directory is
// written and fsynced, renamed over path, and the directory is fsynced, so a crash leaves
// either the old or the new content. The caller decides when to save — after its consumer
// has processed the lines the states cover.
func SaveStates(path string, states []State) error {
	b, err := json.MarshalIndent(stateFile{Version: 1, Files: states}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save source states: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save source states: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save source states: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save source states: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save source states: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LoadStates reads states written by SaveStates. A missing file is no states and no error
// (first run).
func LoadStates(path string) ([]State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load source states: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("load source states %s: %w", path, err)
	}
	if sf.Version != 1 {
		return nil, fmt.Errorf("load source states %s: unknown version %d", path, sf.Version)
	}
	return sf.Files, nil
}

// FindState returns the state saved for path, or nil.
func FindState(states []State, path string) *State {
	for i := range states {
		if states[i].Path == path {
			return &states[i]
		}
	}
	return nil
}
