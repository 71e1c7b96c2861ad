// Command repbench measures the console's hash reputation store at scale: it imports N
// opinions (default 10,000,000) into a fresh SQLite store in batches, as the import API does,
// then times single and batched look-ups of known and unknown hashes.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
)

func hashOf(i int) string {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	s := sha256.Sum256(b[:])
	return hex.EncodeToString(s[:])
}

func main() {
	n := flag.Int("n", 10_000_000, "opinions to import")
	dir := flag.String("dir", "", "directory for the database (default: a temporary one)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "repbench")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(*dir, "rep.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer s.Close()
	start := time.Now()
	batch := make([]store.ReputationEntry, 0, 10000)
	for i := 0; i < *n; i++ {
		v := store.VerdictMalicious
		if i%3 == 0 {
			v = store.VerdictClean
		}
		batch = append(batch, store.ReputationEntry{SHA256: hashOf(i), Source: fmt.Sprintf("feed-%d", i%4), Verdict: v, Family: "Family." + fmt.Sprint(i%500)})
		if len(batch) == cap(batch) {
			if err := s.ImportReputation(ctx, batch); err != nil {
				panic(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.ImportReputation(ctx, batch); err != nil {
		panic(err)
	}
	imp := time.Since(start)
	fi, _ := os.Stat(filepath.Join(*dir, "rep.db"))
	fmt.Printf("RESULT import opinions=%d seconds=%.1f per_second=%.0f db_mb=%.0f\n", *n, imp.Seconds(), float64(*n)/imp.Seconds(), float64(fi.Size())/(1<<20))

	// Single look-ups, half known and half unknown.
	const singles = 20000
	lat := make([]time.Duration, 0, singles)
	for i := 0; i < singles; i++ {
		h := hashOf((i * 7919) % *n)
		if i%2 == 1 {
			h = hashOf(*n + i)
		}
		t0 := time.Now()
		if _, err := s.LookupHashes(ctx, []string{h}); err != nil {
			panic(err)
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("RESULT single p50_us=%.0f p99_us=%.0f max_us=%.0f\n", us(lat[len(lat)/2]), us(lat[len(lat)*99/100]), us(lat[len(lat)-1]))

	// Batches of 1,000 (an agent's query), mixed.
	const batches = 200
	t0 := time.Now()
	q := make([]string, 1000)
	for b := 0; b < batches; b++ {
		for j := range q {
			k := (b*1000 + j) * 104729
			if j%2 == 1 {
				k = *n + k
			}
			q[j] = hashOf(k % (2 * *n))
		}
		if _, err := s.LookupHashes(ctx, q); err != nil {
			panic(err)
		}
	}
	el := time.Since(t0)
	fmt.Printf("RESULT batch1000 per_hash_us=%.1f hashes_per_second=%.0f\n", us(el)/float64(batches*1000), float64(batches*1000)/el.Seconds())
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
