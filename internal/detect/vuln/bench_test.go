package vuln_test

import (
	"bytes"
	"runtime"
	"sync"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/detect/vuln"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln/osvgen"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

var (
	corpusOnce sync.Once
	debianZip  []byte
	ubuntuZip  []byte
)

// corpus is the synthetic Debian and Ubuntu data at full size (see osvgen for how it is shaped).
func corpus(b *testing.B) ([]byte, []byte) {
	corpusOnce.Do(func() {
		var d, u bytes.Buffer
		if err := osvgen.WriteDebian(&d, osvgen.Config{Seed: 1}); err != nil {
			b.Fatal(err)
		}
		if err := osvgen.WriteUbuntu(&u, osvgen.Config{Seed: 1}); err != nil {
			b.Fatal(err)
		}
		debianZip, ubuntuZip = d.Bytes(), u.Bytes()
	})
	return debianZip, ubuntuZip
}

func load(b *testing.B) *vuln.Index {
	d, u := corpus(b)
	bl := vuln.NewBuilder(vuln.BuiltinEmergency())
	for _, z := range [][]byte{d, u} {
		if _, err := bl.LoadArchive(bytes.NewReader(z), int64(len(z))); err != nil {
			b.Fatal(err)
		}
	}
	return bl.Build()
}

// BenchmarkLoadDebianUbuntu parses and indexes both archives, as an import or a console start
// does.
func BenchmarkLoadDebianUbuntu(b *testing.B) {
	d, u := corpus(b)
	b.SetBytes(int64(len(d) + len(u)))
	var idx *vuln.Index
	for b.Loop() {
		idx = load(b)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(idx.Len()), "advisories")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	runtime.KeepAlive(idx)
}

// BenchmarkMatch3000Packages matches one Debian 12 host of 3,000 packages against the full
// Debian and Ubuntu data.
func BenchmarkMatch3000Packages(b *testing.B) {
	idx := load(b)
	host := osvgen.DebianHost(osvgen.Config{Seed: 1}, 3000, 42)
	var n int
	for b.Loop() {
		n = len(idx.MatchPackages(host))
	}
	b.ReportMetric(float64(n), "matches")
}

// BenchmarkMatchFleet1000 matches 1,000 hosts of 3,000 packages each with one caching Matcher,
// as a fleet rematch does (engine only; the store's share is in vulndb's benchmark).
func BenchmarkMatchFleet1000(b *testing.B) {
	idx := load(b)
	hosts := make([][]finding.Package, 1000)
	for i := range hosts {
		hosts[i] = osvgen.DebianHost(osvgen.Config{Seed: 1}, 3000, uint64(i))
	}
	var n int
	for b.Loop() {
		n = 0
		m := idx.NewMatcher()
		for _, h := range hosts {
			n += len(m.MatchPackages(h))
		}
	}
	b.ReportMetric(float64(n)/float64(len(hosts)), "matches/host")
}
