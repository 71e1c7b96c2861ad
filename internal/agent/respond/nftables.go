package respond

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The objects of the nftables backend. Everything lives in one table that nothing else uses.
const (
	nftTable  = "palisade"
	nftSet4   = "blocked4"
	nftSet6   = "blocked6"
	nftInput  = "input"
	nftFwd    = "forward"
	nftPrio   = -10 // filter - 10: before the usual filter chains, which still see what we accept
	nftRule4  = "palisade: drop sources in @blocked4"
	nftRule6  = "palisade: drop sources in @blocked6"
	nftMaxTTL = 365 * 24 * time.Hour
)

// NFTOptions configures NewNFTables.
type NFTOptions struct {
	// NetNS is the path of the network namespace to work in (such as /run/netns/NAME); empty
	// means the agent's own. The tests always set it.
	NetNS string
}

// NFTables is the nftables backend. It owns the table "inet palisade":
//
//	table inet palisade {
//	  set blocked4 { type ipv4_addr; flags interval,timeout; }
//	  set blocked6 { type ipv6_addr; flags interval,timeout; }
//	  chain input   { type filter hook input   priority filter - 10; policy accept;
//	                  ip saddr @blocked4 counter drop; ip6 saddr @blocked6 counter drop }
//	  chain forward { type filter hook forward priority filter - 10; policy accept;
//	                  ip saddr @blocked4 counter drop; ip6 saddr @blocked6 counter drop }
//	}
//
// The input chain protects the host itself; the forward chain protects what the host routes to
// (containers and VMs behind it). Each block is an interval element with its own timeout, so the
// kernel lifts it when the time is up. Blocked packets are dropped silently, which also cuts
// connections that are already established.
//
// Setup is idempotent: on an existing table it adds only what is missing and never duplicates a
// rule (our rules are recognised by their comment).
type NFTables struct {
	mu     sync.Mutex // serialises batches: the netlink connection buffers messages
	conn   *nftables.Conn
	ns     *os.File // the namespace, kept open for the connection's lifetime
	table  *nftables.Table
	set4   *nftables.Set
	set6   *nftables.Set
	closed bool
	// known maps the prefixes we know to be in the kernel to when their timeout ends (zero:
	// none), so that Add can choose between a plain add and a replacement without asking.
	known   map[netip.Prefix]time.Time
	sweepAt int // len(known) at which expired entries are swept out
}

// NewNFTables creates or reuses the table "inet palisade" with its sets, chains and rules.
func NewNFTables(opt NFTOptions) (*NFTables, error) {
	if err := checkNotHostFromTest(opt.NetNS); err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	n := &NFTables{known: map[netip.Prefix]time.Time{}, sweepAt: 1024}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if opt.NetNS != "" {
		f, err := os.Open(opt.NetNS)
		if err != nil {
			return nil, fmt.Errorf("nftables: open network namespace: %w", err)
		}
		n.ns = f
		opts = append(opts, nftables.WithNetNSFd(int(f.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		n.closeNS()
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	n.conn = c
	n.table = &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable}
	n.set4 = &nftables.Set{Table: n.table, Name: nftSet4, KeyType: nftables.TypeIPAddr, Interval: true, HasTimeout: true}
	n.set6 = &nftables.Set{Table: n.table, Name: nftSet6, KeyType: nftables.TypeIP6Addr, Interval: true, HasTimeout: true}
	if err := n.setup(); err != nil {
		n.Close()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, err := n.listLocked(); err != nil { // what an earlier run left
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *NFTables) chains() []*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	mk := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: n.table, Type: nftables.ChainTypeFilter, Hooknum: hook,
			Priority: nftables.ChainPriorityRef(nftPrio), Policy: &accept}
	}
	return []*nftables.Chain{mk(nftInput, nftables.ChainHookInput), mk(nftFwd, nftables.ChainHookForward)}
}

// dropRule is "ip saddr @blocked4 counter drop" (or the ip6 one), marked by its comment.
func (n *NFTables) dropRule(c *nftables.Chain, v6 bool) *nftables.Rule {
	proto, off, size, set, comment := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4), n.set4, nftRule4
	if v6 {
		proto, off, size, set, comment = unix.NFPROTO_IPV6, 8, 16, n.set6, nftRule6
	}
	return &nftables.Rule{
		Table: n.table,
		Chain: c,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment),
	}
}

