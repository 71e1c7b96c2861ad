// Package policy is the detection and response policy that the console sends to agents: which
// rules run, their thresholds, login allowlists, and whether and how sources are blocked.
//
// It is the wire and storage form, edited by operators through the API as JSON; the agent turns
// it into engine configurations. It decides nothing itself. A host gets its group's policy when
// the group has one, else the fleet policy, else Default.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
	"github.com/palisade-cwpp/palisade/internal/detect/login"
)

// Policy is everything an agent needs to know about how to detect and respond.
type Policy struct {
	BruteForce BruteForce `json:"bruteforce"`
	Login      Login      `json:"login"`
	Malware    Malware    `json:"malware"`
	Behavior   Behavior   `json:"behavior"`
	Response   Response   `json:"response"`
}

// Behavior switches and configures the behaviour engine; its keys are the engine's own
// configuration (disabled rules, allow entries, setuid_allow, max_pending).
type Behavior struct {
	Enabled bool `json:"enabled"`
	behavior.Config
}

// Malware tunes the malware engine.
type Malware struct {
	// Realtime scans files as they are written in the agent's watched directories.
	Realtime bool `json:"realtime"`
	// AllowSHA256 lists files (by SHA-256) never reported: false positives an operator cleared.
	AllowSHA256 []string `json:"allow_sha256,omitempty"`
}

// BruteForce tunes the brute-force engine. Zero thresholds mean the engine's defaults.
type BruteForce struct {
	Enabled bool `json:"enabled"`
	// Rules switches single rules off: {"bruteforce.user-enumeration": false}.
	Rules              map[string]bool `json:"rules,omitempty"`
	FailuresPerSource  int             `json:"failures_per_source,omitempty"`
	FailureWindow      Duration        `json:"failure_window,omitempty"`
	EnumerationUsers   int             `json:"enumeration_users,omitempty"`
	EnumerationWindow  Duration        `json:"enumeration_window,omitempty"`
	DistributedSources int             `json:"distributed_sources,omitempty"`
	DistributedWindow  Duration        `json:"distributed_window,omitempty"`
}

// Login switches and configures the abnormal-login engine; its keys are the engine's own
// configuration (rules, allowed_sources, home_regions, allowed_hours, learning_period, allow).
type Login struct {
	Enabled bool `json:"enabled"`
	login.Config
	// LearningPeriod, written "168h", stands in for the engine's field of the same name.
	LearningPeriod Duration `json:"learning_period,omitempty"`
}

// Response says what the agent does about attacking sources.
type Response struct {
	// AutoBlock blocks sources that the BlockRules flag.
	AutoBlock bool `json:"auto_block"`
	// DetectOnly reports what would have been blocked without blocking.
	DetectOnly bool `json:"detect_only"`
	// BlockRules are the rule IDs whose findings block their source.
	BlockRules []string `json:"block_rules,omitempty"`
	// Allow lists CIDRs never blocked (the console and loopback never are, regardless).
	Allow      []string `json:"allow,omitempty"`
	BaseTTL    Duration `json:"base_ttl,omitempty"`
	MaxTTL     Duration `json:"max_ttl,omitempty"`
	Escalation float64  `json:"escalation,omitempty"`
}

// Default is the policy of a fleet nobody configured: detect everything, block guessers for
// 10 minutes, escalating for repeat offenders up to a day.
func Default() Policy {
	return Policy{
		BruteForce: BruteForce{Enabled: true},
		Login:      Login{Enabled: true, Config: login.DefaultConfig()},
		Malware:    Malware{Realtime: true},
		Behavior:   Behavior{Enabled: true},
		Response: Response{
			AutoBlock:  true,
			BlockRules: []string{"bruteforce.password-guessing", "bruteforce.user-enumeration", "bruteforce.succeeded"},
			BaseTTL:    Duration(10 * time.Minute),
			MaxTTL:     Duration(24 * time.Hour),
			Escalation: 4,
		},
	}
}

// Duration is a time.Duration written as "10m" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "10m" (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("duration: want a string such as \"10m\"")
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Parse decodes a policy strictly (unknown keys are errors) over the defaults, so a key left
// out keeps its default, and validates it.
func Parse(b []byte) (Policy, error) {
	p := Default()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("policy: %w", err)
	}
	return p, p.Validate()
}

// Validate checks every field and names the bad ones.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	b := p.BruteForce
	for name, v := range map[string]int{"bruteforce.failures_per_source": b.FailuresPerSource, "bruteforce.enumeration_users": b.EnumerationUsers,
		"bruteforce.distributed_sources": b.DistributedSources} {
		if v < 0 || v > 100000 {
			bad("%s: %d out of range 0-100000", name, v)
		}
	}
	for name, v := range map[string]Duration{"bruteforce.failure_window": b.FailureWindow, "bruteforce.enumeration_window": b.EnumerationWindow,
		"bruteforce.distributed_window": b.DistributedWindow,
		"response.base_ttl":             p.Response.BaseTTL, "response.max_ttl": p.Response.MaxTTL} {
		if v < 0 || time.Duration(v) > 366*24*time.Hour {
			bad("%s: %s out of range 0-366 days", name, time.Duration(v))
		}
	}
	if time.Duration(p.Login.LearningPeriod) > 366*24*time.Hour {
		bad("login.learning_period: %s longer than 366 days", time.Duration(p.Login.LearningPeriod))
	}
	for i, a := range p.Login.Allow {
		if _, err := a.Validate(); err != nil {
			bad("login.allow[%d]: %v", i, err)
		}
	}
	for i, pl := range p.Login.HomeRegions {
		if pl.Country == "" {
			bad("login.home_regions[%d]: country is required", i)
		}
	}
	for i, h := range p.Malware.AllowSHA256 {
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			bad("malware.allow_sha256[%d]: want 64 hex digits", i)
		}
	}
	for i, a := range p.Behavior.Allow {
		if err := a.Validate(); err != nil {
			bad("behavior.allow[%d]: %v", i, err)
		}
	}
	if n := p.Behavior.MaxPending; n < 0 || n > 1<<20 {
		bad("behavior.max_pending: %d out of range 0-1048576", n)
	}
	for i, s := range p.Response.Allow {
		if _, err := ParsePrefix(s); err != nil {
			bad("response.allow[%d]: %v", i, err)
		}
	}
	if e := p.Response.Escalation; e != 0 && (e < 1 || e > 100) {
		bad("response.escalation: %v out of range 1-100", e)
	}
	if p.Response.MaxTTL != 0 && p.Response.BaseTTL > p.Response.MaxTTL {
		bad("response.base_ttl is longer than response.max_ttl")
	}
	return errors.Join(errs...)
}

// ParsePrefix reads a CIDR or a single address (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Encode returns the policy's canonical JSON and its version (a hash of that JSON).
func (p Policy) Encode() (body []byte, version string) {
	body, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("policy: encode: %v", err)) // only plain data: cannot fail
	}
	sum := sha256.Sum256(body)
	return body, hex.EncodeToString(sum[:8])
}

// RuleOn reports whether a rule is switched on in a rules map (rules are on unless set false).
func RuleOn(rules map[string]bool, id string) bool {
	on, set := rules[id]
	return !set || on
}
