package respond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeFW is a Firewall in memory with the backends' semantics (overlap refusal, timeouts on
// a clock the test controls).
type fakeFW struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[netip.Prefix]time.Time // expiry; zero = none
	adds    int
	removes int
	lists   int
}

func newFakeFW(now func() time.Time) *fakeFW {
	return &fakeFW{now: now, entries: map[netip.Prefix]time.Time{}}
}

func (f *fakeFW) Name() string { return "fake" }

func (f *fakeFW) gc() {
	for p, exp := range f.entries {
		if !exp.IsZero() && !f.now().Before(exp) {
			delete(f.entries, p)
		}
	}
}

func (f *fakeFW) Add(_ context.Context, p netip.Prefix, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gc()
	p, err := Canonical(p)
	if err != nil {
		return err
	}
	for q := range f.entries {
		if q != p && q.Overlaps(p) {
			return fmt.Errorf("fake: %w", ErrOverlap)
		}
	}
	f.adds++
	var exp time.Time
	if ttl > 0 {
		exp = f.now().Add(ttl)
	}
	f.entries[p] = exp
	return nil
}

func (f *fakeFW) Remove(_ context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gc()
	if _, ok := f.entries[p]; !ok {
		return fmt.Errorf("fake: %w", ErrNotBlocked)
	}
	f.removes++
	delete(f.entries, p)
	return nil
}

