package respond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Defaults applied by NewGuard to zero GuardConfig fields.
const (
	DefaultBaseTTL    = 10 * time.Minute
	DefaultMaxTTL     = 24 * time.Hour
	DefaultEscalation = 4.0
)

// RepeatWindow is how far back the Guard counts earlier blocks of a prefix.
const RepeatWindow = 24 * time.Hour

// Bounds of the Guard's memory.
const (
	maxRepeats   = 64 // block times kept per prefix (the TTL is capped long before)
	maxReasonLen = 512
)

// maxTracked bounds the prefixes with a block history, and those with a remembered reason
// (a variable for the tests).
var maxTracked = 100_000

// GuardConfig is the blocking policy.
type GuardConfig struct {
	// Allow is the operator's allowlist: a prefix that overlaps any of these (lies inside one,
	// or contains an allowlisted address) is never blocked.
	Allow []netip.Prefix
	// Console holds the console's addresses as this agent reaches it (a name can resolve to
	// several); a prefix containing any of them is never blocked.
	Console []netip.Addr
	// DetectOnly makes Block report what it would do (WouldBlock) without touching the firewall.
	DetectOnly bool
	// BaseTTL is the duration of a first block (default 10m).
	BaseTTL time.Duration
	// MaxTTL caps the duration of automatic and repeated blocks (default 24h).
	MaxTTL time.Duration
	// Escalation multiplies the duration for each earlier block of the same prefix in the last
	// 24 hours (default 4; values below 1 count as 1, no escalation).
	Escalation float64
}

// Decision is what Block did, or in detect-only mode would have done.
type Decision struct {
	// Prefix is the prefix as considered: host bits cleared, IPv4-mapped IPv6 unmapped.
	Prefix netip.Prefix
	// Blocked: the firewall drops the prefix now.
	Blocked bool
	// WouldBlock: detect-only mode, the prefix would have been blocked.
	WouldBlock bool
	// TTL is the duration of the block (0 = until unblocked). For a block that was already
	// active and left alone (Already), the time it has left.
	TTL time.Duration
	// Repeat counts the blocks of this prefix in the last 24 hours, this one included.
	Repeat int
	// Already: the prefix was already blocked by this Guard and the block was left as it was.
	Already bool
	// Replaced lists smaller blocks inside Prefix that were lifted in favour of it.
	Replaced []netip.Prefix
	// Refused says why the prefix was not blocked: "loopback", "unspecified", "multicast",
	// "link-local", "broadcast", "console", "allowlisted (P)", "covered by active block P".
	// Empty when Blocked or WouldBlock.
	Refused string
}

// Guard applies the blocking policy in front of a Firewall. It is safe for concurrent use.
type Guard struct {
	fw  Firewall
	cfg GuardConfig
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	meta    map[netip.Prefix]blockMeta   // why each of our blocks was made
	history map[netip.Prefix][]time.Time // times of recent blocks, oldest first
}

type blockMeta struct {
	reason, source string
	expires        time.Time // zero: until unblocked
}

// Never-blocked ranges, by the name Decision.Refused gives them.
var reserved = []struct {
	name string
	p    netip.Prefix
}{
	{"loopback", netip.MustParsePrefix("127.0.0.0/8")},
	{"loopback", netip.MustParsePrefix("::1/128")},
	{"unspecified", netip.MustParsePrefix("0.0.0.0/32")},
	{"unspecified", netip.MustParsePrefix("::/128")},
	{"multicast", netip.MustParsePrefix("224.0.0.0/4")},
	{"multicast", netip.MustParsePrefix("ff00::/8")},
	{"link-local", netip.MustParsePrefix("169.254.0.0/16")},
	{"link-local", netip.MustParsePrefix("fe80::/10")},
	{"broadcast", netip.MustParsePrefix("255.255.255.255/32")},
}

// NewGuard returns a Guard over fw with cfg's zero fields set to their defaults. log may be nil
// (slog.Default()).
func NewGuard(fw Firewall, cfg GuardConfig, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{
		fw: fw, cfg: normalizeConfig(cfg), log: log.With("component", "respond", "backend", fw.Name()), now: time.Now,
		meta: map[netip.Prefix]blockMeta{}, history: map[netip.Prefix][]time.Time{},
	}
}

