package respond

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The objects of the ipset backend.
const (
	ipsetSet4 = "palisade4"
	ipsetSet6 = "palisade6"
	// ipsetMaxTimeout is the largest timeout ipset accepts, in seconds.
	ipsetMaxTimeout = 2147483
	ipsetWait       = "10" // seconds iptables waits for the xtables lock
)

// The chains that get our DROP rule. FORWARD protects what the host routes to (containers, VMs).
var ipsetChains = []string{"INPUT", "FORWARD"}

// binDirs is where the backend looks for its binaries; PATH is not consulted.
var binDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// IPSetOptions configures NewIPSet.
type IPSetOptions struct {
	// NetNS is the path of the network namespace to work in (such as /run/netns/NAME); empty
	// means the agent's own. The tests always set it.
	NetNS string
}

// IPSet is the fallback backend for hosts without a working nftables: two ipsets of type
// hash:net with per-element timeouts,
//
//	ipset create palisade4 hash:net family inet timeout 0 -exist
//	ipset create palisade6 hash:net family inet6 timeout 0 -exist
//
// and one rule per chain and family, inserted at the top only when `-C` finds it missing:
//
//	iptables  -I INPUT   -m set --match-set palisade4 src -j DROP
//	iptables  -I FORWARD -m set --match-set palisade4 src -j DROP
//	ip6tables -I INPUT   -m set --match-set palisade6 src -j DROP
//	ip6tables -I FORWARD -m set --match-set palisade6 src -j DROP
//
// It runs ipset, iptables and ip6tables from fixed system directories (not PATH) with fixed
// argument shapes; the only variable arguments are prefixes formatted from netip.Prefix values
// and integer timeouts. Timeouts are whole seconds (rounded up, at most 2147483 s, about 24
// days). Where ip6tables is missing or fails (IPv6 disabled), IPv4 still works and IPv6 blocks
// fail with the reason.
type IPSet struct {
	mu    sync.Mutex // one command sequence at a time
	netns string
	ipset string
	ipt   string
	ip6t  string
	v6Err error // why IPv6 blocking is unavailable, if it is
}

// NewIPSet creates or reuses the sets and inserts the rules that are missing.
func NewIPSet(opt IPSetOptions) (*IPSet, error) {
	if err := checkNotHostFromTest(opt.NetNS); err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	s := &IPSet{netns: opt.NetNS}
	var err error
	if s.ipset, err = findBinary("ipset"); err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	if s.ipt, err = findBinary("iptables"); err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	s.ip6t, s.v6Err = findBinary("ip6tables")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.run(ctx, s.ipset, "create", ipsetSet4, "hash:net", "family", "inet", "timeout", "0", "-exist"); err != nil {
		return nil, fmt.Errorf("ipset: %w", err)
	}
	for _, chain := range ipsetChains {
		if err := s.ensureRule(ctx, s.ipt, chain, ipsetSet4); err != nil {
			return nil, fmt.Errorf("ipset: %w", err)
		}
	}
	if s.v6Err == nil {
		s.v6Err = s.setup6(ctx)
	}
	return s, nil
}

func (s *IPSet) setup6(ctx context.Context) error {
	if _, err := s.run(ctx, s.ipset, "create", ipsetSet6, "hash:net", "family", "inet6", "timeout", "0", "-exist"); err != nil {
		return err
	}
	for _, chain := range ipsetChains {
		if err := s.ensureRule(ctx, s.ip6t, chain, ipsetSet6); err != nil {
			return err
		}
	}
	return nil
}

func findBinary(name string) (string, error) {
	for _, d := range binDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s", name, strings.Join(binDirs, ", "))
}

// ruleArgs is the one rule shape we create, after the command (-C, -I or -D) and chain.
func ruleArgs(set string) []string {
	return []string{"-m", "set", "--match-set", set, "src", "-j", "DROP"}
}

func tableCmd(op, chain, set string) []string {
	return append([]string{"-w", ipsetWait, op, chain}, ruleArgs(set)...)
}

func (s *IPSet) ensureRule(ctx context.Context, bin, chain, set string) error {
	if _, err := s.run(ctx, bin, tableCmd("-C", chain, set)...); err == nil {
		return nil
	}
	if _, err := s.run(ctx, bin, tableCmd("-I", chain, set)...); err != nil {
		return err
	}
	return nil
}