func (f *fakeFW) List(context.Context) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gc()
	f.lists++
	var out []Entry
	for p, exp := range f.entries {
		e := Entry{Prefix: p}
		if !exp.IsZero() {
			e.Remaining = exp.Sub(f.now())
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, nil
}

func (f *fakeFW) Close() error { return nil }
func (f *fakeFW) Teardown(ctx context.Context) error {
	f.entries = map[netip.Prefix]time.Time{}
	return nil
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestGuard(t *testing.T, cfg GuardConfig) (*Guard, *fakeFW, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	fw := newFakeFW(c.now)
	g := NewGuard(fw, cfg, testLogger(t))
	g.now = c.now
	return g, fw, c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestGuardRefusals(t *testing.T) {
	g, fw, _ := newTestGuard(t, GuardConfig{
		Console: []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("3fff:c::1")},
		Allow: []netip.Prefix{
			netip.MustParsePrefix("203.0.113.0/24"),
			netip.MustParsePrefix("2001:db8:1::/48"),
			netip.MustParsePrefix("::ffff:192.0.2.0/120"), // mapped: means 192.0.2.0/24
		},
	})
	ctx := context.Background()
	cases := []struct{ prefix, refused string }{
		{"127.0.0.1/32", "loopback"},
		{"127.5.0.0/16", "loopback"},
		{"126.0.0.0/7", "loopback"}, // contains 127/8
		{"::1/128", "loopback"},
		{"::ffff:127.0.0.1/128", "loopback"}, // mapped, unmapped first
		{"0.0.0.0/32", "unspecified"},
		{"::/128", "unspecified"},
		{"0.0.0.0/0", "loopback"}, // the first reason that applies
		{"::/0", "loopback"},
		{"224.0.0.1/32", "multicast"},
		{"239.1.0.0/16", "multicast"},
		{"ff02::1/128", "multicast"},
		{"169.254.169.254/32", "link-local"},
		{"fe80::1/128", "link-local"},
		{"255.255.255.255/32", "broadcast"},
		{"198.51.100.7/32", "console"},
		{"198.51.100.0/24", "console"}, // contains the console
		{"::ffff:198.51.100.7/128", "console"},
		{"3fff:c::/64", "console"},
		{"203.0.113.9/32", "allowlisted (203.0.113.0/24)"},
		{"203.0.0.0/16", "allowlisted (203.0.113.0/24)"}, // contains allowlisted addresses
		{"2001:db8:1:2::/64", "allowlisted (2001:db8:1::/48)"},
		{"2001:db8::/32", "allowlisted (2001:db8:1::/48)"},
		{"::ffff:203.0.113.9/128", "allowlisted (203.0.113.0/24)"},
		{"192.0.2.77/32", "allowlisted (192.0.2.0/24)"},
		// Allowed.
		{"198.18.0.1/32", ""},
		{"198.51.101.0/24", ""},
		{"2001:db8:2::/48", ""},
		{"::ffff:198.18.0.9/128", ""},
	}
	for _, c := range cases {
		before := fw.adds
		d, err := g.Block(ctx, netip.MustParsePrefix(c.prefix), "test", "auto:test.rule")
		if err != nil {
			t.Fatalf("%s: %v", c.prefix, err)
		}
		if d.Refused != c.refused {
			t.Errorf("%s: refused %q, want %q", c.prefix, d.Refused, c.refused)
		}
		if blocked := fw.adds > before; blocked != (c.refused == "") || d.Blocked != blocked {
			t.Errorf("%s: firewall add %v, decision blocked %v", c.prefix, blocked, d.Blocked)
		}
		if r, _ := g.Refusal(netip.MustParsePrefix(c.prefix)); r != c.refused && c.refused != "" {
			t.Errorf("%s: Refusal says %q", c.prefix, r)
		}
	}
	// The mapped prefix was unmapped before it reached the firewall.
	d, _ := g.Block(ctx, netip.MustParsePrefix("::ffff:198.18.0.10/128"), "test", "auto:test.rule")
	if d.Prefix != netip.MustParsePrefix("198.18.0.10/32") {
		t.Errorf("mapped prefix became %s", d.Prefix)
	}
	if _, ok := fw.entries[netip.MustParsePrefix("198.18.0.10/32")]; !ok {
		t.Errorf("firewall has %v, want 198.18.0.10/32 among them", fw.entries)
	}
	// Host bits are cleared.
	d, _ = g.Block(ctx, netip.MustParsePrefix("198.18.7.9/24"), "test", "auto:test.rule")
	if d.Prefix != netip.MustParsePrefix("198.18.7.0/24") || !d.Blocked {
		t.Errorf("198.18.7.9/24: %+v", d)
	}
}

func TestGuardInvalidInput(t *testing.T) {
	g, fw, _ := newTestGuard(t, GuardConfig{})
	ctx := context.Background()
	if _, err := g.Block(ctx, netip.Prefix{}, "x", "auto:r"); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("zero prefix: %v", err)
	}
	for _, src := range []string{"", "auto:", "operator:", "engine:x", "AUTO:x"} {
		if _, err := g.Block(ctx, netip.MustParsePrefix("198.18.0.1/32"), "x", src); err == nil {
			t.Errorf("source %q accepted", src)
		}
	}
	if _, err := g.BlockFor(ctx, netip.MustParsePrefix("198.18.0.1/32"), -time.Second, "x", "operator:ann"); err == nil {
		t.Error("negative duration accepted")
	}
	if fw.adds != 0 {
		t.Errorf("%d adds for invalid input", fw.adds)
	}
	if err := g.Unblock(ctx, netip.MustParsePrefix("198.18.0.1/32")); !errors.Is(err, ErrNotBlocked) {
		t.Errorf("unblock of nothing: %v", err)
	}
}

func TestGuardEscalation(t *testing.T) {
	g, fw, clk := newTestGuard(t, GuardConfig{})
	ctx := context.Background()
	p := netip.MustParsePrefix("198.18.0.1/32")
	want := []time.Duration{10 * time.Minute, 40 * time.Minute, 160 * time.Minute, 640 * time.Minute, 24 * time.Hour, 24 * time.Hour}
	for i, w := range want {
		d, err := g.Block(ctx, p, "brute force", "auto:bruteforce.ssh")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Blocked || d.TTL != w || d.Repeat != i+1 {
			t.Fatalf("block %d: %+v, want TTL %v repeat %d", i+1, d, w, i+1)
		}
		if l, _ := fw.List(ctx); len(l) != 1 || l[0].Remaining != w {
			t.Fatalf("block %d: firewall has %+v", i+1, l)
		}
		if err := g.Unblock(ctx, p); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Minute)
	}
	// 24 hours after the last block the history is forgotten: back to the base.
	clk.advance(-time.Minute + RepeatWindow)
	d, _ := g.Block(ctx, p, "brute force", "auto:bruteforce.ssh")
	if d.TTL != 10*time.Minute || d.Repeat != 1 {
		t.Errorf("after 24h: %+v", d)
	}
	clk.advance(11 * time.Minute) // expires in the firewall by itself
	if l, _ := fw.List(ctx); len(l) != 0 {
		t.Fatalf("not expired: %+v", l)
	}
	// A block that expired by itself counts as a repeat too.
	d, _ = g.Block(ctx, p, "brute force", "auto:bruteforce.ssh")
	if d.TTL != 40*time.Minute || d.Repeat != 2 || d.Already {
		t.Errorf("after expiry: %+v", d)
	}
	// Other prefixes have their own count.
	d, _ = g.Block(ctx, netip.MustParsePrefix("198.18.0.2/32"), "brute force", "auto:bruteforce.ssh")
	if d.TTL != 10*time.Minute {
		t.Errorf("other prefix: %+v", d)
	}
}

func TestGuardEscalationConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  GuardConfig
		want []time.Duration
	}{
		{GuardConfig{BaseTTL: time.Minute, Escalation: 2, MaxTTL: 5 * time.Minute}, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute}},
		{GuardConfig{BaseTTL: time.Minute, Escalation: 0.5}, []time.Duration{time.Minute, time.Minute}},  // < 1: no escalation
		{GuardConfig{BaseTTL: time.Hour, MaxTTL: time.Minute}, []time.Duration{time.Hour, time.Hour}},    // max below base: base
		{GuardConfig{BaseTTL: time.Hour, Escalation: 1e300}, []time.Duration{time.Hour, 24 * time.Hour}}, // overflow: capped
	} {
		g, _, _ := newTestGuard(t, c.cfg)
		p := netip.MustParsePrefix("198.18.0.1/32")
		for i, w := range c.want {
			d, err := g.Block(context.Background(), p, "x", "auto:r")
			if err != nil || d.TTL != w {
				t.Errorf("%+v block %d: %+v %v, want %v", c.cfg, i+1, d, err, w)
			}
			g.Unblock(context.Background(), p)
		}
	}
}

func TestGuardAlreadyBlocked(t *testing.T) {
	g, fw, clk := newTestGuard(t, GuardConfig{})
	ctx := context.Background()
	p := netip.MustParsePrefix("198.18.0.1/32")
	if d, _ := g.Block(ctx, p, "first", "auto:r"); !d.Blocked || d.TTL != 10*time.Minute {
		t.Fatalf("%+v", d)
	}
	clk.advance(time.Minute)
	d, err := g.Block(ctx, p, "second report of the same attack", "auto:r")
	if err != nil || !d.Blocked || !d.Already || d.TTL != 9*time.Minute || d.Repeat != 1 {
		t.Fatalf("repeat while blocked: %+v %v", d, err)
	}
	if fw.adds != 1 {
		t.Errorf("%d adds, want 1", fw.adds)
	}
	// An operator's explicit duration replaces the time.
	d, err = g.BlockFor(ctx, p, 0, "keep it out", "operator:ann")
	if err != nil || !d.Blocked || d.Already || d.TTL != 0 || d.Repeat != 2 {
		t.Fatalf("operator block: %+v %v", d, err)
	}
	act, _ := g.Active(ctx)
	if len(act) != 1 || !act[0].Expires.IsZero() || act[0].Source != "operator:ann" || act[0].Reason != "keep it out" {
		t.Errorf("active: %+v", act)
	}
	// A block made before this Guard existed (an agent restart) is refreshed, not skipped.
	g2 := NewGuard(fw, GuardConfig{}, testLogger(t))
	g2.now = clk.now
	d, _ = g2.Block(ctx, p, "again", "auto:r")
	if d.Already || d.TTL != 10*time.Minute {
		t.Errorf("unknown existing block: %+v", d)
	}
}

