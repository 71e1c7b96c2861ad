//go:build !linux

package source

import "errors"

// watcher is unavailable off Linux; followers poll.
type watcher struct{}

func newWatcher(dir, base string, wake chan<- struct{}) (*watcher, error) {
	return nil, errors.New("inotify is not available on this platform")
}

func (w *watcher) addFile(path string) int { return -1 }
func (w *watcher) remove(wd int)           {}
func (w *watcher) dead() bool              { return true }
func (w *watcher) close()                  {}
