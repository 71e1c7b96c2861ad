package policy

import (
	"time"

	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/detect/login"
)

// agentMaxTracked bounds the brute-force engine's tables on agents.
const agentMaxTracked = 5000

// EngineConfig turns the policy's brute-force section into the engine's configuration: the
// engine's defaults, with every threshold the policy sets, and rules switched off by name.
func (b BruteForce) EngineConfig() (bruteforce.Config, error) {
	c := bruteforce.DefaultConfig()
	set := func(t *bruteforce.Threshold, rule string, count int, window Duration) {
		if count > 0 {
			t.Count = count
		}
		if window > 0 {
			t.Window = time.Duration(window)
		}
		t.Enabled = RuleOn(b.Rules, rule)
	}
	set(&c.FailuresPerSource, bruteforce.RuleGuessing, b.FailuresPerSource, b.FailureWindow)
	set(&c.EnumerationUsers, bruteforce.RuleEnumeration, b.EnumerationUsers, b.EnumerationWindow)
	set(&c.DistributedSources, bruteforce.RuleDistributed, b.DistributedSources, b.DistributedWindow)
	set(&c.LocalFailures, bruteforce.RuleLocalAuth, 0, 0)
	c.SuccessLookback.Enabled = RuleOn(b.Rules, bruteforce.RuleSucceeded)
	// The engine's default table size is sized for a console-grade box; on an agent with a
	// 200 MB budget a flood of hostile long lines must not take more than about 45 MB.
	c.MaxTracked = agentMaxTracked
	return c, c.Validate()
}

// EngineConfig returns the login engine's configuration.
func (l Login) EngineConfig() login.Config {
	c := l.Config
	if l.LearningPeriod != 0 {
		c.LearningPeriod = time.Duration(l.LearningPeriod)
	}
	return c
}

// ForHost returns the policy as one host needs it: login allowlist entries scoped to other
// hosts or groups are left out (the agent does not learn about the rest of the fleet), and the
// scope of the remaining ones names just this host, which the agent knows itself by.
func (p Policy) ForHost(hostID, group string) Policy {
	var allow []login.Allow
	for _, a := range p.Login.Allow {
		if a.Scope.Applies(hostID, group) {
			if !a.Scope.Applies("", "") { // scoped: keep it scoped, to this host
				a.Scope = login.Scope{Hosts: []string{hostID}}
			}
			allow = append(allow, a)
		}
	}
	p.Login.Allow = allow
	return p
}