// run executes bin with args (in the configured namespace) and returns its standard output.
func (s *IPSet) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := inNetNS(s.netns, func() error {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		return cmd.Run()
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, trimOutput(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// Name returns "ipset".
func (s *IPSet) Name() string { return "ipset" }

func (s *IPSet) setFor(p netip.Prefix) (string, error) {
	if p.Addr().Is4() {
		return ipsetSet4, nil
	}
	if s.v6Err != nil {
		return "", fmt.Errorf("ipset: IPv6 blocking unavailable: %w", s.v6Err)
	}
	return ipsetSet6, nil
}

// Add blocks p for ttl (rounded up to whole seconds, at most 2147483 s; 0 = until Remove).
// hash:net would accept overlapping entries; Add refuses them like the nftables backend does.
func (s *IPSet) Add(ctx context.Context, p netip.Prefix, ttl time.Duration) error {
	p, err := Canonical(p)
	if err != nil {
		return err
	}
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if p.Bits() == 0 {
		return fmt.Errorf("ipset: hash:net cannot hold %s", p)
	}
	set, err := s.setFor(p)
	if err != nil {
		return err
	}
	secs := min(int64(roundUp(ttl, time.Second)/time.Second), ipsetMaxTimeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.list(ctx)
	if err != nil {
		return err
	}
	if q, ok := findOverlap(cur, p); ok {
		return fmt.Errorf("ipset: block %s: %w (%s)", p, ErrOverlap, q)
	}
	// -exist replaces the timeout of an entry that is already there.
	if _, err := s.run(ctx, s.ipset, "add", set, p.String(), "timeout", strconv.FormatInt(secs, 10), "-exist"); err != nil {
		return fmt.Errorf("ipset: %w", err)
	}
	return nil
}

// Remove lifts the block on exactly p.
func (s *IPSet) Remove(ctx context.Context, p netip.Prefix) error {
	p, err := Canonical(p)
	if err != nil {
		return err
	}
	set, err := s.setFor(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.list(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, e := range cur {
		found = found || e.Prefix == p
	}
	if !found {
		return fmt.Errorf("ipset: unblock %s: %w", p, ErrNotBlocked)
	}
	if _, err := s.run(ctx, s.ipset, "del", set, p.String(), "-exist"); err != nil {
		return fmt.Errorf("ipset: %w", err)
	}
	return nil
}

// List returns the entries of both sets.
func (s *IPSet) List(ctx context.Context) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list(ctx)
}

func (s *IPSet) list(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Entry
	sets := []string{ipsetSet4}
	if s.v6Err == nil {
		sets = append(sets, ipsetSet6)
	}
	for _, set := range sets {
		b, err := s.run(ctx, s.ipset, "save", set)
		if err != nil {
			return nil, fmt.Errorf("ipset: %w", err)
		}
		es, err := parseIPSetSave(b, set)
		if err != nil {
			return nil, fmt.Errorf("ipset: %w", err)
		}
		out = append(out, es...)
	}
	sortEntries(out)
	return out, nil
}

// parseIPSetSave reads the "add SET PREFIX timeout N" lines of `ipset save SET`.
func parseIPSetSave(b []byte, set string) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "add" || f[1] != set {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(f[2], "/") {
			p, err = netip.ParsePrefix(f[2])
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(f[2]); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("parse ipset entry %q: %w", sc.Text(), err)
		}
		e := Entry{Prefix: p.Masked()}
		for i := 3; i+1 < len(f); i++ {
			if f[i] == "timeout" {
				n, err := strconv.ParseInt(f[i+1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("parse ipset entry %q: %w", sc.Text(), err)
				}
				// 0 is a permanent entry: the kernel reports at least 1 for a timed one.
				e.Remaining = time.Duration(n) * time.Second
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Close does nothing: the sets and rules stay, and so do the blocks.
func (s *IPSet) Close() error { return nil }

// Teardown deletes our rules (every copy of them) and then our sets. Nothing else is touched;
// missing rules or sets are not an error.
func (s *IPSet) Teardown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	fams := []struct{ bin, set string }{{s.ipt, ipsetSet4}}
	if s.ip6t != "" {
		fams = append(fams, struct{ bin, set string }{s.ip6t, ipsetSet6})
	}
	for _, f := range fams {
		for _, chain := range ipsetChains {
			for range 16 { // more copies than that would be someone else's doing
				if _, err := s.run(ctx, f.bin, tableCmd("-C", chain, f.set)...); err != nil {
					break
				}
				if _, err := s.run(ctx, f.bin, tableCmd("-D", chain, f.set)...); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	names, err := s.run(ctx, s.ipset, "list", "-n")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("ipset: %w", err))...)
	}
	for _, n := range strings.Fields(string(names)) {
		if n == ipsetSet4 || n == ipsetSet6 {
			if _, err := s.run(ctx, s.ipset, "destroy", n); err != nil {
				errs = append(errs, fmt.Errorf("ipset: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
