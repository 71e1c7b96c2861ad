package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// This file is the machinery shared by the text tailer and the utmp follower: following one
// path across appends, rotations and truncations, and cutting what is read into units (lines
// or fixed-size records) through a framer.

// Defaults for TailOptions.
const (
	DefaultMaxLineBytes = 64 << 10
	DefaultPollInterval = 250 * time.Millisecond
	DefaultRotateWait   = 5 * time.Second
)

// safetyInterval is how often a follower re-checks its file when inotify is active: events are
// the fast path, the check makes a lost event cost latency instead of data.
const safetyInterval = time.Second

// minStepGap is the least time between two rounds of reading woken by inotify.
const minStepGap = 10 * time.Millisecond

// headMax is how many leading bytes of a file are hashed to recognise it: an inode number can
// be reused after a deletion, and copytruncate keeps it while replacing the content.
const headMax = 1024

const readBufSize = 128 << 10

// TailOptions tunes a Tailer or UtmpFollower. The zero value is ready to use.
type TailOptions struct {
	// FromStart reads a file from its beginning when there is no saved state for it. The
	// default (false) starts at its end, so that the first run of an agent on a host with a
	// 1 GB auth.log does not replay years of history; the line being written at that moment
	// (if any) is still delivered whole. Files that appear after the follower started, and
	// files that replace a rotated one, are always read from their beginning.
	FromStart bool
	// MaxLineBytes caps a delivered line (default 64 KiB). A longer line is delivered once,
	// cut to this length, with Line.Truncated set, and counted in FollowStats.Overlong; the
	// rest of it is skipped. Ignored by UtmpFollower.
	MaxLineBytes int
	// PollInterval is how often the file is checked when inotify cannot be used (default
	// 250 ms). With inotify, changes are seen at once and the file is also checked every
	// second as a safety net.
	PollInterval time.Duration
	// RotateWait is how long a file that was renamed or deleted away from the path is still
	// read after the switch to its successor (default 5 s): a writer such as rsyslog keeps
	// writing to the old file until it is told to reopen. A partial last line of the old
	// file is delivered when this time ends.
	RotateWait time.Duration
	// NoInotify forces polling (for file systems where inotify sees no changes, such as
	// some network and FUSE mounts).
	NoInotify bool
	// Name is the component name for Status (default "file:" or "utmp:" plus the path).
	Name string
	// Status, if set, is called from Run whenever the source's health changes: running,
	// unavailable (waiting for the file to exist or to become readable) or degraded (read
	// errors). Agent.SetComponent fits.
	Status func(finding.ComponentState)
}

func (o *TailOptions) defaults(kind, path string) {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.RotateWait < 0 {
		o.RotateWait = 0
	} else if o.RotateWait == 0 {
		o.RotateWait = DefaultRotateWait
	}
	if o.Name == "" {
		o.Name = kind + ":" + path
	}
}

// State is where a follower is in the file at its path, saved by the caller so that a
// restarted agent resumes without re-delivering. It names the file by device and inode and
// recognises it by a hash of its first bytes, so a rotated or replaced file is not mistaken
// for the one that was being read.
type State struct {
	Path   string `json:"path"`   // the followed path
	Dev    uint64 `json:"dev"`    // device of the file being read (0: none yet, read the file at Path from its start)
	Inode  uint64 `json:"inode"`  // inode of the file being read
	Offset int64  `json:"offset"` // offset after the last delivered line or record
	Size   int64  `json:"size"`   // file size last seen; a smaller file later means it was truncated
	// HeadLen and HeadHash are the length and FNV-1a hash of the file's first bytes (at most
	// 1 KiB).
	HeadLen  int64  `json:"head_len,omitempty"`
	HeadHash uint64 `json:"head_hash,omitempty"`
}

// FollowStats counts what a follower has done since it was opened.
type FollowStats struct {
	Delivered   uint64 // lines or records passed to the callback
	Bytes       uint64 // bytes read from files
	Overlong    uint64 // lines longer than MaxLineBytes, delivered cut short
	Rotations   uint64 // times the path came to name another file or disappeared
	Truncations uint64 // times a file shrank below the read position or its first bytes changed (copytruncate)
	Realigned   uint64 // utmp: saved offsets that were not on a record boundary and were rounded down
	Partial     uint64 // utmp: trailing partial records abandoned when their file was left
}

type followStats struct {
	delivered, bytes, overlong, rotations, truncations, realigned, partial atomic.Uint64
}