// Configure replaces the policy (a new policy from the console). The blocks in force, their
// reasons and the repeat history stay; new durations apply to the next Block.
func (g *Guard) Configure(cfg GuardConfig) {
	cfg = normalizeConfig(cfg)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = cfg
}

// Backend names the firewall backend: "nftables" or "ipset".
func (g *Guard) Backend() string { return g.fw.Name() }

func normalizeConfig(cfg GuardConfig) GuardConfig {
	if cfg.BaseTTL <= 0 {
		cfg.BaseTTL = DefaultBaseTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.MaxTTL < cfg.BaseTTL {
		cfg.MaxTTL = cfg.BaseTTL
	}
	switch {
	case cfg.Escalation == 0 || math.IsNaN(cfg.Escalation):
		cfg.Escalation = DefaultEscalation
	case cfg.Escalation < 1:
		cfg.Escalation = 1
	}
	allow := make([]netip.Prefix, 0, len(cfg.Allow))
	for _, p := range cfg.Allow {
		if c, err := Canonical(p); err == nil {
			allow = append(allow, c)
		}
	}
	cfg.Allow = allow
	console := make([]netip.Addr, 0, len(cfg.Console))
	for _, a := range cfg.Console {
		if a.IsValid() {
			console = append(console, a.Unmap().WithZone(""))
		}
	}
	cfg.Console = console
	return cfg
}

// refusal says why p (canonical) must never be blocked, or "". g.mu is held.
func (g *Guard) refusal(p netip.Prefix) string {
	for _, r := range reserved {
		if r.p.Overlaps(p) {
			return r.name
		}
	}
	for _, a := range g.cfg.Console {
		if p.Contains(a) {
			return "console"
		}
	}
	for _, a := range g.cfg.Allow {
		if a.Overlaps(p) {
			return fmt.Sprintf("allowlisted (%s)", a)
		}
	}
	return ""
}

// Refusal reports why p would be refused by policy, or "" if it may be blocked. It touches
// neither the firewall nor the Guard's memory.
func (g *Guard) Refusal(p netip.Prefix) (string, error) {
	c, err := Canonical(p)
	if err != nil {
		return "", err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refusal(c), nil
}

// Block blocks p on behalf of source ("auto:<rule ID>" or "operator:<name>") for the policy's
// duration: BaseTTL × Escalation^(n-1), at most MaxTTL, where n counts the blocks of p in the
// last 24 hours including this one.
//
// A refusal is not an error: the Decision says why (err is nil). A block of p that this Guard
// made and that is still in the kernel is left as it is (Decision.Already) and does not count
// as a repeat: an engine reporting the same attacker again while the block holds is not a new
// offence. A prefix inside a larger active block is refused ("covered by ..."); a prefix that
// contains smaller active blocks replaces them.
func (g *Guard) Block(ctx context.Context, p netip.Prefix, reason, source string) (Decision, error) {
	return g.block(ctx, p, -1, reason, source)
}

// BlockFor is Block with an explicit duration, for an operator's order: ttl 0 blocks until
// Unblock. The duration is not capped by MaxTTL, it replaces the time of an active block of p,
// and it counts as a repeat for later automatic blocks.
func (g *Guard) BlockFor(ctx context.Context, p netip.Prefix, ttl time.Duration, reason, source string) (Decision, error) {
	if err := checkTTL(ttl); err != nil {
		return Decision{}, err
	}
	return g.block(ctx, p, ttl, reason, source)
}

func validSource(s string) bool {
	for _, kind := range []string{"auto:", "operator:"} {
		if rest, ok := strings.CutPrefix(s, kind); ok && rest != "" && len(s) <= 256 {
			return true
		}
	}
	return false
}

// block does Block (ttl < 0: policy duration) and BlockFor.
func (g *Guard) block(ctx context.Context, p netip.Prefix, ttl time.Duration, reason, source string) (Decision, error) {
	c, err := Canonical(p)
	if err != nil {
		return Decision{}, err
	}
	if !validSource(source) {
		return Decision{}, fmt.Errorf("source %q must be auto:<rule> or operator:<name>", source)
	}
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	d := Decision{Prefix: c}
	log := g.log.With("prefix", c.String(), "source", source, "reason", reason)

	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.refusal(c); r != "" {
		d.Refused = r
		log.Warn("block refused", "why", r)
		return d, nil
	}
	now := g.now()
	g.expireLocked(now)

	if g.cfg.DetectOnly {
		d.Repeat = g.countLocked(c, now) + 1
		d.TTL = g.ttlFor(ttl, d.Repeat)
		d.WouldBlock = true
		g.recordLocked(c, now)
		log.Info("would block (detect-only)", "ttl", d.TTL, "repeat", d.Repeat)
		return d, nil
	}

	if m, ok := g.meta[c]; ok && ttl < 0 && (m.expires.IsZero() || now.Before(m.expires)) {
		// Ours and not yet expired: leave it, if the kernel still has it (not lifted by hand).
		active, err := g.fw.List(ctx)
		if err != nil {
			return d, fmt.Errorf("respond: list blocks: %w", err)
		}
		for _, e := range active {
			if e.Prefix == c {
				d.Blocked, d.Already, d.TTL = true, true, e.Remaining
				d.Repeat = g.countLocked(c, now)
				log.Debug("already blocked", "remaining", e.Remaining, "by", m.source)
				return d, nil
			}
		}
	}

	d.Repeat = g.countLocked(c, now) + 1
	d.TTL = g.ttlFor(ttl, d.Repeat)
	err = g.fw.Add(ctx, c, d.TTL)
	if errors.Is(err, ErrOverlap) {
		// Another block overlaps: a larger one covers c (refused), or c covers smaller ones
		// (they are lifted in favour of c).
		var refused string
		if d.Replaced, refused, err = g.replaceLocked(ctx, c); err == nil && refused == "" {
			err = g.fw.Add(ctx, c, d.TTL)
		}
		if refused != "" || errors.Is(err, ErrOverlap) {
			if refused == "" {
				refused = "overlaps an active block" // one appeared meanwhile
			}
			d.Refused = refused
			log.Info("block refused", "why", d.Refused)
			return d, nil
		}
	}
	if err != nil {
		return d, fmt.Errorf("respond: block %s: %w", c, err)
	}
	d.Blocked = true
	g.recordLocked(c, now)
	m := blockMeta{reason: reason, source: source}
	if d.TTL > 0 {
		m.expires = now.Add(d.TTL)
	}
	if _, ok := g.meta[c]; ok || len(g.meta) < maxTracked {
		g.meta[c] = m
	} else {
		g.sweepLocked(now)
		if len(g.meta) < maxTracked {
			g.meta[c] = m
		} // else the block stands but Active will not know its reason
	}
	log.Info("blocked", "ttl", d.TTL, "repeat", d.Repeat, "replaced", d.Replaced)
	return d, nil
}

// replaceLocked handles a prefix c that overlaps active blocks: it refuses c when a larger
// block covers it, and otherwise lifts the smaller blocks inside c.
func (g *Guard) replaceLocked(ctx context.Context, c netip.Prefix) (replaced []netip.Prefix, refused string, err error) {
	active, err := g.fw.List(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list blocks: %w", err)
	}
	var inside []netip.Prefix
	for _, e := range active {
		if e.Prefix == c || !e.Prefix.Overlaps(c) {
			continue
		}
		if e.Prefix.Bits() < c.Bits() {
			return nil, fmt.Sprintf("covered by active block %s", e.Prefix), nil
		}
		inside = append(inside, e.Prefix)
	}
	for _, q := range inside {
		if err := g.fw.Remove(ctx, q); err != nil && !errors.Is(err, ErrNotBlocked) {
			return replaced, "", fmt.Errorf("lift %s to replace it by %s: %w", q, c, err)
		}
		delete(g.meta, q)
		replaced = append(replaced, q)
	}
	return replaced, "", nil
}

// ttlFor is explicit (when >= 0) or the policy duration for the n-th block in the window.
func (g *Guard) ttlFor(explicit time.Duration, n int) time.Duration {
	if explicit >= 0 {
		return explicit
	}
	ttl := float64(g.cfg.BaseTTL) * math.Pow(g.cfg.Escalation, float64(n-1))
	if ttl >= float64(g.cfg.MaxTTL) || math.IsInf(ttl, 0) || math.IsNaN(ttl) {
		return g.cfg.MaxTTL
	}
	return time.Duration(ttl)
}

// countLocked counts the blocks of p within RepeatWindow before now.
func (g *Guard) countLocked(p netip.Prefix, now time.Time) int {
	n := 0
	for _, t := range g.history[p] {
		if now.Sub(t) < RepeatWindow {
			n++
		}
	}
	return n
}

// recordLocked adds a block of p at now to its history, keeping the memory bounded.
func (g *Guard) recordLocked(p netip.Prefix, now time.Time) {
	h := g.history[p]
	if h == nil && len(g.history) >= maxTracked {
		g.evictLocked()
	}
	h = append(h, now)
	if len(h) > maxRepeats {
		h = h[len(h)-maxRepeats:]
	}
	g.history[p] = h
}

// expireLocked forgets block times older than the window and reasons of blocks whose time is
// up. It runs on each Block and walks the maps only once they are large; small ones cost
// nothing to keep.
func (g *Guard) expireLocked(now time.Time) {
	if len(g.history)+len(g.meta) < 1024 {
		return
	}
	g.sweepLocked(now)
}

func (g *Guard) sweepLocked(now time.Time) {
	for p, h := range g.history {
		i := 0
		for i < len(h) && now.Sub(h[i]) >= RepeatWindow {
			i++
		}
		if i == len(h) {
			delete(g.history, p)
		} else if i > 0 {
			g.history[p] = append([]time.Time(nil), h[i:]...)
		}
	}
	for p, m := range g.meta {
		if !m.expires.IsZero() && !now.Before(m.expires) {
			delete(g.meta, p)
		}
	}
}

// evictLocked makes room in the history: first by forgetting what is older than the window,
// then by dropping the prefix whose latest block is the oldest.
func (g *Guard) evictLocked() {
	g.sweepLocked(g.now())
	if len(g.history) < maxTracked {
		return
	}
	var oldest netip.Prefix
	var oldestT time.Time
	for p, h := range g.history {
		if t := h[len(h)-1]; !oldest.IsValid() || t.Before(oldestT) {
			oldest, oldestT = p, t
		}
	}
	delete(g.history, oldest)
}

// Unblock lifts the block on exactly p. An error wrapping ErrNotBlocked says there was none.
// The block still counts as a repeat for the next Block of p.
func (g *Guard) Unblock(ctx context.Context, p netip.Prefix) error {
	c, err := Canonical(p)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.DetectOnly {
		g.log.Info("would unblock (detect-only)", "prefix", c.String())
		return nil
	}
	err = g.fw.Remove(ctx, c)
	if err == nil || errors.Is(err, ErrNotBlocked) {
		delete(g.meta, c)
	}
	if err != nil {
		return fmt.Errorf("respond: unblock %s: %w", c, err)
	}
	g.log.Info("unblocked", "prefix", c.String())
	return nil
}

// Active returns the blocks in the kernel, with the time each expires and, for blocks this Guard
// made, the reason and source.
func (g *Guard) Active(ctx context.Context) ([]Block, error) {
	es, err := g.fw.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("respond: list blocks: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	out := make([]Block, 0, len(es))
	seen := make(map[netip.Prefix]bool, len(es))
	for _, e := range es {
		b := Block{Prefix: e.Prefix}
		if e.Remaining > 0 {
			b.Expires = now.Add(e.Remaining)
		}
		if m, ok := g.meta[e.Prefix]; ok {
			b.Reason, b.Source = m.reason, m.source
		}
		seen[e.Prefix] = true
		out = append(out, b)
	}
	// Forget reasons of blocks the kernel no longer has (expired, or lifted by hand).
	for p := range g.meta {
		if !seen[p] {
			delete(g.meta, p)
		}
	}
	return out, nil
}
