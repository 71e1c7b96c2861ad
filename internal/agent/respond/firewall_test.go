package respond

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// backend makes a Firewall in the namespace at path, skipping when its tools are missing.
type backend struct {
	name string
	open func(t testing.TB, nsPath string) (Firewall, error)
}

var backends = []backend{
	{"nftables", func(t testing.TB, nsPath string) (Firewall, error) {
		return NewNFTables(NFTOptions{NetNS: testNSPath(t, nsPath)})
	}},
	{"ipset", func(t testing.TB, nsPath string) (Firewall, error) {
		requireTool(t, "ipset", "iptables", "ip6tables")
		return NewIPSet(IPSetOptions{NetNS: testNSPath(t, nsPath)})
	}},
}

func openFW(t testing.TB, b backend, nsPath string) Firewall {
	t.Helper()
	fw, err := b.open(t, nsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	return fw
}

// TestBlockTraffic is the end-to-end check: a TCP connection from the attacker namespace to a
// listener in the server namespace works before a block, fails while it holds, works again
// after Unblock, and after a short block expires by itself.
func TestBlockTraffic(t *testing.T) {
	requireKernel(t)
	for _, b := range backends {
		for _, fam := range []struct{ name, attacker, server string }{
			{"ipv4", attackerAddr4, serverAddr4},
			{"ipv6", attackerAddr6, serverAddr6},
		} {
			t.Run(b.name+"/"+fam.name, func(t *testing.T) {
				ctx := context.Background()
				n := newTestNet(t)
				addr := listen(t, n.server, fam.server)
				fw := openFW(t, b, n.server)
				g := NewGuard(fw, GuardConfig{}, testLogger(t))
				attacker := netip.PrefixFrom(netip.MustParseAddr(fam.attacker), netip.MustParseAddr(fam.attacker).BitLen())

				mustConnect(t, n, addr, "before the block")

				d, err := g.Block(ctx, attacker, "test attack", "auto:test.rule")
				if err != nil || !d.Blocked || d.TTL != DefaultBaseTTL {
					t.Fatalf("block: %+v %v", d, err)
				}
				mustNotConnect(t, n, addr, "while blocked")
				act, err := g.Active(ctx)
				if err != nil || len(act) != 1 || act[0].Prefix != attacker || act[0].Source != "auto:test.rule" ||
					act[0].Reason != "test attack" || time.Until(act[0].Expires) < 9*time.Minute || time.Until(act[0].Expires) > 10*time.Minute {
					t.Fatalf("active: %+v %v", act, err)
				}

				if err := g.Unblock(ctx, attacker); err != nil {
					t.Fatal(err)
				}
				mustConnect(t, n, addr, "after unblock")
				if act, _ := g.Active(ctx); len(act) != 0 {
					t.Fatalf("active after unblock: %+v", act)
				}

				// A 2 s block lifts itself.
				short := NewGuard(fw, GuardConfig{BaseTTL: 2 * time.Second}, testLogger(t))
				start := time.Now()
				if d, err := short.Block(ctx, attacker, "short", "operator:test"); err != nil || !d.Blocked || d.TTL != 2*time.Second {
					t.Fatalf("short block: %+v %v", d, err)
				}
				mustNotConnect(t, n, addr, "during the short block")
				for connect(n.attacker, addr, dialTimeout) != nil {
					if time.Since(start) > 8*time.Second {
						t.Fatal("the 2s block did not expire within 8s")
					}
				}
				if e := time.Since(start); e < 1500*time.Millisecond {
					t.Errorf("connected %v after a 2s block", e)
				}
				t.Logf("connected again %v after a 2s block", time.Since(start).Round(time.Millisecond))
				if l, err := fw.List(ctx); err != nil || len(l) != 0 {
					t.Errorf("list after expiry: %+v %v", l, err)
				}
			})
		}
	}
}

// TestBackendSemantics checks the Firewall contract against the kernel: overlaps, refresh,
// permanent entries, mapped addresses, removal.
func TestBackendSemantics(t *testing.T) {
	requireKernel(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			_, ns := newNS(t, "")
			fw := openFW(t, b, ns)
			pfx := netip.MustParsePrefix
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(fw.Add(ctx, pfx("10.0.0.0/24"), time.Hour))
			for _, p := range []string{"10.0.0.5/32", "10.0.0.0/16", "10.0.0.128/25"} {
				if err := fw.Add(ctx, pfx(p), time.Hour); !errors.Is(err, ErrOverlap) {
					t.Errorf("add %s over 10.0.0.0/24: %v, want ErrOverlap", p, err)
				}
			}
			must(fw.Add(ctx, pfx("10.0.1.0/24"), time.Minute)) // adjacent
			must(fw.Add(ctx, pfx("10.0.0.0/24"), 2*time.Hour)) // refresh
			must(fw.Add(ctx, pfx("::ffff:198.18.0.9/128"), time.Minute))
			must(fw.Add(ctx, pfx("2001:db8::/32"), 0))
			must(fw.Add(ctx, pfx("fd00::7/128"), 30*time.Second))
			must(fw.Add(ctx, pfx("198.18.0.77/32"), 20*24*time.Hour))
			must(fw.Add(ctx, pfx("198.18.0.78/32"), time.Millisecond)) // rounds up, never "0 = forever"
			l, err := fw.List(ctx)
			must(err)
			got := map[string]time.Duration{}
			for _, e := range l {
				got[e.Prefix.String()] = e.Remaining
			}
			t.Logf("list: %v", got)
			for p, want := range map[string]time.Duration{
				"10.0.0.0/24":    2 * time.Hour,
				"10.0.1.0/24":    time.Minute,
				"198.18.0.9/32":  time.Minute,
				"2001:db8::/32":  0,
				"fd00::7/128":    30 * time.Second,
				"198.18.0.77/32": 20 * 24 * time.Hour,
			} {
				r, ok := got[p]
				if !ok {
					t.Errorf("%s missing from the list", p)
				} else if r > want || r < want-2*time.Second {
					t.Errorf("%s has %v left, want about %v", p, r, want)
				}
			}
			if r, ok := got["198.18.0.78/32"]; ok && r == 0 {
				t.Error("a 1ms block became permanent")
			}
			for i := 1; i < len(l); i++ {
				if l[i-1].Prefix.Addr().Compare(l[i].Prefix.Addr()) > 0 {
					t.Errorf("list not sorted: %v", l)
				}
			}
			must(fw.Remove(ctx, pfx("10.0.0.0/24")))
			if err := fw.Remove(ctx, pfx("10.0.0.0/24")); !errors.Is(err, ErrNotBlocked) {
				t.Errorf("second remove: %v, want ErrNotBlocked", err)
			}
			if err := fw.Remove(ctx, pfx("10.0.1.0/25")); !errors.Is(err, ErrNotBlocked) {
				t.Errorf("remove of a part: %v, want ErrNotBlocked", err)
			}
			must(fw.Remove(ctx, pfx("2001:db8::/32")))
			must(fw.Add(ctx, pfx("10.0.0.5/32"), time.Hour)) // no longer overlaps
			if err := fw.Add(ctx, netip.Prefix{}, time.Hour); !errors.Is(err, ErrInvalidPrefix) {
				t.Errorf("zero prefix: %v", err)
			}
			if err := fw.Add(ctx, pfx("10.9.0.0/16"), -time.Second); err == nil {
				t.Error("negative ttl accepted")
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := fw.List(cctx); !errors.Is(err, context.Canceled) {
				t.Errorf("list with a cancelled context: %v", err)
			}
			must(fw.Teardown(ctx))
			must(fw.Teardown(ctx)) // nothing left: still fine
		})
	}
}

