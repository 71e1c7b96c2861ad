package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// FileWatch reports files that were written and closed under a set of directories, for
// real-time scanning. It uses fanotify mount marks (every file closed after writing on the
// mounts holding the directories, filtered to the directories and their subtrees), and falls
// back to inotify on each directory of the trees when fanotify is not permitted. It only tells
// which files changed: it never opens them for the caller or blocks the writer.
type FileWatch struct {
	dirs    []string
	mode    string // "fanotify" or "inotify"
	fd      int
	events  atomic.Uint64
	dropped atomic.Uint64
	status  func(finding.ComponentState)
	name    string
	watches map[int]string // inotify watch descriptors
}

// WatchOptions tunes a FileWatch.
type WatchOptions struct {
	// Name is the component name for Status (default "realtime").
	Name string
	// Status, if set, receives the watch's health. Agent.SetComponent fits.
	Status func(finding.ComponentState)
	// NoFanotify forces the inotify fallback (tests).
	NoFanotify bool
}

// OpenFileWatch starts watching dirs.
func OpenFileWatch(dirs []string, opt WatchOptions) (*FileWatch, error) {
	if opt.Name == "" {
		opt.Name = "realtime"
	}
	w := &FileWatch{status: opt.Status, name: opt.Name}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		w.dirs = append(w.dirs, filepath.Clean(abs))
	}
	if len(w.dirs) == 0 {
		return nil, &UnavailableError{Source: opt.Name, Reason: "no directories to watch"}
	}
	var ferr error
	if !opt.NoFanotify {
		if ferr = w.openFanotify(); ferr == nil {
			return w, nil
		}
	}
	if err := w.openInotify(); err != nil {
		return nil, &UnavailableError{Source: opt.Name, Reason: fmt.Sprintf("fanotify: %v; inotify: %v", ferr, err), Err: err}
	}
	return w, nil
}

// Mode names the kernel interface in use: "fanotify" or "inotify".
func (w *FileWatch) Mode() string { return w.mode }

func (w *FileWatch) openFanotify() error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	for _, d := range w.dirs {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, d); err != nil {
			unix.Close(fd)
			return fmt.Errorf("fanotify_mark %s: %w", d, err)
		}
	}
	w.fd, w.mode = fd, "fanotify"
	return nil
}

func (w *FileWatch) openInotify() error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return err
	}
	w.fd, w.mode, w.watches = fd, "inotify", map[int]string{}
	for _, d := range w.dirs {
		w.addTree(d)
	}
	if len(w.watches) == 0 {
		unix.Close(fd)
		return errors.New("none of the directories could be watched")
	}
	return nil
}

// addTree watches d and every directory below it (inotify is not recursive).
func (w *FileWatch) addTree(d string) {
	filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		wd, err := unix.InotifyAddWatch(w.fd, p, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW)
		if err == nil {
			w.watches[wd] = p
		}
		return nil
	})
}

// under reports whether path is inside one of the watched trees.
func (w *FileWatch) under(path string) bool {
	for _, d := range w.dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// Run delivers the path of each file closed after writing (or moved in, with inotify) until
// ctx ends. out is called from this goroutine; a slow out delays nothing in the kernel but the
// queue (fanotify's overflow is counted as dropped).
func (w *FileWatch) Run(ctx context.Context, out func(path string) error) error {
	defer unix.Close(w.fd)
	w.report(finding.StateRunning, "watching "+strings.Join(w.dirs, ", ")+" with "+w.mode)
	buf := make([]byte, 64<<10)
	pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	for ctx.Err() == nil {
		n, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		nr, err := unix.Read(w.fd, buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("read %s events: %w", w.mode, err)
		}
		var paths []string
		if w.mode == "fanotify" {
			paths = w.decodeFanotify(buf[:nr])
		} else {
			paths = w.decodeInotify(buf[:nr])
		}
		for _, p := range paths {
			w.events.Add(1)
			if err := out(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *FileWatch) decodeFanotify(b []byte) []string {
	var out []string
	const metaLen = int(unsafe.Sizeof(unix.FanotifyEventMetadata{}))
	for len(b) >= metaLen {
		m := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&b[0]))
		if m.Event_len < uint32(metaLen) || int(m.Event_len) > len(b) {
			break
		}
		if m.Mask&unix.FAN_Q_OVERFLOW != 0 {
			w.dropped.Add(1)
			w.report(finding.StateDegraded, "event queue overflowed: some written files were not scanned")
		}
		if m.Fd >= 0 {
			p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(m.Fd)))
			unix.Close(int(m.Fd))
			if err == nil && w.under(p) {
				out = append(out, p)
			}
		}
		b = b[m.Event_len:]
	}
	return out
}

func (w *FileWatch) decodeInotify(b []byte) []string {
	var out []string
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		dir := w.watches[int(ev.Wd)]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			w.dropped.Add(1)
			w.report(finding.StateDegraded, "event queue overflowed: some written files were not scanned")
		case dir == "" || name == "":
		case ev.Mask&unix.IN_ISDIR != 0 && ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
			w.addTree(filepath.Join(dir, name)) // a new subdirectory: watch it too
		case ev.Mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0:
			out = append(out, filepath.Join(dir, name))
		}
		b = b[end:]
	}
	return out
}

// Stats returns how many file events were delivered and how many overflows were seen.
func (w *FileWatch) Stats() (events, overflows uint64) { return w.events.Load(), w.dropped.Load() }

func (w *FileWatch) report(state, reason string) {
	if w.status != nil {
		w.status(finding.ComponentState{Name: w.name, Kind: "source", State: state, Reason: reason})
	}
}
