package behavior

import (
	"sort"
	"strconv"
	"strings"
)

// The index finds, for one event, the few rules that can match it. Each condition is analysed
// for anchors: facts about the event at least one of which holds whenever the condition is true
// (the process name is "curl"; the lower-case command line contains "/dev/tcp/"; the stdio
// flag is set). An event is evaluated against the rules reached through its own name, parent
// name, ancestor names, flags and command-line literals, plus the few rules without anchors.

type anchor struct {
	kind anchorKind
	val  string
}

// anchorsOf returns a set of anchors of which one holds whenever n is true; ok is false when n
// has none (it must then be evaluated for every event of its kinds).
func anchorsOf(n node) (set []anchor, ok bool) {
	switch n := n.(type) {
	case constNode:
		return nil, !bool(n) // "false" needs nothing: it never holds
	case andNode:
		best, bestScore := []anchor(nil), -1
		for _, x := range n {
			s, ok := anchorsOf(x)
			if !ok {
				continue
			}
			if sc := score(s); sc > bestScore {
				best, bestScore = s, sc
			}
		}
		return best, bestScore >= 0
	case orNode:
		var all []anchor
		for _, x := range n {
			s, ok := anchorsOf(x)
			if !ok {
				return nil, false
			}
			all = append(all, s...)
		}
		return all, true
	case *boolLeaf:
		if n.f.anchor == anchorFlag && n.want {
			return []anchor{{anchorFlag, n.f.name}}, true
		}
	case *strLeaf:
		return leafAnchors(n)
	case anyAncestor:
		// The ancestor's own name, its parent's and its ancestors' are all names of the
		// event's ancestors; other anchors of the ancestor say nothing about the event.
		s, ok := anchorsOf(n.x)
		if !ok {
			return nil, false
		}
		for _, a := range s {
			switch a.kind {
			case anchorName, anchorParent, anchorAncs:
				set = append(set, anchor{anchorAncs, a.val})
			default:
				return nil, false
			}
		}
		return set, true
	case *numLeaf:
		if n.f.anchor == anchorPort && n.op == numEq {
			for _, v := range n.vals {
				set = append(set, anchor{anchorPort, strconv.FormatInt(v, 10)})
			}
			return set, true
		}
	}
	return nil, false
}

func leafAnchors(n *strLeaf) ([]anchor, bool) {
	var set []anchor
	switch n.f.anchor {
	case anchorName, anchorParent, anchorAncs:
		for _, v := range n.vals {
			name := ""
			switch {
			case !n.f.exe && n.op == opEq:
				name = v
			case n.f.exe && n.op == opEq:
				name = v[strings.LastIndexByte(v, '/')+1:]
			case n.f.exe && (n.op == opEndsWith || n.op == opGlob) && strings.Contains(v, "/"):
				name = v[strings.LastIndexByte(v, '/')+1:]
				if n.op == opGlob && strings.ContainsAny(name, "*?") {
					name = ""
				}
			}
			if name == "" {
				return nil, false
			}
			set = append(set, anchor{n.f.anchor, strings.ToLower(name)})
		}
		return set, true
	case anchorCmdline, anchorFile:
		if n.op == opMatches {
			return nil, false
		}
		for _, v := range n.vals {
			lit := v
			if n.op == opGlob {
				lit = longestLiteral(v)
			}
			if len(lit) < 3 {
				return nil, false
			}
			set = append(set, anchor{n.f.anchor, strings.ToLower(lit)})
		}
		return set, true
	}
	return nil, false
}

// score ranks an anchor set by how rarely it would select the rule: process names are best,
// short command-line literals worst; a set is as good as its weakest anchor.
func score(set []anchor) int {
	s := 1000
	for _, a := range set {
		w := 0
		switch a.kind {
		case anchorName:
			w = 100
		case anchorFlag:
			w = 95
		case anchorPort:
			w = 70
		case anchorParent:
			w = 60
		case anchorAncs:
			w = 40
		case anchorCmdline, anchorFile:
			w = 10 + min(len(a.val), 20)
		}
		s = min(s, w)
	}
	return s - len(set)/8
}