// emitFunc receives one unit: its bytes (valid only during the call), the file offset just
// after it, and whether it was cut short.
type emitFunc func(unit []byte, end int64, truncated bool) error

// framer cuts a byte stream, fed in order, into units.
type framer interface {
	feed(data []byte, emit emitFunc) error
	// flush is called when the file is left for good: deliver or drop an incomplete unit.
	flush(emit emitFunc) error
	// resume is the offset after the last delivered unit: where to start again.
	resume() int64
}

type format struct {
	kind string
	// newFramer starts framing at offset start; skip means start is in the middle of a unit.
	newFramer func(start int64, skip bool) framer
	// endStart picks the start offset for "from the end": a unit boundary at or before size.
	endStart func(f *os.File, size int64) (start int64, skip bool)
	// align rounds a saved offset down to a unit boundary.
	align func(off int64) int64
}

// tfile is an open file being followed.
type tfile struct {
	f        *os.File
	dev, ino uint64
	hasID    bool
	pos      int64 // read position
	size     int64 // size at the last check
	mtime    time.Time
	fr       framer
	headLen  int64
	headSum  uint64
	wd       int       // inotify watch, -1 if none
	deadline time.Time // for rotated files: when to stop reading
}

type follower struct {
	path, dir, base string
	opt             TailOptions
	ft              format
	status          statusReporter

	mu     sync.Mutex
	pub    State // identity of the current file; Offset is kept in offset
	offset atomic.Int64
	stats  followStats

	running atomic.Bool
	closed  bool
	cur     *tfile
	old     []*tfile // rotated or deleted files still being read, oldest first
	w       *watcher
	buf     []byte
	errMsg  string // last read error, for the status
}

func newFollower(path string, st *State, opt TailOptions, ft format) (*follower, error) {
	if path == "" {
		return nil, errors.New("source: empty path")
	}
	if st != nil && st.Path != "" && st.Path != path {
		return nil, fmt.Errorf("source: saved state is for %q, not %q", st.Path, path)
	}
	opt.defaults(ft.kind, path)
	f := &follower{
		path: path, dir: filepath.Dir(path), base: filepath.Base(path),
		opt: opt, ft: ft,
		status: statusReporter{name: opt.Name, fn: opt.Status},
	}
	f.pub.Path = path
	f.start(st)
	return f, nil
}

// start decides where to begin, from the saved state and what is on disk now.
func (f *follower) start(st *State) {
	if st != nil && st.Path == "" {
		st = nil
	}
	file, fi, err := f.openPath()
	if err != nil {
		// Not there (yet): whatever appears later is new and is read from its start. If the
		// saved file was rotated away while the agent was down, finish it first.
		if st != nil && st.Inode != 0 {
			f.adoptRotated(st)
		}
		return
	}
	switch {
	case st == nil:
		var start int64
		var skip bool
		if !f.opt.FromStart {
			start, skip = f.ft.endStart(file, fi.Size())
		}
		f.setCur(f.newTFile(file, fi, start, skip))
	case f.resumable(file, fi, st):
		off := f.ft.align(st.Offset)
		if off != st.Offset {
			f.stats.realigned.Add(1)
		}
		f.setCur(f.newTFile(file, fi, off, false))
	default:
		if dev, ino, ok := fileIdentity(fi); ok && dev == st.Dev && ino == st.Inode {
			f.stats.truncations.Add(1) // same file, shorter or rewritten: truncated while we were away
		} else if st.Inode != 0 {
			f.adoptRotated(st)
		}
		f.setCur(f.newTFile(file, fi, 0, false))
	}
}

// resumable says whether the saved state describes file: same identity (when known), not
// shorter than what was read, same first bytes.
func (f *follower) resumable(file *os.File, fi os.FileInfo, st *State) bool {
	if dev, ino, ok := fileIdentity(fi); ok && (dev != st.Dev || ino != st.Inode) {
		return false
	}
	if st.Offset < 0 || fi.Size() < max(st.Offset, st.Size) {
		return false
	}
	return headMatches(file, st.HeadLen, st.HeadHash)
}

