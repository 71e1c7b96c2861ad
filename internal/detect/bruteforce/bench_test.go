package bruteforce_test

import (
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce/gen"
)

// benchLog is a generated sshd log (OpenSSH 9.2, Debian 12): 70% failures and probes from
// tens of thousands of addresses, attackers of every kind, benign logins, and the rest lines of
// other programs (cron, systemd, kernel, postfix, nginx...).
func benchLog(b *testing.B) [][]byte {
	b.Helper()
	var lines [][]byte
	gen.Generate(gen.Config{Lines: 300_000, Seed: 1, Flavor: gen.OpenSSH92, SSHOnly: true}, func(l []byte) {
		lines = append(lines, append([]byte(nil), l...))
	})
	return lines
}

func BenchmarkParseLine(b *testing.B) {
	lines := benchLog(b)
	p := bf.Parser{Year: 2026, Location: time.UTC}
	i, matched := 0, 0
	for b.Loop() {
		if _, ok := p.ParseLine(lines[i]); ok {
			matched++
		}
		if i++; i == len(lines) {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(100*float64(matched)/float64(b.N), "%matched")
}

func BenchmarkParseDetect(b *testing.B) {
	lines := benchLog(b)
	p := bf.Parser{Year: 2026, Location: time.UTC}
	d, _ := bf.NewDetector(bf.DefaultConfig())
	i, findings := 0, 0
	for b.Loop() {
		if e, ok := p.ParseLine(lines[i]); ok {
			findings += len(d.Observe(e))
		}
		if i++; i == len(lines) {
			// the log again: start over, as its times go back
			i = 0
			d, _ = bf.NewDetector(bf.DefaultConfig())
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(findings)*1e6/float64(b.N), "findings/Mline")
}