// TestBlocksSurviveRestart: Close keeps the blocks, a new backend finds them.
func TestBlocksSurviveRestart(t *testing.T) {
	requireKernel(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			_, ns := newNS(t, "")
			fw, err := b.open(t, ns)
			if err != nil {
				t.Fatal(err)
			}
			if err := fw.Add(ctx, netip.MustParsePrefix("198.18.0.1/32"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			fw2 := openFW(t, b, ns)
			l, err := fw2.List(ctx)
			if err != nil || len(l) != 1 || l[0].Prefix.String() != "198.18.0.1/32" {
				t.Fatalf("after restart: %+v %v", l, err)
			}
		})
	}
}

func nftConn(t testing.TB, nsPath string) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(openNS(t, nsPath).Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openNS(t testing.TB, nsPath string) *os.File {
	t.Helper()
	f, err := os.Open(testNSPath(t, nsPath))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// ourRules counts the rules per chain of inet palisade.
func ourRules(t testing.TB, c *nftables.Conn) map[string]int {
	t.Helper()
	tab := &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable}
	out := map[string]int{}
	for _, ch := range []string{nftInput, nftFwd} {
		rules, err := c.GetRules(tab, &nftables.Chain{Name: ch, Table: tab})
		if err != nil {
			t.Fatal(err)
		}
		out[ch] = len(rules)
	}
	return out
}

func tableNames(t testing.TB, c *nftables.Conn) []string {
	t.Helper()
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		fam := map[nftables.TableFamily]string{nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip", nftables.TableFamilyIPv6: "ip6"}[tb.Family]
		names = append(names, fam+" "+tb.Name)
	}
	return names
}

func TestNFTablesIdempotentSetup(t *testing.T) {
	requireKernel(t)
	_, ns := newNS(t, "")
	fw1 := openFW(t, backends[0], ns)
	fw2 := openFW(t, backends[0], ns)
	c := nftConn(t, ns)
	if names := tableNames(t, c); strings.Join(names, ",") != "inet palisade" {
		t.Fatalf("tables: %v", names)
	}
	if r := ourRules(t, c); r[nftInput] != 2 || r[nftFwd] != 2 {
		t.Fatalf("rules after two setups: %v, want 2 per chain", r)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		if *ch.Priority != -10 || *ch.Policy != nftables.ChainPolicyAccept || ch.Type != nftables.ChainTypeFilter {
			t.Errorf("chain %s: priority %d policy %d type %s", ch.Name, *ch.Priority, *ch.Policy, ch.Type)
		}
	}
	if len(chains) != 2 {
		t.Errorf("%d chains, want 2", len(chains))
	}
	// A rule that went missing is put back, the others are not doubled.
	tab := &nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable}
	rules, err := c.GetRules(tab, &nftables.Chain{Name: nftInput, Table: tab})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DelRule(rules[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := ourRules(t, c); r[nftInput] != 1 {
		t.Fatalf("after deleting one: %v", r)
	}
	openFW(t, backends[0], ns)
	if r := ourRules(t, c); r[nftInput] != 2 || r[nftFwd] != 2 {
		t.Fatalf("rules after repair: %v", r)
	}
	// Both handles work on the same table.
	ctx := context.Background()
	if err := fw1.Add(ctx, netip.MustParsePrefix("198.18.0.1/32"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if l, err := fw2.List(ctx); err != nil || len(l) != 1 {
		t.Fatalf("list via the second handle: %+v %v", l, err)
	}
	// The rules read back as what we meant: ip saddr @blocked4 counter drop.
	for _, r := range rules[:1] {
		var kinds []string
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Lookup:
				kinds = append(kinds, "lookup "+e.SetName)
			case *expr.Verdict:
				kinds = append(kinds, "verdict drop="+boolStr(e.Kind == expr.VerdictDrop))
			}
		}
		if strings.Join(kinds, ",") != "lookup blocked4,verdict drop=true" {
			t.Errorf("rule: %v", kinds)
		}
	}
	if _, err := findBinary("nft"); err == nil {
		t.Logf("nft list table inet palisade:\n%s", inNS(t, ns, "nft", "list", "table", "inet", "palisade"))
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestNFTablesTeardownOnlyOurs: Teardown deletes inet palisade and leaves another table alone.
func TestNFTablesTeardownOnlyOurs(t *testing.T) {
	requireKernel(t)
	ctx := context.Background()
	_, ns := newNS(t, "")
	c := nftConn(t, ns)
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: other, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: other, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	fw := openFW(t, backends[0], ns)
	if err := fw.Add(ctx, netip.MustParsePrefix("198.18.0.1/32"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if names := strings.Join(tableNames(t, c), ","); names != "inet other,inet palisade" {
		t.Fatalf("tables before teardown: %s", names)
	}
	if err := fw.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if names := strings.Join(tableNames(t, c), ","); names != "inet other" {
		t.Fatalf("tables after teardown: %s", names)
	}
	rules, err := c.GetRules(other, ch)
	if err != nil || len(rules) != 1 {
		t.Fatalf("the other table's rules: %d %v", len(rules), err)
	}
}

// iptRules returns the rules of chain as iptables -S prints them.
func iptRules(t testing.TB, ns, bin, chain string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(inNS(t, ns, bin, "-w", "10", "-S", chain), "\n") {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return out
}

func TestIPSetIdempotentSetupAndTeardown(t *testing.T) {
	requireKernel(t)
	requireTool(t, "ipset", "iptables", "ip6tables")
	ctx := context.Background()
	_, ns := newNS(t, "")
	// Someone else's set and rules, which must survive.
	inNS(t, ns, "ipset", "create", "other", "hash:ip")
	inNS(t, ns, "iptables", "-w", "10", "-A", "INPUT", "-s", "198.18.0.3/32", "-j", "ACCEPT")
	inNS(t, ns, "ip6tables", "-w", "10", "-A", "INPUT", "-s", "fd00::3/128", "-j", "ACCEPT")

	openFW(t, backends[1], ns)
	fw := openFW(t, backends[1], ns)
	for _, c := range []struct{ bin, set string }{{"iptables", "palisade4"}, {"ip6tables", "palisade6"}} {
		for _, chain := range ipsetChains {
			n := 0
			for _, r := range iptRules(t, ns, c.bin, chain) {
				if strings.Contains(r, "--match-set "+c.set+" src -j DROP") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s %s: %d copies of our rule, want 1: %v", c.bin, chain, n, iptRules(t, ns, c.bin, chain))
			}
		}
	}
	// Our rule is first in INPUT, before the existing ACCEPT.
	if r := iptRules(t, ns, "iptables", "INPUT"); len(r) != 2 || !strings.Contains(r[0], "palisade4") {
		t.Errorf("INPUT: %v", r)
	}
	if err := fw.Add(ctx, netip.MustParsePrefix("198.18.0.1/32"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := fw.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if sets := strings.Fields(inNS(t, ns, "ipset", "list", "-n")); strings.Join(sets, ",") != "other" {
		t.Errorf("sets after teardown: %v", sets)
	}
	if r := iptRules(t, ns, "iptables", "INPUT"); len(r) != 1 || !strings.Contains(r[0], "198.18.0.3/32") {
		t.Errorf("INPUT after teardown: %v", r)
	}
	if r := iptRules(t, ns, "ip6tables", "INPUT"); len(r) != 1 || !strings.Contains(r[0], "fd00::3/128") {
		t.Errorf("ip6tables INPUT after teardown: %v", r)
	}
	if r := iptRules(t, ns, "iptables", "FORWARD"); len(r) != 0 {
		t.Errorf("FORWARD after teardown: %v", r)
	}
}

func TestDetectInNamespace(t *testing.T) {
	requireKernel(t)
	_, ns := newNS(t, "")
	fw, err := DetectIn(context.Background(), testNSPath(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if fw.Name() != "nftables" {
		t.Errorf("detected %s, want nftables", fw.Name())
	}
	if err := fw.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestParseIPSetSave(t *testing.T) {
	in := `create palisade4 hash:net family inet hashsize 1024 maxelem 65536 timeout 0 bucketsize 12 initval 0x410662a1
add palisade4 198.18.0.1 timeout 29
add palisade4 10.0.0.0/24 timeout 0
add other 10.9.9.9 timeout 5
add palisade6 fd00::1 timeout 4
`
	got, err := parseIPSetSave([]byte(in), "palisade4")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{netip.MustParsePrefix("198.18.0.1/32"), 29 * time.Second}, {netip.MustParsePrefix("10.0.0.0/24"), 0}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseIPSetSave([]byte("add palisade4 nonsense timeout 1\n"), "palisade4"); err == nil {
		t.Error("nonsense accepted")
	}
}

func TestIntervalEntries(t *testing.T) {
	k := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	els := []nftables.SetElement{
		{Key: k("198.18.0.2"), IntervalEnd: true},
		{Key: k("198.18.0.1"), Timeout: time.Minute, Expires: 50 * time.Second},
		{Key: k("198.18.0.10"), IntervalEnd: true}, // end of an expired start: not dumped, unpaired
		{Key: k("10.0.1.0"), IntervalEnd: true},
		{Key: k("10.0.1.0")}, // adjacent: starts where the previous one ends
		{Key: k("10.0.2.0"), IntervalEnd: true},
		{Key: k("10.0.0.0"), Timeout: time.Hour, Expires: time.Hour},
		{Key: k("10.5.0.0"), Timeout: time.Hour, Expires: 0}, // expired, not collected yet
		{Key: k("10.5.1.0"), IntervalEnd: true},
		{Key: k("240.0.0.0")}, // no end element: up to the top
		{Key: k("10.7.0.0")},  // not a prefix: [10.7.0.0, 10.7.0.2] is not ours
		{Key: k("10.7.0.3"), IntervalEnd: true},
	}
	got := intervalEntries(els)
	sortEntries(got)
	want := []Entry{
		{netip.MustParsePrefix("10.0.0.0/24"), time.Hour},
		{netip.MustParsePrefix("10.0.1.0/24"), 0},
		{netip.MustParsePrefix("198.18.0.1/32"), 50 * time.Second},
		{netip.MustParsePrefix("240.0.0.0/4"), 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// BenchmarkNFTablesAdd measures blocks per second: each iteration adds 1,000 distinct addresses
// (10-minute timeouts) to an empty set in a namespace, one Add call each.
func BenchmarkNFTablesAdd(b *testing.B) {
	requireKernel(b)
	ctx := context.Background()
	_, ns := newNS(b, "")
	addrs := make([]netip.Prefix, 1000)
	for i := range addrs {
		addrs[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)}), 32)
	}
	n := 0
	for b.Loop() {
		n++
		b.StopTimer()
		fw, err := NewNFTables(NFTOptions{NetNS: testNSPath(b, ns)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, p := range addrs {
			if err := fw.Add(ctx, p, 10*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if l, err := fw.List(ctx); err != nil || len(l) != len(addrs) {
			b.Fatalf("list: %d entries, %v", len(l), err)
		}
		if err := fw.Teardown(ctx); err != nil {
			b.Fatal(err)
		}
		fw.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(addrs)*n)/b.Elapsed().Seconds(), "blocks/s")
}

// BenchmarkNFTablesRefresh measures re-blocking addresses that are already blocked (a new
// timeout replaces the old one: delete and add in one transaction), 1,000 per iteration.
func BenchmarkNFTablesRefresh(b *testing.B) {
	requireKernel(b)
	ctx := context.Background()
	_, ns := newNS(b, "")
	fw, err := NewNFTables(NFTOptions{NetNS: testNSPath(b, ns)})
	if err != nil {
		b.Fatal(err)
	}
	defer fw.Close()
	addrs := make([]netip.Prefix, 1000)
	for i := range addrs {
		addrs[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(1 + i%250)}), 32)
		if err := fw.Add(ctx, addrs[i], 10*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		n++
		for _, p := range addrs {
			if err := fw.Add(ctx, p, 20*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(addrs)*n)/b.Elapsed().Seconds(), "blocks/s")
}
