package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/palisade-cwpp/palisade/internal/policy"
	pb "github.com/palisade-cwpp/palisade/proto/palisade/v1"
)

const policyFile = "policy.json"

// storedPolicy is the policy file: the last policy the console sent, so the agent detects and
// blocks by it while the console is away.
type storedPolicy struct {
	Version string          `json:"version"`
	Policy  json.RawMessage `json:"policy"`
}

// loadPolicy reads the saved policy, or returns the default when there is none.
func loadPolicy(dir string) (policy.Policy, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, policyFile))
	if errors.Is(err, os.ErrNotExist) {
		return policy.Default(), "", nil
	}
	if err != nil {
		return policy.Default(), "", fmt.Errorf("read policy: %w", err)
	}
	var sp storedPolicy
	if err := json.Unmarshal(b, &sp); err != nil {
		return policy.Default(), "", fmt.Errorf("parse %s: %w", policyFile, err)
	}
	p, err := policy.Parse(sp.Policy)
	if err != nil {
		return policy.Default(), "", fmt.Errorf("%s: %w", policyFile, err)
	}
	return p, sp.Version, nil
}

// Policy returns the policy in force.
func (a *Agent) Policy() policy.Policy { return *a.policy.Load() }

// OnPolicy registers fn to be called with every new policy (and once now with the current one).
func (a *Agent) OnPolicy(fn func(policy.Policy)) {
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	a.policyListeners = append(a.policyListeners, fn)
	fn(a.Policy()) // under the lock, so a policy arriving now is applied after this one

}

// applyPolicy takes a policy from the console: validates it, saves it, and hands it to the
// engines. A policy that does not validate is refused and the old one stays.
func (a *Agent) applyPolicy(m *pb.Policy) {
	a.policyMu.Lock()
	defer a.policyMu.Unlock()
	if m.GetVersion() == a.policyVersion {
		return
	}
	p, err := policy.Parse(m.GetJson())
	if err != nil {
		a.log.Error("console sent a policy that does not validate; keeping the current one", "err", err)
		return
	}
	b, _ := json.MarshalIndent(storedPolicy{Version: m.GetVersion(), Policy: m.GetJson()}, "", "  ")
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, policyFile), b, 0o600); err != nil {
		a.log.Warn("save policy", "err", err)
	}
	a.policy.Store(&p)
	a.policyVersion = m.GetVersion()
	a.log.Info("policy applied", "version", m.GetVersion())
	for _, fn := range a.policyListeners {
		fn(p)
	}
}
