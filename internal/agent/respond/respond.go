// Package respond is the agent's IP blocking: it drops traffic from sources that the detection
// engines flag (a brute-force attacker, a scanner) or that an operator orders blocked through a
// task, for a time that grows for repeat offenders, and lifts the block when that time is up.
//
// Two layers:
//
//   - A Firewall is one kernel backend. NFTables (preferred) keeps everything in its own table
//     "inet palisade"; IPSet (the fallback where nftables is unavailable) keeps two ipsets and one
//     DROP rule per chain and family in iptables/ip6tables. In both the kernel expires a block by
//     itself when its timeout runs out, so a block never outlives its time because the agent
//     stopped, and blocks survive an agent restart (Close keeps them; Teardown removes them).
//   - The Guard is the policy: it normalises what is asked, refuses what must never be blocked
//     (loopback, the console, the operator's allowlist, ...), works out the duration, remembers
//     why each block was made, and honours detect-only mode.
//
// What it is not: a general firewall manager. It never reads, changes or removes a rule, set,
// chain or table that it did not create, and it has no notion of ports, protocols or outbound
// traffic. Its rules only drop packets whose source is in its own sets; everything else is left
// to whatever firewall the host already has, which still sees every packet we accept.
package respond

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// Block is one active block as the Guard reports it.
type Block struct {
	Prefix netip.Prefix
	// Expires is when the kernel lifts the block; zero means it stays until unblocked.
	Expires time.Time
	// Reason is what the engine or the operator said, in words ("12 failed SSH logins in 60s").
	Reason string
	// Source says who asked: "auto:<rule ID>" for an engine, "operator:<name>" for a person.
	// Empty for a block that this agent process did not make (for example before a restart).
	Source string
}

// Entry is one blocked prefix as a Firewall lists it.
type Entry struct {
	Prefix netip.Prefix
	// Remaining is the time until the kernel drops the entry; zero means it has no timeout.
	Remaining time.Duration
}

// Firewall is one kernel backend that drops inbound packets from blocked prefixes.
//
// Prefixes are taken canonical (host bits cleared, IPv4-mapped IPv6 unmapped) and listed that
// way. A Firewall applies no policy: the Guard decides what may be blocked.
// Implementations are safe for concurrent use.
type Firewall interface {
	// Name is the backend's name: "nftables" or "ipset".
	Name() string
	// Add blocks p for ttl (rounded up to the backend's granularity); ttl 0 blocks it until
	// Remove. Adding a prefix that is already blocked replaces its timeout. A prefix that
	// overlaps a different blocked prefix is refused with an error wrapping ErrOverlap.
	Add(ctx context.Context, p netip.Prefix, ttl time.Duration) error
	// Remove lifts the block on exactly p; an error wrapping ErrNotBlocked says there was none.
	Remove(ctx context.Context, p netip.Prefix) error
	// List returns the blocked prefixes with their remaining time, sorted by prefix.
	List(ctx context.Context) ([]Entry, error)
	// Close releases the backend's resources. It does NOT remove the rules or the blocks: they
	// stay in the kernel, expiring on their own, and survive an agent restart.
	Close() error
	// Teardown removes everything the backend created (its table, or its sets and rules),
	// lifting every block. It touches nothing else.
	Teardown(ctx context.Context) error
}

var (
	// ErrUnavailable is wrapped by Detect's error when no backend works on this host.
	ErrUnavailable = errors.New("no firewall backend available")
	// ErrOverlap: the prefix overlaps a different prefix that is already blocked.
	ErrOverlap = errors.New("overlaps a blocked prefix")
	// ErrNotBlocked: Remove or Unblock of a prefix that is not blocked.
	ErrNotBlocked = errors.New("not blocked")
	// ErrInvalidPrefix: the prefix is the zero value or otherwise unusable.
	ErrInvalidPrefix = errors.New("invalid prefix")
)

// UnavailableError says why neither backend could be used. It matches ErrUnavailable with
// errors.Is.
type UnavailableError struct {
	NFTables error // why nftables did not work
	IPSet    error // why ipset/iptables did not work
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%v: nftables: %v; ipset/iptables: %v", ErrUnavailable, e.NFTables, e.IPSet)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the backends' errors.
func (e *UnavailableError) Unwrap() []error { return []error{e.NFTables, e.IPSet} }

// Detect returns the first backend that works on this host: nftables if our table can be
// created (or reused) and listed, else ipset with iptables. Either way the backend's table or
// sets and rules exist when it returns. Without either it returns an *UnavailableError.
func Detect(ctx context.Context) (Firewall, error) { return DetectIn(ctx, "") }

// DetectIn is Detect for the network namespace at netnsPath (such as /run/netns/NAME); an empty
// path means the agent's own namespace.
func DetectIn(ctx context.Context, netnsPath string) (Firewall, error) {
	return detect(ctx,
		func() (Firewall, error) { return NewNFTables(NFTOptions{NetNS: netnsPath}) },
		func() (Firewall, error) { return NewIPSet(IPSetOptions{NetNS: netnsPath}) })
}

func detect(ctx context.Context, nft, ipset func() (Firewall, error)) (Firewall, error) {
	fw, nftErr := nft()
	if nftErr == nil {
		if _, nftErr = fw.List(ctx); nftErr == nil {
			return fw, nil
		}
		fw.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fw, ipsetErr := ipset()
	if ipsetErr == nil {
		if _, ipsetErr = fw.List(ctx); ipsetErr == nil {
			return fw, nil
		}
		fw.Close()
	}
	return nil, &UnavailableError{NFTables: nftErr, IPSet: ipsetErr}
}

// errHostFromTest refuses to work on the host's own firewall from a test binary: a test that
// runs the agent without giving it a Firewall would otherwise create our table in the host's
// namespace. Tests use a namespace of their own (NetNS) or a fake Firewall.
var errHostFromTest = errors.New("refusing to change the host's own firewall from a test binary: set NetNS to a test network namespace, or give the agent a fake Firewall")

func checkNotHostFromTest(netns string) error {
	if netns == "" && testing.Testing() {
		return errHostFromTest
	}
	return nil
}

// Canonical returns p as the backends store it: host bits cleared and an IPv4-mapped IPv6
// prefix (::ffff:a.b.c.d/96+n) turned into the IPv4 prefix a.b.c.d/n.
func Canonical(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("%w %q", ErrInvalidPrefix, p)
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// lastAddr is the highest address in p (p canonical).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// rangePrefix returns the prefix covering exactly [first, last], if there is one.
func rangePrefix(first, last netip.Addr) (netip.Prefix, bool) {
	for bits := first.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() != first {
			break // first is not aligned to a shorter prefix
		}
		switch l := lastAddr(p); l.Compare(last) {
		case 0:
			return p, true
		case 1:
			return netip.Prefix{}, false
		}
	}
	return netip.Prefix{}, false
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
}

// findOverlap returns the listed prefix, other than p itself, that overlaps p.
func findOverlap(es []Entry, p netip.Prefix) (netip.Prefix, bool) {
	for _, e := range es {
		if e.Prefix != p && e.Prefix.Overlaps(p) {
			return e.Prefix, true
		}
	}
	return netip.Prefix{}, false
}

// checkTTL refuses negative durations.
func checkTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("negative block duration %v", ttl)
	}
	return nil
}

// roundUp rounds a positive d up to a multiple of unit (so a short block never becomes 0 =
// permanent).
func roundUp(d, unit time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + unit - 1) / unit * unit
}

func trimOutput(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}
