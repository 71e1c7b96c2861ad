package vuln

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// FuzzParseRecord feeds arbitrary JSON through parsing, compiling and matching: nothing may
// panic, whatever versions and events a record holds.
func FuzzParseRecord(f *testing.F) {
	files, _ := filepath.Glob("testdata/osv/*.json")
	for _, fn := range files {
		b, _ := os.ReadFile(fn)
		f.Add(b, "1.0")
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"fixed":"::"},{"introduced":"~"}]}]}]}`), "1:")
	f.Fuzz(func(t *testing.T, data []byte, version string) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		b := NewBuilder(BuiltinEmergency())
		b.AddRecord(r)
		idx := b.Build()
		for _, a := range r.Affected {
			idx.MatchPackages([]finding.Package{{Ecosystem: a.Package.Ecosystem, Name: a.Package.Name, SourceName: a.Package.Name, Version: version}})
		}
	})
}