// adoptRotated looks in the path's directory for the file the state describes (renamed by a
// rotation while the agent was down) and queues it, so its unread end is delivered before the
// new file at the path.
func (f *follower) adoptRotated(st *State) {
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == f.base || !strings.HasPrefix(e.Name(), f.base) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(f.dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if dev, ino, ok := fileIdentity(fi); !ok || dev != st.Dev || ino != st.Inode {
			continue
		}
		file, err := os.Open(p)
		if err != nil {
			return
		}
		if !f.resumable(file, fi, st) {
			file.Close()
			return
		}
		off := f.ft.align(st.Offset)
		tf := f.newTFile(file, fi, off, false)
		tf.deadline = time.Now().Add(f.opt.RotateWait)
		f.old = append(f.old, tf)
		f.stats.rotations.Add(1)
		return
	}
}

// openPath opens the regular file at the path.
func (f *follower) openPath() (*os.File, os.FileInfo, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", f.path, fi.Mode().Type())
	}
	file, err := os.Open(f.path)
	if err != nil {
		return nil, nil, err
	}
	fi, err = file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	return file, fi, nil
}

func (f *follower) newTFile(file *os.File, fi os.FileInfo, start int64, skip bool) *tfile {
	tf := &tfile{f: file, pos: start, size: fi.Size(), mtime: fi.ModTime(), fr: f.ft.newFramer(start, skip), wd: -1}
	tf.dev, tf.ino, tf.hasID = fileIdentity(fi)
	return tf
}

// setCur makes tf the current file (nil: none) and publishes its identity.
func (f *follower) setCur(tf *tfile) {
	f.cur = tf
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pub = State{Path: f.path}
	if tf == nil {
		f.offset.Store(0)
		return
	}
	f.pub.Dev, f.pub.Inode = tf.dev, tf.ino
	f.pub.Size, f.pub.HeadLen, f.pub.HeadHash = tf.size, tf.headLen, tf.headSum
	f.offset.Store(tf.fr.resume())
}

func (f *follower) publishCur() {
	tf := f.cur
	if tf == nil {
		return
	}
	f.mu.Lock()
	f.pub.Size, f.pub.HeadLen, f.pub.HeadHash = tf.size, tf.headLen, tf.headSum
	f.mu.Unlock()
}

// state returns the position after the last unit whose callback returned nil.
func (f *follower) state() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.pub
	s.Offset = f.offset.Load()
	return s
}

func (f *follower) statsSnapshot() FollowStats {
	s := &f.stats
	return FollowStats{
		Delivered: s.delivered.Load(), Bytes: s.bytes.Load(), Overlong: s.overlong.Load(),
		Rotations: s.rotations.Load(), Truncations: s.truncations.Load(),
		Realigned: s.realigned.Load(), Partial: s.partial.Load(),
	}
}

// run follows the path until ctx ends (nil) or out fails (its error).
func (f *follower) run(ctx context.Context, out emitFunc) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("source: Run may be called only once")
	}
	defer f.close()
	f.buf = make([]byte, readBufSize)
	wake := make(chan struct{}, 1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		f.ensureWatcher(wake)
		last = time.Now()
		if err := f.step(ctx, out); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		interval := f.opt.PollInterval
		if f.w != nil {
			interval = max(interval, safetyInterval)
		}
		for _, tf := range f.old { // wake up to let go of a rotated file on time
			interval = max(min(interval, time.Until(tf.deadline)+time.Millisecond), time.Millisecond)
		}
		timer.Reset(interval)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			// Under a flood of writes every write is an event: read in batches instead, at
			// most one round per minStepGap, which keeps latency far below a second.
			if gap := minStepGap - time.Since(last); gap > 0 {
				timer.Reset(gap)
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		case <-timer.C:
		}
	}
}

func (f *follower) ensureWatcher(wake chan struct{}) {
	if f.opt.NoInotify {
		return
	}
	if f.w != nil && !f.w.dead() {
		return
	}
	if f.w != nil {
		f.w.close()
		f.w = nil
		for _, tf := range f.allFiles() {
			tf.wd = -1
		}
	}
	w, err := newWatcher(f.dir, f.base, wake)
	if err != nil {
		return // polling; retried on the next round
	}
	f.w = w
	if f.cur != nil {
		f.cur.wd = w.addFile(f.path)
	}
}

func (f *follower) allFiles() []*tfile {
	all := append([]*tfile(nil), f.old...)
	if f.cur != nil {
		all = append(all, f.cur)
	}
	return all
}

