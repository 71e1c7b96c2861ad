package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/respond"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
	"github.com/palisade-cwpp/palisade/internal/task"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

// setupFirewall opens the blocking backend: the one the caller gave, else the best this host
// has. Without one the agent still detects; it reports the responder as unavailable.
func (a *Agent) setupFirewall(ctx context.Context) {
	fw := a.cfg.Firewall
	if fw == nil {
		var err error
		if fw, err = respond.Detect(ctx); err != nil {
			a.health.set(finding.ComponentState{Name: "respond", Kind: "engine", State: finding.StateUnavailable, Reason: err.Error()})
			return
		}
	}
	a.guard = respond.NewGuard(fw, a.guardConfig(a.Policy()), a.log.With("part", "respond"))
	a.health.set(finding.ComponentState{Name: "respond", Kind: "engine", State: finding.StateRunning, Reason: "firewall backend " + fw.Name()})
	a.OnPolicy(func(p policy.Policy) { a.guard.Configure(a.guardConfig(p)) })
}

// guardConfig maps the policy's response section onto the guard, adding what is never blocked.
func (a *Agent) guardConfig(p policy.Policy) respond.GuardConfig {
	r := p.Response
	cfg := respond.GuardConfig{DetectOnly: r.DetectOnly, BaseTTL: time.Duration(r.BaseTTL), MaxTTL: time.Duration(r.MaxTTL), Escalation: r.Escalation}
	for _, s := range r.Allow {
		if pfx, err := policy.ParsePrefix(s); err == nil {
			cfg.Allow = append(cfg.Allow, pfx)
		}
	}
	cfg.Console = consoleAddrs(a.id.Server)
	return cfg
}

// consoleAddrs resolves the console's address so it is never blocked.
func consoleAddrs(server string) []netip.Addr {
	host, _, err := net.SplitHostPort(server)
	if err != nil {
		host = server
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	ips, _ := net.LookupIP(host)
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// autoBlock blocks the source of a finding when the policy says so, and notes the decision in
// the finding's evidence before it is spooled.
func (a *Agent) autoBlock(ctx context.Context, f *finding.Finding) {
	p := a.Policy().Response
	if !p.AutoBlock || a.guard == nil || f.Evidence.SourceIP == "" || !contains(p.BlockRules, f.RuleID) {
		return
	}
	src, err := policy.ParsePrefix(f.Evidence.SourceIP)
	if err != nil {
		return
	}
	d, err := a.guard.Block(ctx, src, f.Title, "auto:"+f.RuleID)
	if f.Evidence.Fields == nil {
		f.Evidence.Fields = map[string]string{}
	}
	switch {
	case err != nil:
		f.Evidence.Fields["block"] = "failed: " + err.Error()
	case d.Refused != "":
		f.Evidence.Fields["block"] = "not blocked: " + d.Refused
	case d.WouldBlock:
		f.Evidence.Fields["block"] = fmt.Sprintf("detect-only: would have blocked for %s", d.TTL)
	case d.Blocked:
		f.Evidence.Fields["block"] = fmt.Sprintf("blocked for %s", d.TTL)
		a.blocksChanged()
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// blocksChanged makes the sender report the active blocks.
func (a *Agent) blocksChanged() {
	select {
	case a.blockReport <- struct{}{}:
	default:
	}
}

// blockReport lists the active blocks for the console.
func (a *Agent) activeBlocks(ctx context.Context) *pb.BlockReport {
	r := &pb.BlockReport{}
	if a.guard == nil {
		return r
	}
	r.Backend = a.guard.Backend()
	blocks, err := a.guard.Active(ctx)
	if err != nil {
		a.log.Warn("list blocks", "err", err)
		return r
	}
	for _, b := range blocks {
		ab := &pb.ActiveBlock{Prefix: b.Prefix.String(), Reason: b.Reason, Source: b.Source}
		if !b.Expires.IsZero() {
			ab.ExpiresUnix = b.Expires.Unix()
		}
		r.Blocks = append(r.Blocks, ab)
	}
	return r
}

// runBlockTask carries out an operator's block-ip or unblock-ip task.
func (a *Agent) runBlockTask(ctx context.Context, typ string, params json.RawMessage, operator string) (any, error) {
	var p task.BlockParams
	if err := task.Decode(typ, params, &p); err != nil {
		return nil, err
	}
	if a.guard == nil {
		return nil, errors.New("this host has no usable firewall (see the respond component's state)")
	}
	pfx := p.ParsedPrefix()
	res := task.BlockResult{Prefix: pfx.String(), Backend: a.guard.Backend()}
	if typ == task.UnblockIP {
		if err := a.guard.Unblock(ctx, pfx); err != nil {
			return nil, err
		}
		a.blocksChanged()
		return res, nil
	}
	d, err := a.guard.BlockFor(ctx, pfx, time.Duration(p.TTL), p.Reason, "operator:"+operator)
	if err != nil {
		return nil, err
	}
	res.Blocked, res.WouldBlock, res.Refused = d.Blocked, d.WouldBlock, d.Refused
	if d.Blocked && d.TTL > 0 {
		res.Expires = time.Now().Add(d.TTL).UTC()
	}
	if d.Blocked {
		a.blocksChanged()
	}
	return res, nil
}
