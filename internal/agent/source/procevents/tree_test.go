package procevents

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// TestTreeKeepsRecentlyDeadParents: a periodic sweep between a parent's event and its child's
// (both completed after the processes exited) must not cut the child's ancestry.
func TestTreeKeepsRecentlyDeadParents(t *testing.T) {
	root := t.TempDir() // a /proc where only pid 1 runs
	if err := os.Mkdir(filepath.Join(root, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr := newTree(procfs{root: root}, 1000)
	now := time.Unix(1_800_000_000, 0)
	tr.exec(behavior.Process{PID: 1, Exe: "/sbin/init"}, now)
	tr.exec(behavior.Process{PID: 30, PPID: 1, Exe: "/usr/sbin/nginx"}, now)
	tr.exec(behavior.Process{PID: 40, PPID: 30, Exe: "/usr/bin/dash"}, now)

	tr.sweep(now.Add(time.Second))
	if a := tr.ancestors(40, now.Add(time.Second)); len(a) != 3 || a[1].Exe != "/usr/sbin/nginx" {
		t.Fatalf("ancestors right after a sweep: %+v", a)
	}
	tr.sweep(now.Add(time.Second + deadGrace + time.Millisecond))
	if _, ok := tr.procs[30]; ok {
		t.Error("a process dead and not looked at for longer than the grace is still known")
	}
	if _, ok := tr.procs[1]; !ok {
		t.Error("a running process was forgotten")
	}
}
