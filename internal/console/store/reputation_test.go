package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestReputationAggregatesSources(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h := func(i int) string { return fmt.Sprintf("%064x", i) }
		err := s.ImportReputation(ctx, []ReputationEntry{
			{SHA256: h(1), Source: "feed-a", Verdict: VerdictMalicious, Family: "Mirai"},
			{SHA256: h(1), Source: "feed-b", Verdict: VerdictClean},
			{SHA256: h(1), Source: "feed-c", Verdict: VerdictMalicious, Family: "Mirai"},
			{SHA256: h(1), Source: "feed-d", Verdict: VerdictMalicious, Family: "Gafgyt"},
			{SHA256: h(2), Source: "feed-a", Verdict: VerdictSuspicious},
			{SHA256: strings.ToUpper(h(3)), Source: "feed-a", Verdict: VerdictClean},
		})
		if err != nil {
			t.Fatal(err)
		}
		// A source changing its mind replaces its earlier opinion.
		if err := s.ImportReputation(ctx, []ReputationEntry{{SHA256: h(2), Source: "feed-a", Verdict: VerdictMalicious, Family: "XMRig"}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupHashes(ctx, []string{h(1), h(2), h(3), h(4), strings.ToUpper(h(1))})
		if err != nil {
			t.Fatal(err)
		}
		want := []HashVerdict{
			{SHA256: h(1), Verdict: VerdictMalicious, Family: "Mirai", Sources: 4, Malicious: 3},
			{SHA256: h(2), Verdict: VerdictMalicious, Family: "XMRig", Sources: 1, Malicious: 1},
			{SHA256: h(3), Verdict: VerdictClean, Sources: 1},
			{SHA256: h(4), Verdict: VerdictUnknown},
			{SHA256: h(1), Verdict: VerdictMalicious, Family: "Mirai", Sources: 4, Malicious: 3},
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("hash %d: got %+v, want %+v", i, got[i], want[i])
			}
		}
		if n, _ := s.ReputationCount(ctx); n != 6 {
			t.Errorf("count %d, want 6", n)
		}
	})
}

// BenchmarkReputationLookup measures batched look-ups against a store of 1,000,000 opinions
// (bench/reputation.sh measures 10,000,000).
func BenchmarkReputationLookup(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir()+"/rep.db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1_000_000
	batch := make([]ReputationEntry, 0, 10000)
	for i := 0; i < n; i++ {
		batch = append(batch, ReputationEntry{SHA256: fmt.Sprintf("%064x", i*7919), Source: "bench", Verdict: VerdictMalicious, Family: "Test"})
		if len(batch) == cap(batch) {
			if err := s.ImportReputation(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	q := make([]string, 100)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for j := range q {
			q[j] = fmt.Sprintf("%064x", ((i*100+j)%(2*n))*7919)
		}
		if _, err := s.LookupHashes(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/hash")
}
