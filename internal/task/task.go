// Package task is the contract between console and agent about tasks: the names of the task
// types agents know and the parameters each takes. The console validates parameters with it
// before a task is stored; the agent decodes them with it before running one. An agent runs
// only these types: there is no task that runs a command.
package task

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-cwpp/palisade/internal/policy"
)

// Task types.
const (
	CollectFacts = "collect-facts" // no parameters; result: finding.HostFacts
	BlockIP      = "block-ip"      // BlockParams; result: BlockResult
	UnblockIP    = "unblock-ip"    // BlockParams (TTL and Reason unused); result: BlockResult
)

// Types lists every task type, for validation and help texts.
var Types = []string{CollectFacts, BlockIP, UnblockIP}

// BlockParams names a source to block or unblock.
type BlockParams struct {
	Prefix string          `json:"prefix"` // address or CIDR
	TTL    policy.Duration `json:"ttl,omitempty"`
	Reason string          `json:"reason,omitempty"`
}

// BlockResult says what the agent did.
type BlockResult struct {
	Prefix     string    `json:"prefix"`
	Blocked    bool      `json:"blocked"`
	WouldBlock bool      `json:"would_block,omitempty"` // detect-only mode
	Refused    string    `json:"refused,omitempty"`     // why not: loopback, allowlisted, the console...
	Expires    time.Time `json:"expires,omitzero"`
	Backend    string    `json:"backend,omitempty"`
}

// MaxBlockTTL bounds an operator's block; longer ones are refused rather than cut.
const MaxBlockTTL = 365 * 24 * time.Hour

// Decode parses and validates the parameters of a task of type typ into v (a pointer to the
// type's parameter struct), strictly: unknown fields are errors.
func Decode(typ string, params []byte, v any) error {
	if len(bytes.TrimSpace(params)) == 0 {
		params = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s parameters: %w", typ, err)
	}
	if bp, ok := v.(*BlockParams); ok {
		return bp.validate(typ)
	}
	return nil
}

// Validate checks a task's type and parameters without keeping them.
func Validate(typ string, params []byte) error {
	switch typ {
	case CollectFacts:
		return Decode(typ, params, &struct{}{})
	case BlockIP, UnblockIP:
		return Decode(typ, params, &BlockParams{})
	}
	return fmt.Errorf("unknown task type %q", typ)
}

func (p *BlockParams) validate(typ string) error {
	pfx, err := policy.ParsePrefix(p.Prefix)
	if err != nil {
		return fmt.Errorf("%s: prefix %q: %v", typ, p.Prefix, err)
	}
	if pfx.Addr().IsLoopback() || pfx.Addr().IsUnspecified() {
		return fmt.Errorf("%s: %s is never blocked", typ, pfx)
	}
	if min := map[bool]int{true: 8, false: 16}[pfx.Addr().Is4()]; pfx.Bits() < min {
		return fmt.Errorf("%s: %s is wider than /%d; block smaller networks", typ, pfx, min)
	}
	if p.TTL < 0 || time.Duration(p.TTL) > MaxBlockTTL {
		return fmt.Errorf("%s: ttl %s out of range 0-%s", typ, time.Duration(p.TTL), MaxBlockTTL)
	}
	if len(p.Reason) > 512 {
		return fmt.Errorf("%s: reason longer than 512 bytes", typ)
	}
	p.Prefix = pfx.String()
	return nil
}

// ParsedPrefix returns the validated prefix.
func (p BlockParams) ParsedPrefix() netip.Prefix {
	pfx, _ := policy.ParsePrefix(p.Prefix)
	return pfx
}