func TestGuardCoverAndReplace(t *testing.T) {
	g, fw, _ := newTestGuard(t, GuardConfig{})
	ctx := context.Background()
	g.Block(ctx, netip.MustParsePrefix("198.18.1.3/32"), "scan", "auto:r")
	g.Block(ctx, netip.MustParsePrefix("198.18.1.200/32"), "scan", "auto:r")
	g.Block(ctx, netip.MustParsePrefix("198.18.2.1/32"), "scan", "auto:r")
	d, err := g.BlockFor(ctx, netip.MustParsePrefix("198.18.1.0/24"), time.Hour, "whole subnet", "operator:ann")
	if err != nil || !d.Blocked {
		t.Fatalf("%+v %v", d, err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("198.18.1.3/32"), netip.MustParsePrefix("198.18.1.200/32")}; !slices.Equal(d.Replaced, want) {
		t.Errorf("replaced %v, want %v", d.Replaced, want)
	}
	l, _ := fw.List(ctx)
	if len(l) != 2 || l[0].Prefix.String() != "198.18.1.0/24" || l[1].Prefix.String() != "198.18.2.1/32" {
		t.Errorf("firewall: %+v", l)
	}
	d, err = g.Block(ctx, netip.MustParsePrefix("198.18.1.9/32"), "scan", "auto:r")
	if err != nil || d.Blocked || d.Refused != "covered by active block 198.18.1.0/24" {
		t.Errorf("inside a larger block: %+v %v", d, err)
	}
}

func TestGuardDetectOnly(t *testing.T) {
	g, fw, _ := newTestGuard(t, GuardConfig{DetectOnly: true, Console: []netip.Addr{netip.MustParseAddr("::ffff:198.18.0.100")}})
	ctx := context.Background()
	p := netip.MustParsePrefix("198.18.0.1/32")
	for i, w := range []time.Duration{10 * time.Minute, 40 * time.Minute} {
		d, err := g.Block(ctx, p, "x", "auto:r")
		if err != nil || d.Blocked || !d.WouldBlock || d.TTL != w || d.Repeat != i+1 {
			t.Errorf("detect-only %d: %+v %v", i+1, d, err)
		}
	}
	if d, _ := g.Block(ctx, netip.MustParsePrefix("198.18.0.100/32"), "x", "auto:r"); d.WouldBlock || d.Refused != "console" {
		t.Errorf("console in detect-only: %+v", d)
	}
	if err := g.Unblock(ctx, p); err != nil {
		t.Error(err)
	}
	if fw.adds+fw.removes+fw.lists != 0 {
		t.Errorf("detect-only touched the firewall: %d adds, %d removes, %d lists", fw.adds, fw.removes, fw.lists)
	}
	if a, _ := g.Active(ctx); len(a) != 0 {
		t.Errorf("active: %+v", a)
	}
}

func TestGuardActive(t *testing.T) {
	g, fw, clk := newTestGuard(t, GuardConfig{})
	ctx := context.Background()
	g.Block(ctx, netip.MustParsePrefix("198.18.0.1/32"), "12 failed SSH logins", "auto:bruteforce.ssh")
	g.BlockFor(ctx, netip.MustParsePrefix("2001:db8::/64"), 0, "abuse report", "operator:ann")
	fw.Add(ctx, netip.MustParsePrefix("198.18.0.9/32"), time.Hour) // made by someone else / before a restart
	a, err := g.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Prefix: netip.MustParsePrefix("198.18.0.1/32"), Expires: clk.now().Add(10 * time.Minute), Reason: "12 failed SSH logins", Source: "auto:bruteforce.ssh"},
		{Prefix: netip.MustParsePrefix("198.18.0.9/32"), Expires: clk.now().Add(time.Hour)},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Reason: "abuse report", Source: "operator:ann"},
	}
	if !slices.Equal(a, want) {
		t.Errorf("active:\n got %+v\nwant %+v", a, want)
	}
	clk.advance(10 * time.Minute)
	a, _ = g.Active(ctx)
	if len(a) != 2 {
		t.Errorf("after expiry: %+v", a)
	}
	if _, ok := g.meta[netip.MustParsePrefix("198.18.0.1/32")]; ok {
		t.Error("reason of an expired block still remembered")
	}
}

