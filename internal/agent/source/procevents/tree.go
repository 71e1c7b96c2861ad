package procevents

import (
	"slices"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
)

// maxDepth bounds an ancestor chain.
const maxDepth = 16

// tree remembers every process by PID as its latest exec showed it, so an event's ancestry is
// the parents' identities at the time they started (a parent that later gained root through an
// exploit still shows the unprivileged user it ran as). Processes started before the agent are
// read from /proc on first sight.
type tree struct {
	fs    procfs
	procs map[int32]*node
	max   int
}

type node struct {
	p    behavior.Process
	seen time.Time
}

func newTree(fs procfs, max int) *tree {
	return &tree{fs: fs, procs: map[int32]*node{}, max: max}
}

// exec records a process image; the event carries a copy.
func (t *tree) exec(p behavior.Process, now time.Time) {
	if p.ContainerID == "" {
		if parent := t.procs[p.PPID]; parent != nil {
			p.ContainerID = parent.p.ContainerID // the process ended before its cgroup was read
		}
	}
	if len(t.procs) >= t.max {
		t.sweep(now)
	}
	t.procs[p.PID] = &node{p: p, seen: now}
}

// get returns the process with pid, reading /proc when it is not known yet.
func (t *tree) get(pid int32, now time.Time) (behavior.Process, bool) {
	if n := t.procs[pid]; n != nil {
		n.seen = now
		return n.p, true
	}
	if pid <= 0 {
		return behavior.Process{}, false
	}
	p, ok := t.fs.process(pid)
	if !ok {
		return behavior.Process{}, false
	}
	if len(t.procs) >= t.max {
		t.sweep(now)
	}
	t.procs[pid] = &node{p: p, seen: now}
	return p, true
}

// ancestors walks the parent links from ppid.
func (t *tree) ancestors(ppid int32, now time.Time) []behavior.Process {
	var out []behavior.Process
	seen := map[int32]bool{}
	for pid := ppid; pid > 0 && len(out) < maxDepth && !seen[pid]; {
		seen[pid] = true
		p, ok := t.get(pid, now)
		if !ok {
			break
		}
		out = append(out, p)
		pid = p.PPID
	}
	return out
}

// deadGrace is how long a process that no longer runs stays known after it was last looked
// at: events wait (Config.Delay, and any backlog) before they are completed, and a child's
// event completed after its parent exited still needs the parent.
const deadGrace = 10 * time.Second

// sweep forgets processes that no longer run and were not looked at for deadGrace, then, if the
// table is still full, those not looked at for the longest time.
func (t *tree) sweep(now time.Time) {
	for pid, n := range t.procs {
		if now.Sub(n.seen) > deadGrace && !t.fs.alive(pid) {
			delete(t.procs, pid)
		}
	}
	if len(t.procs) < t.max {
		return
	}
	// Still full of live processes: forget the tenth not looked at for the longest time.
	ages := make([]time.Time, 0, len(t.procs))
	for _, n := range t.procs {
		ages = append(ages, n.seen)
	}
	slices.SortFunc(ages, time.Time.Compare)
	cut := ages[len(ages)/10]
	for pid, n := range t.procs {
		if !n.seen.After(cut) {
			delete(t.procs, pid)
		}
	}
}