// step reads everything new: first from rotated files still being drained (they hold older
// lines), then from the current file, switching to a new file at the path when the current
// one was rotated or deleted.
func (f *follower) step(ctx context.Context, out emitFunc) error {
	now := time.Now()
	for i := 0; i < len(f.old); {
		tf := f.old[i]
		if err := f.read(ctx, tf, out); err != nil {
			return err
		}
		if now.Before(tf.deadline) {
			i++
			continue
		}
		if err := tf.fr.flush(f.emitter(tf, out)); err != nil {
			return err
		}
		f.closeFile(tf)
		f.old = append(f.old[:i], f.old[i+1:]...)
	}
	// A few rounds at most: each one that switches files has already read the old one to its
	// end, and the next wake-up carries on.
	for range 3 {
		if f.cur == nil && !f.openNew() {
			break
		}
		if err := f.checkTruncation(f.cur, out); err != nil {
			return err
		}
		if err := f.read(ctx, f.cur, out); err != nil {
			return err
		}
		f.publishCur()
		switched, err := f.checkPath(ctx, out)
		if err != nil {
			return err
		}
		if !switched {
			break
		}
	}
	switch {
	case f.cur != nil && f.errMsg != "":
		f.status.report(finding.StateDegraded, f.errMsg)
	case f.cur != nil || len(f.old) > 0:
		f.status.report(finding.StateRunning, "")
	}
	return nil
}

// openNew opens a file that appeared at the path; it is read from its start.
func (f *follower) openNew() bool {
	file, fi, err := f.openPath()
	if err != nil {
		if len(f.old) == 0 { // right after a rotation the new file may be a moment away
			reason := err.Error()
			if errors.Is(err, fs.ErrNotExist) {
				reason = "waiting for " + f.path + " to exist"
			} else if errors.Is(err, fs.ErrPermission) {
				reason = "cannot read " + f.path + ": permission denied"
			}
			f.status.report(finding.StateUnavailable, reason)
		}
		return false
	}
	tf := f.newTFile(file, fi, 0, false)
	if f.w != nil {
		tf.wd = f.w.addFile(f.path)
	}
	f.setCur(tf)
	return true
}

// checkTruncation notices a file that shrank below the read position or whose first bytes
// changed (copytruncate, or truncation followed by quick regrowth), delivers a held partial
// line, and restarts at offset 0.
func (f *follower) checkTruncation(tf *tfile, out emitFunc) error {
	fi, err := tf.f.Stat()
	if err != nil {
		return nil
	}
	changed := fi.Size() != tf.size || !fi.ModTime().Equal(tf.mtime)
	tf.size, tf.mtime = fi.Size(), fi.ModTime()
	trunc := tf.size < tf.pos
	if !trunc && changed && tf.headLen > 0 {
		trunc = !headMatches(tf.f, tf.headLen, tf.headSum)
	}
	if !trunc {
		return nil
	}
	if err := tf.fr.flush(f.emitter(tf, out)); err != nil {
		return err
	}
	f.stats.truncations.Add(1)
	tf.pos, tf.headLen, tf.headSum = 0, 0, 0
	tf.fr = f.ft.newFramer(0, false)
	if tf == f.cur {
		f.setCur(tf)
	}
	return nil
}

// checkPath notices that the path now names another file, or nothing: the current file was
// rotated or deleted. It is read to its end and kept open for RotateWait; the path's new file,
// if any, is opened on the next round.
func (f *follower) checkPath(ctx context.Context, out emitFunc) (bool, error) {
	fi, err := os.Stat(f.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, nil // cannot tell; keep reading what we have
	}
	if err == nil {
		dev, ino, ok := fileIdentity(fi)
		if !ok || !f.cur.hasID || (dev == f.cur.dev && ino == f.cur.ino) {
			return false, nil
		}
	}
	tf := f.cur
	if err := f.read(ctx, tf, out); err != nil {
		return false, err
	}
	tf.deadline = time.Now().Add(f.opt.RotateWait)
	f.old = append(f.old, tf)
	f.stats.rotations.Add(1)
	f.setCur(nil)
	return true, nil
}

// read reads tf from its read position to the end of the file.
func (f *follower) read(ctx context.Context, tf *tfile, out emitFunc) error {
	emit := f.emitter(tf, out)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := tf.f.ReadAt(f.buf, tf.pos)
		if n > 0 {
			tf.pos += int64(n)
			f.stats.bytes.Add(uint64(n))
			if err := tf.fr.feed(f.buf[:n], emit); err != nil {
				return err
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				f.errMsg = "read " + f.path + ": " + err.Error()
			} else if tf == f.cur {
				f.errMsg = ""
			}
			break
		}
	}
	if tf.headLen < headMax && tf.pos > tf.headLen {
		n := min(tf.pos, headMax)
		if sum, ok := headHash(tf.f, n); ok {
			tf.headLen, tf.headSum = n, sum
		}
	}
	return nil
}