// bucket indexes the matchers of one event kind.
type bucket struct {
	byName   map[string][]int32
	byParent map[string][]int32
	byAnc    map[string][]int32
	byFlag   map[string][]int32
	byPort   map[uint16][]int32
	flags    []flagAnchor // byFlag as a slice, for a cheap loop per event
	lits     litIndex     // over the command line
	fileLits litIndex     // over file.path
	always   []int32
}

func newBucket() *bucket {
	return &bucket{byName: map[string][]int32{}, byParent: map[string][]int32{}, byAnc: map[string][]int32{}, byFlag: map[string][]int32{}, byPort: map[uint16][]int32{}}
}

func (b *bucket) add(m int32, set []anchor, ok bool) {
	if !ok {
		b.always = append(b.always, m)
		return
	}
	for _, a := range set {
		switch a.kind {
		case anchorName:
			b.byName[a.val] = appendUniq(b.byName[a.val], m)
		case anchorParent:
			b.byParent[a.val] = appendUniq(b.byParent[a.val], m)
		case anchorAncs:
			b.byAnc[a.val] = appendUniq(b.byAnc[a.val], m)
		case anchorFlag:
			b.byFlag[a.val] = appendUniq(b.byFlag[a.val], m)
		case anchorPort:
			port, _ := strconv.ParseUint(a.val, 10, 16)
			b.byPort[uint16(port)] = appendUniq(b.byPort[uint16(port)], m)
		case anchorCmdline:
			b.lits.add(a.val, m)
		case anchorFile:
			b.fileLits.add(a.val, m)
		}
	}
}

type flagAnchor struct {
	f  *field
	ms []int32
}

// freeze prepares the bucket for matching once every matcher is added.
func (b *bucket) freeze() {
	b.flags = b.flags[:0]
	for name, ms := range b.byFlag {
		b.flags = append(b.flags, flagAnchor{fields[name], ms})
	}
	sort.Slice(b.flags, func(i, j int) bool { return b.flags[i].f.name < b.flags[j].f.name })
}

func appendUniq(l []int32, m int32) []int32 {
	if len(l) > 0 && l[len(l)-1] == m {
		return l
	}
	return append(l, m)
}

// litIndex finds which of many literals occur in a text with one pass over the text: a bitmap
// of the literals' first three bytes rejects most positions with one load, and the literals
// sharing a trigram are compared only where it occurs.
type litIndex struct {
	lits   []string
	owners [][]int32
	at     map[string]int
	bits   [1 << 16 / 64]uint64
	byTri  map[uint32][]int32 // trigram -> literal indices
	n      int
}

func trigramHash(t uint32) uint32 { return (t * 2654435761) >> 16 }

func (x *litIndex) add(lit string, m int32) {
	if x.at == nil {
		x.at, x.byTri = map[string]int{}, map[uint32][]int32{}
	}
	i, ok := x.at[lit]
	if !ok {
		i = len(x.lits)
		x.at[lit] = i
		x.lits = append(x.lits, lit)
		x.owners = append(x.owners, nil)
		t := uint32(lit[0])<<16 | uint32(lit[1])<<8 | uint32(lit[2])
		h := trigramHash(t)
		x.bits[h>>6] |= 1 << (h & 63)
		x.byTri[t] = append(x.byTri[t], int32(i))
	}
	x.owners[i] = appendUniq(x.owners[i], m)
	x.n++
}

// scan calls found for each literal occurring in s (perhaps more than once per literal).
func (x *litIndex) scan(s []byte, found func(lit int32)) {
	if len(x.lits) == 0 {
		return
	}
	for i := 0; i+3 <= len(s); i++ {
		t := uint32(s[i])<<16 | uint32(s[i+1])<<8 | uint32(s[i+2])
		h := trigramHash(t)
		if x.bits[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, li := range x.byTri[t] {
			lit := x.lits[li]
			if len(s)-i >= len(lit) && string(s[i:i+len(lit)]) == lit {
				found(li)
			}
		}
	}
}

// appendLowerCmdline appends the process's command line (as Process.Cmdline), lower-cased,
// without building the string.
func appendLowerCmdline(b []byte, p *Process) []byte {
	if len(p.Args) == 0 {
		return appendLower(b, p.Exe)
	}
	for i, a := range p.Args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendLower(b, a)
	}
	return b
}

// appendLower appends s lower-cased (ASCII) to b.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
