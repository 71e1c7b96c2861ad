package vuln

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Emergency is a high-profile vulnerability from the curated list.
type Emergency struct {
	ID          string   `yaml:"id" json:"id"`
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	Packages    []string `yaml:"packages" json:"packages,omitempty"`
}

// EmergencyList is the curated list, by CVE ID.
type EmergencyList struct {
	byCVE map[string]*Emergency
	all   []*Emergency
}

//go:embed emergency.yaml
var builtinEmergency []byte

var cvePattern = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)

// BuiltinEmergency returns the list shipped with Palisade (emergency.yaml in this package).
func BuiltinEmergency() *EmergencyList {
	l, err := ParseEmergency(builtinEmergency)
	if err != nil {
		panic(fmt.Sprintf("vuln: built-in emergency.yaml: %v", err))
	}
	return l
}

// ParseEmergency reads an emergency list strictly: unknown keys and incomplete entries are errors
// naming the entry.
func ParseEmergency(b []byte) (*EmergencyList, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var entries []*Emergency
	if err := dec.Decode(&entries); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("emergency list: %w", err)
	}
	l := &EmergencyList{byCVE: map[string]*Emergency{}}
	for i, e := range entries {
		if !cvePattern.MatchString(e.ID) || e.Name == "" || e.Description == "" {
			return nil, fmt.Errorf("emergency list entry %d (%q): needs a CVE id, a name and a description", i+1, e.ID)
		}
		if _, dup := l.byCVE[e.ID]; dup {
			return nil, fmt.Errorf("emergency list entry %d: %s listed twice", i+1, e.ID)
		}
		l.byCVE[e.ID] = e
		l.all = append(l.all, e)
	}
	return l, nil
}

// All returns the entries in file order.
func (l *EmergencyList) All() []*Emergency { return l.all }

// Lookup returns the emergency entry a record is about, by its ID, aliases or upstream IDs.
// Distribution records carry the CVE in their ID ("DEBIAN-CVE-2024-6387", "UBUNTU-CVE-…") or
// in aliases/upstream ("DSA-5724-1" has upstream CVE-2024-6387).
func (l *EmergencyList) Lookup(r *Record) *Emergency {
	for _, ids := range [][]string{{r.ID}, r.Aliases, r.Upstream} {
		for _, id := range ids {
			if i := strings.Index(id, "CVE-"); i >= 0 {
				if e, ok := l.byCVE[id[i:]]; ok {
					return e
				}
			}
		}
	}
	return nil
}
