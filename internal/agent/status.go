package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Status is the running agent's own account of itself, written to status.json in the data
// directory so that 'palisade-agent status' can read it without disturbing the agent.
type Status struct {
	HostID       string    `json:"host_id"`
	Server       string    `json:"server"`
	CAPin        string    `json:"ca_pin"`
	UpdatedAt    time.Time `json:"updated_at,omitzero"`
	Connected    bool      `json:"connected"`
	LastError    string    `json:"last_error,omitempty"`
	SpoolDepth   int64     `json:"spool_depth"`
	SpoolBytes   int64     `json:"spool_bytes"`
	SpoolDropped uint64    `json:"spool_dropped"`
	SpoolError   string    `json:"spool_error,omitempty"`
}

const statusFile = "status.json"

// writeStatus records the agent's state; failures are logged, not fatal.
func (a *Agent) writeStatus(connected bool, lastErr error) {
	st := a.spool.Stats()
	s := Status{HostID: a.id.HostID, Server: a.id.Server, CAPin: a.id.CAPin, UpdatedAt: time.Now().UTC(), Connected: connected,
		SpoolDepth: st.Depth, SpoolBytes: st.Bytes, SpoolDropped: st.Dropped}
	if lastErr != nil {
		s.LastError = lastErr.Error()
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := writeFileAtomic(filepath.Join(a.cfg.DataDir, statusFile), b, 0o600); err != nil {
		a.log.Warn("write status", "err", err)
	}
}

// ReadStatus reads the identity and the last status the agent wrote.
func ReadStatus(dir string) (Status, error) {
	id, err := LoadIdentity(dir)
	if err != nil {
		return Status{}, err
	}
	s := Status{HostID: id.HostID, Server: id.Server, CAPin: id.CAPin}
	b, err := os.ReadFile(filepath.Join(dir, statusFile))
	if errors.Is(err, os.ErrNotExist) {
		s.SpoolError = "agent has not run yet"
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		s.SpoolError = "status.json unreadable: " + err.Error()
	}
	return s, nil
}