func (f *follower) emitter(tf *tfile, out emitFunc) emitFunc {
	return func(unit []byte, end int64, truncated bool) error {
		if err := out(unit, end, truncated); err != nil {
			return err
		}
		f.stats.delivered.Add(1)
		if truncated {
			f.stats.overlong.Add(1)
		}
		if tf == f.cur {
			f.offset.Store(end)
		}
		return nil
	}
}

func (f *follower) closeFile(tf *tfile) {
	if f.w != nil {
		f.w.remove(tf.wd)
	}
	tf.f.Close()
}

// close releases files and the watcher. State and Stats keep working.
func (f *follower) close() {
	if f.closed {
		return
	}
	f.closed = true
	for _, tf := range f.allFiles() {
		f.closeFile(tf)
	}
	f.old = nil
	f.cur = nil
	if f.w != nil {
		f.w.close()
		f.w = nil
	}
}

func headHash(r io.ReaderAt, n int64) (uint64, bool) {
	if n <= 0 || n > headMax {
		return 0, false
	}
	var b [headMax]byte
	if _, err := r.ReadAt(b[:n], 0); err != nil {
		return 0, false
	}
	h := fnv.New64a()
	h.Write(b[:n])
	return h.Sum64(), true
}

func headMatches(r io.ReaderAt, n int64, sum uint64) bool {
	if n == 0 {
		return true
	}
	got, ok := headHash(r, n)
	return ok && got == sum
}

// lineFramer cuts lines at '\n'. A line longer than max is cut to max and the rest skipped.
type lineFramer struct {
	max   int
	pend  []byte // the incomplete line so far (at most max bytes)
	start int64  // offset of the incomplete line's first byte = after the last delivered line
	pos   int64  // offset after the last byte fed
	over  bool   // the incomplete line is longer than max
	skip  bool   // started inside a line: drop bytes up to the next newline
}

func newLineFramer(limit int) func(start int64, skip bool) framer {
	return func(start int64, skip bool) framer {
		return &lineFramer{max: limit, start: start, pos: start, skip: skip}
	}
}

func (l *lineFramer) resume() int64 { return l.start }

func (l *lineFramer) feed(data []byte, emit emitFunc) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if !l.skip {
				l.hold(data)
			}
			l.pos += int64(len(data))
			return nil
		}
		end := l.pos + int64(i) + 1
		if l.skip {
			l.skip = false
		} else {
			text := data[:i]
			if len(l.pend) > 0 || l.over {
				l.hold(text)
				text = l.pend
			} else if len(text) > l.max {
				text, l.over = text[:l.max], true
			}
			if err := emit(text, end, l.over); err != nil {
				return err
			}
		}
		l.pend, l.over = l.pend[:0], false
		l.start, l.pos = end, end
		data = data[i+1:]
	}
	return nil
}

func (l *lineFramer) hold(b []byte) {
	if room := l.max - len(l.pend); len(b) > room {
		b, l.over = b[:room], true
	}
	l.pend = append(l.pend, b...)
}

func (l *lineFramer) flush(emit emitFunc) error {
	if l.skip || (len(l.pend) == 0 && !l.over) {
		return nil
	}
	if err := emit(l.pend, l.pos, l.over); err != nil {
		return err
	}
	l.pend, l.over = l.pend[:0], false
	l.start = l.pos
	return nil
}

// lineEndStart finds where "from the end" starts for lines: after the last newline, so the
// line being written is delivered whole once complete. Without a newline in the last max
// bytes, it starts at the end and skips to the next newline.
func lineEndStart(limit int) func(*os.File, int64) (int64, bool) {
	return func(f *os.File, size int64) (int64, bool) {
		if size == 0 {
			return 0, false
		}
		from := max(0, size-int64(limit)-1)
		b := make([]byte, size-from)
		n, err := f.ReadAt(b, from)
		if err != nil && !errors.Is(err, io.EOF) {
			return size, false
		}
		if i := bytes.LastIndexByte(b[:n], '\n'); i >= 0 {
			return from + int64(i) + 1, false
		}
		if from == 0 {
			return 0, false
		}
		return size, true
	}
}
