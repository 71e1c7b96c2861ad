package behavior

import (
	"github.com/palisade-cwpp/palisade/internal/finding"
	"slices"
	"time"
)

// partial is a sequence rule matched up to some step, waiting for the next.
type partial struct {
	next    int       // index of the step it waits for
	start   time.Time // time of the first step: the window counts from here
	host    string
	anchors []procKey // ScopeTree: processes of the matched steps and their parents
	keys    []string  // values captured by the steps' key fields
	steps   []stepRecord
}

// stepRecord is what a matched step leaves for the finding's evidence.
type stepRecord struct {
	time time.Time
	line string
	proc Process
}

type procKey struct {
	pid   int32
	start int64 // unix nanoseconds; 0 when unknown
}

func keyOf(p *Process) procKey {
	k := procKey{pid: p.PID}
	if !p.Start.IsZero() {
		k.start = p.Start.UnixNano()
	}
	return k
}

func (k procKey) same(o procKey) bool {
	return k.pid == o.pid && (k.start == 0 || o.start == 0 || k.start == o.start)
}

const maxAnchors = 16

// addAnchors adds the event's process and its parent to the partial's tree.
func (p *partial) addAnchors(ev *Event) {
	add := func(k procKey) {
		if k.pid <= 2 || len(p.anchors) >= maxAnchors {
			return
		}
		for _, a := range p.anchors {
			if a.same(k) {
				return
			}
		}
		p.anchors = append(p.anchors, k)
	}
	add(keyOf(&ev.Proc))
	if len(ev.Ancestors) > 0 {
		add(keyOf(&ev.Ancestors[0]))
	}
}

func (p *partial) inTree(ev *Event) bool {
	for _, a := range p.anchors {
		if a.same(keyOf(&ev.Proc)) {
			return true
		}
		for i := range ev.Ancestors {
			if a.same(keyOf(&ev.Ancestors[i])) {
				return true
			}
		}
	}
	return false
}

// pendingIndex counts, per sequence rule, the keys and anchor PIDs of its partial matches, so
// that an event which shares none of them is turned away without scanning the partials.
type pendingIndex struct {
	keys map[string]int
	pids map[int32]int
}

func (e *Engine) track(ri int32, p *partial, delta int) {
	x := &e.pindex[ri]
	if x.keys == nil {
		x.keys, x.pids = map[string]int{}, map[int32]int{}
	}
	for _, k := range p.keys {
		if x.keys[k] += delta; x.keys[k] <= 0 {
			delete(x.keys, k)
		}
	}
	for _, a := range p.anchors {
		if x.pids[a.pid] += delta; x.pids[a.pid] <= 0 {
			delete(x.pids, a.pid)
		}
	}
}

// mayAdvance is a quick test of whether any partial of the rule could take the event: one must
// hold one of its keys and, for a tree scope, one of its PIDs as an anchor.
func (e *Engine) mayAdvance(ri int32, st *step, keys []string, ev *Event) bool {
	x := &e.pindex[ri]
	if len(st.keys) > 0 {
		found := false
		for _, k := range keys {
			if x.keys[k] > 0 {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if e.rules[ri].seq.scope == ScopeTree {
		if x.pids[ev.Proc.PID] > 0 {
			return true
		}
		for i := range ev.Ancestors {
			if x.pids[ev.Ancestors[i].PID] > 0 {
				return true
			}
		}
		return false
	}
	return true
}

// stepKeys are the values of the step's key fields for the event.
func stepKeys(st *step, c *evalCtx) []string {
	var vals []string
	for _, f := range st.keys {
		if f.typ == typeString {
			if v := f.str(c); v != "" {
				vals = append(vals, v)
			}
			continue
		}
		for _, v := range f.strs(c) {
			if v != "" {
				vals = append(vals, v)
			}
		}
	}
	return vals
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// sequenceStep handles an event that satisfies step si of sequence rule ri.
func (e *Engine) sequenceStep(ri int32, si int, c *evalCtx, emit func(finding.Finding)) {
	r := e.rules[ri]
	seq := r.seq
	st := &seq.steps[si]
	ev := c.ev
	var keys []string
	if len(st.keys) > 0 {
		if keys = stepKeys(st, c); len(keys) == 0 {
			return
		}
	}
	if si == 0 {
		p := &partial{next: 1, start: ev.Time, host: ev.Host, keys: keys}
		p.addAnchors(ev)
		p.steps = append(p.steps, stepRecord{time: ev.Time, line: eventLine(c), proc: ev.Proc})
		list := e.pending[ri]
		if len(list) >= e.maxPending {
			e.track(ri, list[0], -1)
			list = slices.Delete(list, 0, 1)
			e.stats.Evicted++
		}
		e.pending[ri] = append(list, p)
		e.track(ri, p, +1)
		e.stats.Started++
		return
	}
	if !e.mayAdvance(ri, st, keys, ev) {
		return
	}
	last := si == len(seq.steps)-1
	var done *partial
	list := e.pending[ri]
	kept := list[:0]
	for _, p := range list {
		if ev.Time.Sub(p.start) > seq.window {
			e.track(ri, p, -1)
			e.stats.Expired++
			continue
		}
		matched := p.next == si && p.host == ev.Host && (seq.scope != ScopeTree || p.inTree(ev))
		var shared []string
		if matched && len(st.keys) > 0 {
			shared = intersect(p.keys, keys)
			matched = len(shared) > 0
		}
		if !matched {
			kept = append(kept, p)
			continue
		}
		e.track(ri, p, -1)
		if len(st.keys) > 0 {
			p.keys = shared
		}
		p.steps = append(p.steps, stepRecord{time: ev.Time, line: eventLine(c), proc: ev.Proc})
		if last {
			if done == nil {
				done = p // the oldest partial this event completes speaks for all of them
			}
			continue
		}
		p.next++
		p.addAnchors(ev)
		e.track(ri, p, +1)
		kept = append(kept, p)
	}
	clear(list[len(kept):])
	e.pending[ri] = kept
	if done != nil {
		e.report(r, c, done, emit)
	}
}

// maybeSweep drops expired partial matches once a minute of event time, so that rules whose
// later steps never come do not hold memory until they are evicted.
func (e *Engine) maybeSweep(now time.Time) {
	if now.Before(e.lastSweep) {
		e.lastSweep = now // a replay or a clock step back: sweep a minute from here
		return
	}
	if now.Sub(e.lastSweep) < time.Minute {
		return
	}
	e.lastSweep = now
	for ri, list := range e.pending {
		if len(list) == 0 {
			continue
		}
		w := e.rules[ri].seq.window
		kept := list[:0]
		for _, p := range list {
			if now.Sub(p.start) > w {
				e.track(int32(ri), p, -1)
				e.stats.Expired++
				continue
			}
			kept = append(kept, p)
		}
		clear(list[len(kept):])
		e.pending[ri] = kept
	}
}
