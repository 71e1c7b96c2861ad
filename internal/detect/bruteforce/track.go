package bruteforce

import (
	"net/netip"
	"strings"
)

// table is a map with least-recently-used eviction and expiry, reusing dropped entries.
type table[K comparable, V any] struct {
	m     map[K]*entry[K, V]
	head  entry[K, V] // sentinel: head.next is the most recent, head.prev the least
	max   int
	clone func(K) K
	free  []*entry[K, V]
}

type entry[K comparable, V any] struct {
	key        K
	prev, next *entry[K, V]
	last       int64
	val        V
}

func (t *table[K, V]) init(max int, clone func(K) K) {
	t.m = make(map[K]*entry[K, V])
	t.head.prev, t.head.next = &t.head, &t.head
	t.max, t.clone = max, clone
}

func (t *table[K, V]) len() int { return len(t.m) }

func (t *table[K, V]) unlink(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
}

func (t *table[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &t.head, t.head.next
	t.head.next.prev = e
	t.head.next = e
}

// get returns k's value, marking it used at now; with create it adds a zero-or-reused value
// (isNew: the caller must reset it), evicting the least recent entry when full.
func (t *table[K, V]) get(k K, now int64, create bool, onDrop func(*V)) (v *V, isNew, evicted bool) {
	if e, ok := t.m[k]; ok {
		if e != t.head.next {
			t.unlink(e)
			t.pushFront(e)
		}
		e.last = max(e.last, now)
		return &e.val, false, false
	}
	if !create {
		return nil, false, false
	}
	if len(t.m) >= t.max {
		t.drop(t.head.prev, onDrop)
		evicted = true
	}
	var e *entry[K, V]
	if n := len(t.free); n > 0 {
		e = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		e = new(entry[K, V])
	}
	if t.clone != nil {
		k = t.clone(k)
	}
	e.key, e.last = k, now
	t.m[k] = e
	t.pushFront(e)
	return &e.val, true, evicted
}

func (t *table[K, V]) drop(e *entry[K, V], onDrop func(*V)) {
	t.unlink(e)
	delete(t.m, e.key)
	var zero K
	e.key = zero
	if onDrop != nil {
		onDrop(&e.val)
	}
	if len(t.free) < 256 {
		t.free = append(t.free, e)
	}
}

// expireOne drops the least recent entry if it was last used before cut.
func (t *table[K, V]) expireOne(cut int64, onDrop func(*V)) bool {
	e := t.head.prev
	if e == &t.head || e.last >= cut {
		return false
	}
	t.drop(e, onDrop)
	return true
}

// episode is one attack as a rule sees it: from the threshold crossing until its key has been
// quiet for a window.
type episode struct {
	active   bool
	first    int64 // the first failure counted in it
	last     int64 // the latest
	fired    int64 // when it last produced a finding
	count    int   // failures
	distinct int   // users (enumeration) or sources (distributed)
}

// actor is one address, or one user at one terminal for local services.
type actor struct {
	addr    netip.Addr
	local   localKey
	isLocal bool
	gen     uint32 // changes when the entry is dropped, so accounts can tell a reused one

	last     int64
	services uint16
	conns    [connsPerActor]conn
	fails    timeRing
	users    []seenUser
	userCap  int
	lines    lineRing

	guess, enum episode
	flagged     int64 // latest failure while over a per-source threshold
	succFired   int64
	succUser    string
}

func (a *actor) reset(failCap, userCap int) {
	gen := a.gen
	fails, users, lines := a.fails.t[:0], a.users[:0], a.lines.l
	clear(lines)
	*a = actor{gen: gen}
	if cap(fails) >= failCap {
		a.fails.t = fails[:failCap]
		clear(a.fails.t)
	} else {
		a.fails.size = failCap
	}
	a.users = users
	a.userCap = userCap
	a.lines.l = lines[:0]
}

// conn is one connection's failures, to count its lines once.
type conn struct {
	t        int64
	user     uint32
	port     uint16
	attempts uint16
	floor    uint16
	used     bool
}

// count adds e to its connection and returns the failed attempts that adds (see Kind).
func (a *actor) count(e *Event, t int64, uh uint32) int {
	n := int(e.Attempts)
	n = min(max(n, 1), 1<<15)
	c := a.conn(e.Port, uh, t)
	before := max(c.attempts, c.floor)
	if e.Kind == KindAttempt {
		c.attempts = uint16(min(int(c.attempts)+n, 1<<16-1))
	} else {
		c.floor = max(c.floor, uint16(n))
	}
	added := int(max(c.attempts, c.floor)) - int(before)
	c.t = max(c.t, t)
	if e.Kind == KindSummary {
		*c = conn{}
	}
	return added
}

func near(a, b, d int64) bool { return a-b <= d && b-a <= d }

func sameUser(a, b uint32) bool { return a == b || a == 0 || b == 0 }

func (a *actor) conn(port uint16, uh uint32, t int64) *conn {
	if port != 0 {
		for i := range a.conns {
			if c := &a.conns[i]; c.used && c.port == port && near(t, c.t, joinPortMS) {
				return c
			}
		}
	}
	var best *conn
	for i := range a.conns {
		c := &a.conns[i]
		if c.used && (port == 0 || c.port == 0) && sameUser(c.user, uh) && near(t, c.t, joinUserMS) &&
			(best == nil || c.t > best.t) {
			best = c
		}
	}
	if best != nil {
		if port != 0 {
			best.port = port
			if uh != 0 {
				best.user = uh
			}
		}
		return best
	}
	victim := &a.conns[0]
	for i := range a.conns {
		c := &a.conns[i]
		if !c.used {
			victim = c
			break
		}
		if c.t < victim.t {
			victim = c
		}
	}
	*victim = conn{used: true, port: port, user: uh, t: t}
	return victim
}

// timeRing holds the times of the latest failures, one slot per failure up to the threshold.
type timeRing struct {
	t    []int64
	size int // capacity to allocate on first use
	head int
	n    int
}

func (r *timeRing) push(t int64, n int) {
	if r.t == nil {
		if r.size == 0 {
			return
		}
		r.t = make([]int64, r.size)
	}
	for range min(n, len(r.t)) {
		r.t[r.head] = t
		r.head++
		if r.head == len(r.t) {
			r.head = 0
		}
		if r.n < len(r.t) {
			r.n++
		}
	}
}

// oldest returns the earliest of the last len(t) failures, if there were that many.
func (r *timeRing) oldest() (int64, bool) {
	if len(r.t) == 0 || r.n < len(r.t) {
		return 0, false
	}
	return r.t[r.head], true
}

func (r *timeRing) inWindow(now, w int64) int {
	k := 0
	for i := range r.n {
		if now-r.t[i] <= w {
			k++
		}
	}
	return k
}

func (r *timeRing) clear() { r.n, r.head = 0, 0 }

// lineRing keeps the latest maxEvidence lines.
type lineRing struct {
	l    []string
	head int
}

func (r *lineRing) push(s string) {
	s = cut(s, maxKeptLine)
	if len(r.l) < maxEvidence {
		r.l = append(r.l, s)
		return
	}
	r.l[r.head] = s
	r.head = (r.head + 1) % maxEvidence
}

func (r *lineRing) slice() []string {
	out := make([]string, 0, len(r.l))
	out = append(out, r.l[r.head:]...)
	return append(out, r.l[:r.head]...)
}

type seenUser struct {
	name        string
	h           uint32
	seq         uint32
	first, last int64
	invalid     bool
}

// seeUser records a failure for name and reports whether it is new to the table.
func (a *actor) seeUser(name string, h uint32, t int64, invalid bool, seq uint32) bool {
	for i := range a.users {
		if u := &a.users[i]; u.h == h && u.name == name {
			u.last = max(u.last, t)
			u.invalid = u.invalid || invalid
			return false
		}
	}
	u := seenUser{name: clone(name), h: h, seq: seq, first: t, last: t, invalid: invalid}
	if len(a.users) < a.userCap {
		a.users = append(a.users, u)
		return true
	}
	v := 0
	for i := range a.users {
		if a.users[i].last < a.users[v].last {
			v = i
		}
	}
	a.users[v] = u
	return true
}

func (a *actor) usersInWindow(t, w int64) (n int, first int64) {
	first = t
	for _, u := range a.users {
		if t-u.last <= w {
			n++
			first = min(first, u.first)
		}
	}
	return n, first
}

// onlyUser reports whether every user that failed here within w is name.
func (a *actor) onlyUser(name string, t, w int64) bool {
	for _, u := range a.users {
		if t-u.last <= w && u.name != name {
			return false
		}
	}
	return true
}

// forgive forgets the failures of a user who then logged in.
func (a *actor) forgive() {
	a.fails.clear()
	a.conns = [connsPerActor]conn{}
	clear(a.users)
	a.users = a.users[:0]
}

// account is one user name as a target of failures from many addresses.
type account struct {
	last     int64
	services uint16
	srcs     []acctSrc
	lines    lineRing
	ep       episode
}

type acctSrc struct {
	a           *actor
	gen         uint32
	addr        netip.Addr
	first, last int64
	fails       int
	ok          bool // logged in as this user
}

func (acc *account) reset() {
	srcs, lines := acc.srcs[:0], acc.lines.l
	clear(lines)
	clear(acc.srcs)
	*acc = account{srcs: srcs, lines: lineRing{l: lines[:0]}}
}

// see records a failure from a and reports whether a is new to the account.
func (acc *account) see(a *actor, t int64, n int, w int64, capacity int) bool {
	for i := range acc.srcs {
		if s := &acc.srcs[i]; s.a == a && s.gen == a.gen {
			s.last = max(s.last, t)
			s.fails += n
			return false
		}
	}
	s := acctSrc{a: a, gen: a.gen, addr: a.addr, first: t, last: t, fails: n}
	if len(acc.srcs) < capacity {
		acc.srcs = append(acc.srcs, s)
		return true
	}
	v := 0
	for i := range acc.srcs {
		if acc.srcs[i].last < acc.srcs[v].last {
			v = i
		}
	}
	acc.srcs[v] = s
	return true
}

// qualifying counts the sources that failed on the account within w, did not log in as it and
// crossed no per-source threshold within w.
func (acc *account) qualifying(t, w, _ int64) (q, fails int, first int64) {
	first = t
	for _, s := range acc.srcs {
		if t-s.last > w || s.ok || s.fails == 0 {
			continue
		}
		if s.gen == s.a.gen && s.a.flagged != 0 && t-s.a.flagged <= w {
			continue
		}
		q++
		fails += s.fails
		first = min(first, s.first)
	}
	return q, fails, first
}

func (acc *account) succeeded(addr netip.Addr) {
	for i := range acc.srcs {
		if acc.srcs[i].addr == addr {
			acc.srcs[i].ok = true
		}
	}
}

// userHash is FNV-1a, never 0 for a non-empty name (0 means "no user").
func userHash(s string) uint32 {
	if s == "" {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	if h == 0 {
		h = 1
	}
	return h
}

var serviceNames = [...]string{ServiceSSHD, ServiceVsftpd, ServiceProFTPD, ServiceMySQL, ServicePostgreSQL,
	ServiceDovecot, ServicePostfix, ServiceSu, ServiceSudo}

func serviceBit(s string) uint16 {
	for i, n := range serviceNames {
		if n == s {
			return 1 << i
		}
	}
	return 1 << 15 // other
}

func serviceList(mask uint16) string {
	var b strings.Builder
	for i, n := range serviceNames {
		if mask&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	if mask&(1<<15) != 0 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString("other")
	}
	return b.String()
}

func clone(s string) string { return strings.Clone(s) }