func ruleComment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

func (n *NFTables) setup() error {
	tables, err := n.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	exists := false
	for _, t := range tables {
		exists = exists || t.Name == nftTable
	}
	// Table, sets and chains: NEWTABLE/NEWSET/NEWCHAIN without NLM_F_EXCL leave existing ones
	// as they are (and fail if an existing set has another type, which we then report).
	n.conn.AddTable(n.table)
	for _, s := range []*nftables.Set{n.set4, n.set6} {
		if err := n.conn.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	chains := n.chains()
	for _, c := range chains {
		n.conn.AddChain(c)
	}
	if !exists {
		// A new table: everything in one transaction, so a failure leaves nothing behind.
		for _, c := range chains {
			n.conn.AddRule(n.dropRule(c, false))
			n.conn.AddRule(n.dropRule(c, true))
		}
		if err := n.conn.Flush(); err != nil {
			return fmt.Errorf("create table inet %s: %w", nftTable, err)
		}
		return nil
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("update table inet %s: %w", nftTable, err)
	}
	// The table existed (an earlier run): add only the rules that are missing.
	added := false
	for _, c := range chains {
		rules, err := n.conn.GetRules(n.table, c)
		if err != nil {
			return fmt.Errorf("list rules of chain %s: %w", c.Name, err)
		}
		have := map[string]bool{}
		for _, r := range rules {
			have[ruleComment(r)] = true
		}
		for _, v6 := range []bool{false, true} {
			r := n.dropRule(c, v6)
			if !have[ruleComment(r)] {
				n.conn.AddRule(r)
				added = true
			}
		}
	}
	if added {
		if err := n.conn.Flush(); err != nil {
			return fmt.Errorf("add rules: %w", err)
		}
	}
	return nil
}

// Name returns "nftables".
func (n *NFTables) Name() string { return "nftables" }

func (n *NFTables) setFor(p netip.Prefix) *nftables.Set {
	if p.Addr().Is4() {
		return n.set4
	}
	return n.set6
}

// elements returns the interval [start, end) for p: the start element carries the timeout; the
// end element is omitted when p reaches the top of the address space.
func elements(p netip.Prefix, ttl time.Duration) []nftables.SetElement {
	els := []nftables.SetElement{{Key: p.Addr().AsSlice(), Timeout: ttl}}
	if end := lastAddr(p).Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	return els
}

func (n *NFTables) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.closed {
		return errors.New("nftables: closed")
	}
	return nil
}

// Add blocks p for ttl (rounded up to whole milliseconds; 0 = until Remove).
func (n *NFTables) Add(ctx context.Context, p netip.Prefix, ttl time.Duration) error {
	p, err := Canonical(p)
	if err != nil {
		return err
	}
	if err := checkTTL(ttl); err != nil {
		return err
	}
	ttl = min(roundUp(ttl, time.Millisecond), nftMaxTTL)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.begin(ctx); err != nil {
		return err
	}
	set := n.setFor(p)
	els := elements(p, ttl)
	now := time.Now()
	if n.presentLocked(p, now) {
		// Replacing an element is delete + add in one transaction: kernels without element
		// timeout updates (before 6.10) keep the old timeout when an element is added again. If the element is gone after all
		// (expired just now, or removed by hand), the delete fails with ENOENT, the kernel
		// rolls the transaction back, and the plain add below follows.
		if err := n.conn.SetDeleteElements(set, elements(p, 0)); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		if err := n.conn.SetAddElements(set, els); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		err := n.conn.Flush()
		if err == nil {
			n.rememberLocked(p, ttl, now)
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("nftables: block %s: %w", p, err)
		}
	}
	// A plain add: the common case, a prefix that is not blocked. (A failed transaction costs
	// the kernel an RCU grace period, milliseconds, which is why Add does not simply try the
	// replacement first.)
	if err := n.conn.SetAddElements(set, els); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := n.conn.Flush(); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("nftables: block %s: %w", p, ErrOverlap)
		}
		return fmt.Errorf("nftables: block %s: %w", p, err)
	}
	n.rememberLocked(p, ttl, now)
	return nil
}

