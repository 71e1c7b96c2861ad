//go:build linux

package source

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher turns inotify events about one followed path into wake-ups. It is only a hint: the
// follower works out what happened from stat calls, and it also polls, so a lost or coalesced
// event costs latency, never data.
//
// It watches the directory (creation, rename and deletion of the path, and writes to files in
// it whose name starts with the path's base name, which covers the rotated copy) and, while a
// file is open, the file itself (which covers a path that is a symlink into another directory).
type watcher struct {
	fd     int
	file   *os.File
	dirWD  int
	base   string
	wake   chan<- struct{}
	broken atomic.Bool

	mu   sync.Mutex
	refs map[int]int // file watch descriptor -> open files using it
}

const (
	dirMask  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	fileMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF | unix.IN_CLOSE_WRITE
)

func newWatcher(dir, base string, wake chan<- struct{}) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	wd, err := unix.InotifyAddWatch(fd, dir, dirMask)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("inotify_add_watch", err)
	}
	// The descriptor is non-blocking, so os.File registers it with the runtime poller: Read
	// parks the goroutine instead of a thread, and Close wakes it.
	w := &watcher{fd: fd, file: os.NewFile(uintptr(fd), "inotify"), dirWD: wd, base: base, wake: wake, refs: map[int]int{}}
	go w.read()
	return w, nil
}

func (w *watcher) read() {
	buf := make([]byte, 16<<10)
	for {
		n, err := w.file.Read(buf)
		if err != nil || n <= 0 {
			w.broken.Store(true)
			w.signal()
			return
		}
		relevant := false
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				break
			}
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:end]), "\x00")
			off = end
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				relevant = true
			case int(ev.Wd) == w.dirWD:
				if ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
					// The directory itself went away: the follower rebuilds the watcher.
					w.broken.Store(true)
					relevant = true
				} else if strings.HasPrefix(name, w.base) {
					relevant = true
				}
			default:
				relevant = true
			}
		}
		if relevant {
			w.signal()
		}
	}
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// addFile watches the file now at path; it returns the watch descriptor, or -1.
func (w *watcher) addFile(path string) int {
	if w == nil {
		return -1
	}
	wd, err := unix.InotifyAddWatch(w.fd, path, fileMask)
	if err != nil {
		return -1
	}
	w.mu.Lock()
	w.refs[wd]++
	w.mu.Unlock()
	return wd
}

// remove drops one use of a file watch (the same inode watched twice shares a descriptor).
func (w *watcher) remove(wd int) {
	if w == nil || wd < 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refs[wd]--; w.refs[wd] > 0 {
		return
	}
	delete(w.refs, wd)
	unix.InotifyRmWatch(w.fd, uint32(wd))
}

// dead reports that the watcher no longer sees events and should be replaced.
func (w *watcher) dead() bool { return w == nil || w.broken.Load() }

func (w *watcher) close() {
	if w != nil {
		w.file.Close()
	}
}
