// Package task is the contract between console and agent about tasks: the names of the task
// types agents know and the parameters each takes. The console validates parameters with it
// before a task is stored; the agent decodes them with it before running one. An agent runs
// only these types: there is no task that runs a command.
package task

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/policy"
)

// Task types.
const (
	CollectFacts = "collect-facts"   // no parameters; result: finding.HostFacts
	BlockIP      = "block-ip"        // BlockParams; result: BlockResult
	UnblockIP    = "unblock-ip"      // BlockParams (TTL and Reason unused); result: BlockResult
	Quarantine   = "quarantine-file" // QuarantineParams; result: the quarantine record
	Restore      = "restore-file"    // RestoreParams; result: the quarantine record
	Scan         = "scan"            // ScanParams; result: counts and infected paths
	// CollectInventory refreshes the package inventory now; no parameters; result: counts.
	CollectInventory = "collect-inventory"
)

// Types lists every task type, for validation and help texts.
var Types = []string{CollectFacts, BlockIP, UnblockIP, Quarantine, Restore, Scan, CollectInventory}

// ScanParams says what a malware scan covers: "quick" (common drop locations and the running
// programs), "full" (the whole file system) or "custom" (Paths).
type ScanParams struct {
	Mode  string   `json:"mode"`
	Paths []string `json:"paths,omitempty"`
}

// QuarantineParams names the file to isolate. The SHA-256 is required: the agent isolates the
// file only if it is still the one that was flagged, so a task cannot be used to remove an
// arbitrary file by path.
type QuarantineParams struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Reason string `json:"reason,omitempty"`
}

// RestoreParams names a quarantine item.
type RestoreParams struct {
	ID string `json:"id"`
}

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
	switch p := v.(type) {
	case *BlockParams:
		return p.validate(typ)
	case *QuarantineParams:
		if !strings.HasPrefix(p.Path, "/") || len(p.Path) > 4096 || strings.ContainsRune(p.Path, 0) {
			return fmt.Errorf("%s: path must be absolute", typ)
		}
		if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%s: sha256 must be 64 hex digits", typ)
		}
	case *ScanParams:
		switch p.Mode {
		case "quick", "full":
		case "custom":
			if len(p.Paths) == 0 || len(p.Paths) > 100 {
				return fmt.Errorf("%s: custom mode needs 1-100 paths", typ)
			}
			for _, path := range p.Paths {
				if !strings.HasPrefix(path, "/") || strings.ContainsRune(path, 0) {
					return fmt.Errorf("%s: path %q must be absolute", typ, path)
				}
			}
		default:
			return fmt.Errorf("%s: mode must be quick, full or custom", typ)
		}
	case *RestoreParams:
		if p.ID == "" || len(p.ID) > 64 {
			return fmt.Errorf("%s: id is required", typ)
		}
	}
	return nil
}

// Validate checks a task's type and parameters without keeping them.
func Validate(typ string, params []byte) error {
	switch typ {
	case CollectFacts, CollectInventory:
		return Decode(typ, params, &struct{}{})
	case BlockIP, UnblockIP:
		return Decode(typ, params, &BlockParams{})
	case Quarantine:
		return Decode(typ, params, &QuarantineParams{})
	case Restore:
		return Decode(typ, params, &RestoreParams{})
	case Scan:
		return Decode(typ, params, &ScanParams{})
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