func TestGuardMemoryBounded(t *testing.T) {
	old := maxTracked
	maxTracked = 10
	t.Cleanup(func() { maxTracked = old })
	g, _, clk := newTestGuard(t, GuardConfig{DetectOnly: true})
	for i := range 50 {
		clk.advance(time.Second)
		if _, err := g.Block(context.Background(), netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), 32), "x", "auto:r"); err != nil {
			t.Fatal(err)
		}
	}
	if len(g.history) > 10 {
		t.Errorf("history holds %d prefixes", len(g.history))
	}
	// The most recent ones are kept.
	if _, ok := g.history[netip.MustParsePrefix("198.18.1.49/32")]; !ok {
		t.Error("latest prefix evicted")
	}
	// Many repeats of one prefix stay bounded too.
	p := netip.MustParsePrefix("198.18.2.1/32")
	for range 200 {
		g.Block(context.Background(), p, "x", "auto:r")
	}
	if n := len(g.history[p]); n > maxRepeats {
		t.Errorf("%d block times kept for one prefix", n)
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"198.18.0.1/32":         "198.18.0.1/32",
		"198.18.0.77/24":        "198.18.0.0/24",
		"::ffff:198.18.0.1/128": "198.18.0.1/32",
		"::ffff:198.18.0.1/120": "198.18.0.0/24",
		"::ffff:0.0.0.0/96":     "0.0.0.0/0",
		"::ffff:0:0/95":         "::fffe:0:0/95", // not all mapped: stays IPv6
		"2001:db8::1/64":        "2001:db8::/64",
		"fe80::1/128":           "fe80::1/128",
	} {
		got, err := Canonical(netip.MustParsePrefix(in))
		if err != nil || got.String() != want {
			t.Errorf("Canonical(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := Canonical(netip.Prefix{}); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("zero prefix: %v", err)
	}
}

func TestRangePrefix(t *testing.T) {
	for _, c := range []struct {
		first, last string
		want        string // "" = none
	}{
		{"198.18.0.1", "198.18.0.1", "198.18.0.1/32"},
		{"10.0.0.0", "10.0.0.255", "10.0.0.0/24"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"10.0.0.0", "10.0.0.2", ""},
		{"10.0.0.1", "10.0.0.2", ""},
		{"10.0.0.128", "10.0.1.127", ""},
		{"2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"},
	} {
		p, ok := rangePrefix(netip.MustParseAddr(c.first), netip.MustParseAddr(c.last))
		got := ""
		if ok {
			got = p.String()
		}
		if got != c.want {
			t.Errorf("rangePrefix(%s, %s) = %q, want %q", c.first, c.last, got, c.want)
		}
	}
	if l := lastAddr(netip.MustParsePrefix("198.18.0.0/15")); l.String() != "198.19.255.255" {
		t.Errorf("lastAddr = %s", l)
	}
}

func TestDetectFallback(t *testing.T) {
	ctx := context.Background()
	nft := newFakeFW(time.Now)
	ipset := newFakeFW(time.Now)
	ok := func(f Firewall) func() (Firewall, error) { return func() (Firewall, error) { return f, nil } }
	fail := func(msg string) func() (Firewall, error) {
		return func() (Firewall, error) { return nil, errors.New(msg) }
	}
	if fw, err := detect(ctx, ok(nft), ok(ipset)); err != nil || fw != nft {
		t.Errorf("both work: %v %v", fw, err)
	}
	if fw, err := detect(ctx, fail("no nf_tables"), ok(ipset)); err != nil || fw != ipset {
		t.Errorf("nftables fails: %v %v", fw, err)
	}
	_, err := detect(ctx, fail("no nf_tables"), fail("ipset not found"))
	var ue *UnavailableError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ue) || ue.NFTables == nil || ue.IPSet == nil {
		t.Fatalf("neither works: %v", err)
	}
	if want := "no firewall backend available: nftables: no nf_tables; ipset/iptables: ipset not found"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestNoHostFirewallFromTests: in a test binary the backends refuse the host's namespace.
func TestNoHostFirewallFromTests(t *testing.T) {
	if _, err := NewNFTables(NFTOptions{}); !errors.Is(err, errHostFromTest) {
		t.Errorf("NewNFTables without NetNS: %v", err)
	}
	if _, err := NewIPSet(IPSetOptions{}); !errors.Is(err, errHostFromTest) {
		t.Errorf("NewIPSet without NetNS: %v", err)
	}
	_, err := Detect(context.Background())
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errHostFromTest) {
		t.Errorf("Detect: %v", err)
	}
}