// presentLocked says whether p is in the kernel as far as we know: added or listed by us and
// not expired since. An element added by someone else and not listed since counts as absent;
// adding it again then succeeds, and only kernels before 6.10 keep its old timeout.
// (List refreshes this knowledge; NewNFTables lists what an earlier run left.)
func (n *NFTables) presentLocked(p netip.Prefix, now time.Time) bool {
	dl, ok := n.known[p]
	return ok && (dl.IsZero() || now.Before(dl))
}

func (n *NFTables) rememberLocked(p netip.Prefix, ttl time.Duration, now time.Time) {
	if len(n.known) >= n.sweepAt {
		for q, dl := range n.known {
			if !dl.IsZero() && !now.Before(dl) {
				delete(n.known, q)
			}
		}
		n.sweepAt = 2*len(n.known) + 1024
	}
	var dl time.Time
	if ttl > 0 {
		dl = now.Add(ttl)
	}
	n.known[p] = dl
}

// Remove lifts the block on exactly p.
func (n *NFTables) Remove(ctx context.Context, p netip.Prefix) error {
	p, err := Canonical(p)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.begin(ctx); err != nil {
		return err
	}
	if err := n.conn.SetDeleteElements(n.setFor(p), elements(p, 0)); err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	err = n.conn.Flush()
	if err == nil || errors.Is(err, unix.ENOENT) {
		delete(n.known, p)
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("nftables: unblock %s: %w", p, ErrNotBlocked)
		}
		return fmt.Errorf("nftables: unblock %s: %w", p, err)
	}
	return nil
}

// List returns the blocks in both sets.
func (n *NFTables) List(ctx context.Context) ([]Entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.begin(ctx); err != nil {
		return nil, err
	}
	return n.listLocked()
}

// listLocked dumps both sets and refreshes what Add knows to be present.
func (n *NFTables) listLocked() ([]Entry, error) {
	var out []Entry
	for _, s := range []*nftables.Set{n.set4, n.set6} {
		els, err := n.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables: list set %s: %w", s.Name, err)
		}
		out = append(out, intervalEntries(els)...)
	}
	sortEntries(out)
	now := time.Now()
	clear(n.known)
	for _, e := range out {
		n.rememberLocked(e.Prefix, e.Remaining, now)
	}
	return out, nil
}

// intervalEntries pairs each start element with the lowest end element above it. Expired start
// elements are not dumped by the kernel; their end elements can linger until garbage collection
// and are then simply unpaired.
func intervalEntries(els []nftables.SetElement) []Entry {
	type elem struct {
		a         netip.Addr
		end       bool
		timeout   time.Duration
		remaining time.Duration
	}
	var starts, ends []elem
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		el := elem{a: a, end: e.IntervalEnd, timeout: e.Timeout, remaining: e.Expires}
		if el.end {
			ends = append(ends, el)
		} else {
			starts = append(starts, el)
		}
	}
	var out []Entry
	for _, s := range starts {
		if s.timeout > 0 && s.remaining <= 0 {
			continue // expired, not yet collected
		}
		var end netip.Addr
		for _, e := range ends {
			if e.a.Compare(s.a) > 0 && (!end.IsValid() || e.a.Compare(end) < 0) {
				end = e.a
			}
		}
		last := lastAddr(netip.PrefixFrom(s.a, 0)) // no end element: up to the top
		if end.IsValid() {
			last = end.Prev()
		}
		p, ok := rangePrefix(s.a, last)
		if !ok {
			continue // not a prefix: not ours
		}
		out = append(out, Entry{Prefix: p, Remaining: s.remaining})
	}
	return out
}

// Close releases the netlink connection and the namespace. The table and its blocks stay.
func (n *NFTables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var err error
	if n.conn != nil {
		err = n.conn.CloseLasting()
	}
	n.closeNS()
	return err
}

func (n *NFTables) closeNS() {
	if n.ns != nil {
		n.ns.Close()
		n.ns = nil
	}
}

// Teardown deletes the table "inet palisade" and with it every block, rule and chain we made.
// Nothing else is touched. A missing table is not an error.
func (n *NFTables) Teardown(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.begin(ctx); err != nil {
		return err
	}
	n.conn.DelTable(n.table)
	if err := n.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: delete table inet %s: %w", nftTable, err)
	}
	clear(n.known)
	return nil
}
