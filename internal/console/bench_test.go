package console_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkFindingsEndToEnd measures findings per second from Agent.Emit through the spool,
// the mutual-TLS stream and the console's ingest into SQLite, until acknowledged.
func BenchmarkFindingsEndToEnd(b *testing.B) {
	tc := startConsole(b)
	ta := enrollAgent(b, tc)
	ta.start()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		f := testFinding(i)
		if err := ta.a.Emit(f); err != nil {
			b.Fatal(err)
		}
	}
	for ta.a.SpoolStats().Depth > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "findings/s")
	n, err := tc.c.Store.FindingCount(context.Background())
	if err != nil || n != int64(b.N) {
		b.Fatalf("stored %d of %d (%v)", n, b.N, err)
	}
}
