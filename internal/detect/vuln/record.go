package vuln

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Record is the part of an OSV record (https://ossf.github.io/osv-schema/) the matcher reads.
// Parsing into this small struct instead of the full schema keeps a 1 GB import fast and lean.
type Record struct {
	ID               string          `json:"id"`
	Modified         time.Time       `json:"modified"`
	Withdrawn        *time.Time      `json:"withdrawn,omitempty"`
	Aliases          []string        `json:"aliases,omitempty"`
	Upstream         []string        `json:"upstream,omitempty"`
	Related          []string        `json:"related,omitempty"`
	Summary          string          `json:"summary,omitempty"`
	Details          string          `json:"details,omitempty"`
	Severity         []SeverityEntry `json:"severity,omitempty"`
	Affected         []Affected      `json:"affected"`
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// SeverityEntry is one OSV severity: a CVSS vector, or a distribution's own rating
// (type "Ubuntu", score "medium").
type SeverityEntry struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected names one package and the versions of it a record affects.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl,omitempty"`
	} `json:"package"`
	Severity          []SeverityEntry `json:"severity,omitempty"`
	Ranges            []Range         `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Range is an OSV range: events in order, of type ECOSYSTEM, SEMVER or GIT.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// ParseRecord decodes one OSV JSON record and checks the fields matching needs.
func ParseRecord(b []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode OSV record: %w", err)
	}
	if r.ID == "" {
		return nil, errors.New("OSV record without id")
	}
	if len(r.ID) > 256 {
		return nil, fmt.Errorf("OSV record id longer than 256 bytes")
	}
	return &r, nil
}

// textSeverity reads a distribution's own rating where OSV records carry one: Ubuntu's
// severity entry of type "Ubuntu", Debian's ecosystem_specific "urgency", GitHub's
// database_specific "severity".
func textSeverity(r *Record, a *Affected) string {
	for _, s := range append(append([]SeverityEntry(nil), a.Severity...), r.Severity...) {
		if s.Type == "Ubuntu" && s.Score != "" {
			return s.Score
		}
	}
	var spec struct {
		Urgency  string `json:"urgency"`
		Severity string `json:"severity"`
	}
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, r.DatabaseSpecific} {
		if len(raw) == 0 || json.Unmarshal(raw, &spec) != nil {
			continue
		}
		if spec.Severity != "" {
			return spec.Severity
		}
		if spec.Urgency != "" {
			return spec.Urgency
		}
	}
	return ""
}
