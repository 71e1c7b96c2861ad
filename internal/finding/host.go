package finding

import "time"

// HostFacts describes a server as its agent sees it.
type HostFacts struct {
	Hostname     string    `json:"hostname"`
	OSID         string    `json:"os_id,omitempty"`
	OSVersion    string    `json:"os_version,omitempty"`
	OSPretty     string    `json:"os_pretty,omitempty"`
	Kernel       string    `json:"kernel,omitempty"`
	Arch         string    `json:"arch,omitempty"`
	IPAddresses  []string  `json:"ip_addresses,omitempty"`
	AgentVersion string    `json:"agent_version,omitempty"`
	BootTime     time.Time `json:"boot_time,omitzero"`
	MachineID    string    `json:"machine_id,omitempty"`
}

// Component states, as reported in heartbeats.
const (
	StateRunning     = "running"
	StateDegraded    = "degraded"
	StateUnavailable = "unavailable"
)

// ComponentState is the health of one agent source or engine: a host whose log source is
// unavailable is not a quiet host, and the console shows the difference.
type ComponentState struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // "source" or "engine"
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// AgentStatus is what the latest heartbeat said about the agent itself.
type AgentStatus struct {
	Time              time.Time        `json:"time,omitzero"`
	CPUPercent        float64          `json:"cpu_percent"`
	RSSBytes          uint64           `json:"rss_bytes"`
	SpoolDepth        int64            `json:"spool_depth"`
	SpoolBytes        int64            `json:"spool_bytes"`
	SpoolDropped      uint64           `json:"spool_dropped"`
	CPUBudgetPercent  float64          `json:"cpu_budget_percent"`
	MemoryBudgetBytes uint64           `json:"memory_budget_bytes"`
	BudgetMode        string           `json:"budget_mode"`
	ThrottledMS       uint64           `json:"throttled_ms"`
	Components        []ComponentState `json:"components,omitempty"`
}
