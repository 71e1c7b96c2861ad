package spool

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// payloadFor returns the deterministic, self-describing payload of record
// number k: 8 bytes of k followed by pseudo-random filler, 20..719 bytes in
// all. checkPayload recognises it.
func payloadFor(k uint64) []byte {
	n := 20 + int(k*7919%700)
	p := make([]byte, n)
	binary.LittleEndian.PutUint64(p, k)
	x := k*0x9E3779B97F4A7C15 + 1
	for i := 8; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
	return p
}

// checkPayload returns k if p is exactly payloadFor(k).
func checkPayload(p []byte) (uint64, bool) {
	if len(p) < 8 {
		return 0, false
	}
	k := binary.LittleEndian.Uint64(p)
	return k, bytes.Equal(p, payloadFor(k))
}

func mustOpen(t testing.TB, dir string, opt Options) *Spool {
	t.Helper()
	s, err := Open(dir, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func mustClose(t testing.TB, s *Spool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustAppend(t testing.TB, s *Spool, data ...[]byte) uint64 {
	t.Helper()
	seq, err := s.Append(data...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return seq
}

func mustAck(t testing.TB, s *Spool, seq uint64) {
	t.Helper()
	if err := s.Ack(seq); err != nil {
		t.Fatalf("Ack(%d): %v", seq, err)
	}
}

// readAll returns every unacked record with Seq > after.
func readAll(t testing.TB, s *Spool, after uint64) []Record {
	t.Helper()
	recs, err := s.Read(after, 0, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return recs
}

// appendN appends payloadFor(from..from+n-1) one record per call and returns
// the seqs.
func appendN(t testing.TB, s *Spool, from, n uint64) []uint64 {
	t.Helper()
	var seqs []uint64
	for k := from; k < from+n; k++ {
		seqs = append(seqs, mustAppend(t, s, payloadFor(k)))
	}
	return seqs
}

// seqsOf lists the Seq of each record.
func seqsOf(recs []Record) []uint64 {
	var out []uint64
	for _, r := range recs {
		out = append(out, r.Seq)
	}
	return out
}

// seqRange returns [from, to].
func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// segFiles lists the segment files in dir, in order.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func frameSize(p []byte) int64 { return frameHeaderSize + int64(len(p)) }

func TestAppendReadAckRoundTrip(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer mustClose(t, s)

	if got := mustAppend(t, s, []byte("a"), []byte("bb"), []byte("ccc")); got != 3 {
		t.Fatalf("batch lastSeq = %d, want 3", got)
	}
	if got := mustAppend(t, s, []byte("dddd")); got != 4 {
		t.Fatalf("lastSeq = %d, want 4", got)
	}
	if got := mustAppend(t, s, []byte("eeeee")); got != 5 {
		t.Fatalf("lastSeq = %d, want 5", got)
	}
	want := []string{"a", "bb", "ccc", "dddd", "eeeee"}
	recs := readAll(t, s, 0)
	if len(recs) != len(want) {
		t.Fatalf("Read returned %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || string(r.Data) != want[i] {
			t.Fatalf("record %d = {%d %q}, want {%d %q}", i, r.Seq, r.Data, i+1, want[i])
		}
	}
	if got := seqsOf(readAll(t, s, 2)); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("Read(after=2) seqs = %v", got)
	}
	st := s.Stats()
	if st.Depth != 5 || st.Bytes != 5*frameHeaderSize+15 || st.NextSeq != 6 || st.AckedSeq != 0 {
		t.Fatalf("Stats = %+v", st)
	}

	mustAck(t, s, 3)
	if s.AckedSeq() != 3 {
		t.Fatalf("AckedSeq = %d, want 3", s.AckedSeq())
	}
	if got := seqsOf(readAll(t, s, 0)); !slices.Equal(got, []uint64{4, 5}) {
		t.Fatalf("after Ack(3), Read(0) seqs = %v, want [4 5]: acked records must not come back", got)
	}
	if st := s.Stats(); st.Depth != 2 || st.Bytes != 2*frameHeaderSize+9 {
		t.Fatalf("after Ack(3) Stats = %+v", st)
	}

	mustAck(t, s, 2) // backwards: no-op
	if s.AckedSeq() != 3 {
		t.Fatalf("acking backwards moved AckedSeq to %d", s.AckedSeq())
	}
	if err := s.Ack(6); err == nil {
		t.Fatal("Ack beyond the last appended record succeeded")
	}
	mustAck(t, s, 5)
	if st := s.Stats(); st.Depth != 0 || st.Bytes != 0 || st.AckedSeq != 5 {
		t.Fatalf("after Ack(5) Stats = %+v", st)
	}
	if recs := readAll(t, s, 0); len(recs) != 0 {
		t.Fatalf("Read after acking everything returned %d records", len(recs))
	}

	// Returned data belongs to the caller.
	mustAppend(t, s, []byte("xyz"))
	r1 := readAll(t, s, 0)
	r1[0].Data[0] = 'Q'
	if r2 := readAll(t, s, 0); string(r2[0].Data) != "xyz" {
		t.Fatalf("modifying a returned record changed the spool: %q", r2[0].Data)
	}
}

func TestReadHonoursLimits(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{SegmentBytes: 350}) // 3 records of 100 bytes per segment
	defer mustClose(t, s)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, bytes.Repeat([]byte{byte('a' + i)}, 100))
	}
	if n := len(segFiles(t, s.dir)); n != 4 {
		t.Fatalf("have %d segment files, want 4", n)
	}
	tests := []struct {
		name     string
		after    uint64
		max      int
		maxBytes int
		want     []uint64
	}{
		{"no limits", 0, 0, 0, seqRange(1, 10)},
		{"max records", 0, 3, 0, seqRange(1, 3)},
		{"max records across segments", 2, 5, 0, seqRange(3, 7)},
		{"max bytes", 0, 0, 250, seqRange(1, 2)},
		{"max bytes exact", 0, 0, 300, seqRange(1, 3)},
		{"first record always returned", 0, 0, 50, seqRange(1, 1)},
		{"both limits, records bind", 4, 2, 1000, seqRange(5, 6)},
		{"both limits, bytes bind", 4, 9, 400, seqRange(5, 8)},
		{"after mid segment", 8, 0, 0, seqRange(9, 10)},
		{"after last", 10, 0, 0, nil},
		{"after beyond end", 1000, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.Read(tc.after, tc.max, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqsOf(recs); !slices.Equal(got, tc.want) {
				t.Fatalf("seqs = %v, want %v", got, tc.want)
			}
			for _, r := range recs {
				if !bytes.Equal(r.Data, bytes.Repeat([]byte{byte('a' + r.Seq - 1)}, 100)) {
					t.Fatalf("record %d has wrong data", r.Seq)
				}
			}
		})
	}
}

func TestRestartKeepsUnackedRecordsAndContinuesSeq(t *testing.T) {
	tests := []struct {
		name      string
		opt       Options
		n         uint64
		ack       uint64
		removeAck bool // lose the ack file before reopening
	}{
		{"partly acked", Options{}, 10, 4, false},
		{"nothing acked", Options{}, 10, 0, false},
		{"all acked", Options{}, 10, 10, false},
		{"all acked, many segments", Options{SegmentBytes: 1000}, 50, 50, false},
		{"partly acked, many segments, sync", Options{SegmentBytes: 1000, Sync: true}, 50, 23, false},
		{"ack file lost", Options{SegmentBytes: 1000}, 50, 23, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, tc.opt)
			appendN(t, s, 0, tc.n)
			if tc.ack > 0 {
				mustAck(t, s, tc.ack)
			}
			before := s.Stats()
			mustClose(t, s)
			if tc.removeAck {
				if err := os.Remove(filepath.Join(dir, ackName)); err != nil {
					t.Fatal(err)
				}
			}

			s = mustOpen(t, dir, tc.opt)
			defer mustClose(t, s)
			st := s.Stats()
			wantAcked := tc.ack
			if tc.removeAck {
				wantAcked = 0
			}
			if st.AckedSeq != wantAcked || st.Corrupt != 0 || st.NextSeq != tc.n+1 {
				t.Fatalf("Stats after reopen = %+v (before close: %+v)", st, before)
			}
			if !tc.removeAck && (st.Depth != before.Depth || st.Bytes != before.Bytes) {
				t.Fatalf("Depth/Bytes changed across restart: %+v -> %+v", before, st)
			}
			recs := readAll(t, s, 0)
			first := tc.ack + 1
			if tc.removeAck {
				first = recs[0].Seq // segments fully acked before the loss are gone
				if first > tc.ack+1 {
					t.Fatalf("unacked record %d lost with the ack file", tc.ack+1)
				}
			}
			if got, want := seqsOf(recs), seqRange(first, tc.n); !slices.Equal(got, want) {
				t.Fatalf("seqs after reopen = %v, want %v", got, want)
			}
			for _, r := range recs {
				if k, ok := checkPayload(r.Data); !ok || k != r.Seq-1 {
					t.Fatalf("record %d damaged across restart", r.Seq)
				}
			}
			if seq := mustAppend(t, s, []byte("next")); seq != tc.n+1 {
				t.Fatalf("first Append after restart got seq %d, want %d", seq, tc.n+1)
			}
		})
	}
}

func TestTornTailIsTruncatedAndCounted(t *testing.T) {
	// Five records of 108 bytes on disk each; the last one gets damaged.
	tests := []struct {
		name      string
		damage    func(b []byte) []byte
		survivors uint64
	}{
		{"truncated mid payload", func(b []byte) []byte { return b[:len(b)-50] }, 4},
		{"truncated mid header", func(b []byte) []byte { return b[:4*108+5] }, 4},
		{"random garbage appended", func(b []byte) []byte {
			g := make([]byte, 333)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range g {
				g[i] = byte(r.Uint32())
			}
			return append(b, g...)
		}, 5},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 5},
		{"header promising more than the file holds", func(b []byte) []byte {
			return append(b, 0xff, 0xff, 0x00, 0x00, 1, 2, 3, 4, 'x')
		}, 5},
		{"length over MaxRecordBytes", func(b []byte) []byte {
			b = binary.LittleEndian.AppendUint32(b, MaxRecordBytes+1)
			return append(b, make([]byte, 100)...)
		}, 5},
		{"checksum mismatch in last record", func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b }, 4},
		{"whole file garbage", func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), 40) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, Options{})
			for i := 0; i < 5; i++ {
				mustAppend(t, s, bytes.Repeat([]byte{byte('a' + i)}, 100))
			}
			mustClose(t, s)
			segs := segFiles(t, dir)
			if len(segs) != 1 {
				t.Fatalf("have %d segments, want 1", len(segs))
			}
			b, err := os.ReadFile(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(segs[0], tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			s = mustOpen(t, dir, Options{})
			st := s.Stats()
			if st.Corrupt != 1 {
				t.Fatalf("Corrupt = %d, want 1", st.Corrupt)
			}
			if st.Depth != int64(tc.survivors) {
				t.Fatalf("Depth = %d, want %d", st.Depth, tc.survivors)
			}
			recs := readAll(t, s, 0)
			if got, want := seqsOf(recs), seqRange(1, tc.survivors); !slices.Equal(got, want) {
				t.Fatalf("surviving seqs = %v, want %v", got, want)
			}
			for _, r := range recs {
				if !bytes.Equal(r.Data, bytes.Repeat([]byte{byte('a' + r.Seq - 1)}, 100)) {
					t.Fatalf("record %d damaged", r.Seq)
				}
			}
			if fi, err := os.Stat(segs[0]); err == nil && fi.Size() != int64(tc.survivors)*108 {
				t.Fatalf("segment is %d bytes after repair, want %d", fi.Size(), tc.survivors*108)
			}
			// Seqs that may have been handed out are never reused.
			seq := mustAppend(t, s, []byte("after repair"))
			if seq <= 5 {
				t.Fatalf("Append after repair reused seq %d", seq)
			}
			mustClose(t, s)

			// The repair is durable: a second open finds nothing wrong.
			s = mustOpen(t, dir, Options{})
			defer mustClose(t, s)
			if st := s.Stats(); st.Corrupt != 0 {
				t.Fatalf("second open found Corrupt = %d", st.Corrupt)
			}
			recs = readAll(t, s, 0)
			if len(recs) != int(tc.survivors)+1 || recs[len(recs)-1].Seq != seq || string(recs[len(recs)-1].Data) != "after repair" {
				t.Fatalf("after reopen got seqs %v", seqsOf(recs))
			}
		})
	}
}

func TestCorruptFrameInEarlierSegmentSkipsRestOfThatSegment(t *testing.T) {
	dir := t.TempDir()
	opt := Options{SegmentBytes: 350} // 3 records of 100 bytes per segment
	s := mustOpen(t, dir, opt)
	for i := 0; i < 9; i++ {
		mustAppend(t, s, bytes.Repeat([]byte{byte('a' + i)}, 100))
	}
	mustClose(t, s)
	segs := segFiles(t, dir)
	if len(segs) != 3 {
		t.Fatalf("have %d segments, want 3", len(segs))
	}
	// Damage record 2's payload (segment 1 holds seqs 1..3).
	b, _ := os.ReadFile(segs[0])
	b[108+8+10] ^= 1
	os.WriteFile(segs[0], b, 0o600)

	s = mustOpen(t, dir, opt)
	defer mustClose(t, s)
	if st := s.Stats(); st.Corrupt != 1 {
		t.Fatalf("Corrupt = %d, want 1", st.Corrupt)
	}
	want := []uint64{1, 4, 5, 6, 7, 8, 9}
	if got := seqsOf(readAll(t, s, 0)); !slices.Equal(got, want) {
		t.Fatalf("seqs = %v, want %v", got, want)
	}
	if seq := mustAppend(t, s, []byte("x")); seq != 10 {
		t.Fatalf("next seq = %d, want 10", seq)
	}
	mustAck(t, s, 1)
	if got := segFiles(t, dir); len(got) != 2 || filepath.Base(got[0]) != segName(4) {
		t.Fatalf("acking the readable part of segment 1 should delete it; have %v", got)
	}
	if got := seqsOf(readAll(t, s, 0)); !slices.Equal(got, []uint64{4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("seqs = %v", got)
	}
}

func TestOverlappingSegmentsLaterOneWins(t *testing.T) {
	dir := t.TempDir()
	var a, b []byte
	for k := uint64(0); k < 5; k++ {
		a = appendFrame(a, payloadFor(k)) // seqs 1..5
	}
	for k := uint64(100); k < 102; k++ {
		b = appendFrame(b, payloadFor(k)) // seqs 3..4
	}
	os.WriteFile(filepath.Join(dir, segName(1)), a, 0o600)
	os.WriteFile(filepath.Join(dir, segName(3)), b, 0o600)
	s := mustOpen(t, dir, Options{})
	defer mustClose(t, s)
	if st := s.Stats(); st.Corrupt != 3 || st.Depth != 4 || st.NextSeq != 5 {
		t.Fatalf("Stats = %+v, want Corrupt 3, Depth 4, NextSeq 5", st)
	}
	recs := readAll(t, s, 0)
	wantK := []uint64{0, 1, 100, 101}
	for i, r := range recs {
		if k, ok := checkPayload(r.Data); !ok || r.Seq != uint64(i+1) || k != wantK[i] {
			t.Fatalf("record %d: seq %d k %d ok %v", i, r.Seq, k, ok)
		}
	}
}

func TestFullSpoolRefusesAndCountsDroppedUntilAckFreesSpace(t *testing.T) {
	rec := bytes.Repeat([]byte("f"), 100) // 108 bytes on disk
	s := mustOpen(t, t.TempDir(), Options{MaxBytes: 10 * 108})
	defer mustClose(t, s)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, rec)
	}
	steps := []struct {
		name        string
		ack         uint64
		batch       int
		wantErr     bool
		wantDropped uint64
		wantDepth   int64
	}{
		{"one more record", 0, 1, true, 1, 10},
		{"a batch", 0, 3, true, 4, 10},
		{"after acking five, three fit", 5, 3, false, 4, 8},
		{"the next three do not", 0, 3, true, 7, 8},
		{"but two do", 0, 2, false, 7, 10},
		{"acking everything frees all", 15, 10, false, 7, 10},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.ack > 0 {
				mustAck(t, s, st.ack)
			}
			before := s.Stats().NextSeq
			batch := make([][]byte, st.batch)
			for i := range batch {
				batch[i] = rec
			}
			seq, err := s.Append(batch...)
			if st.wantErr {
				if !errors.Is(err, ErrFull) {
					t.Fatalf("Append err = %v, want ErrFull", err)
				}
				if seq != 0 {
					t.Fatalf("refused Append returned seq %d", seq)
				}
			} else if err != nil {
				t.Fatalf("Append: %v", err)
			}
			got := s.Stats()
			if got.Dropped != st.wantDropped || got.Depth != st.wantDepth {
				t.Fatalf("Stats = %+v, want Dropped %d Depth %d", got, st.wantDropped, st.wantDepth)
			}
			if st.wantErr && got.NextSeq != before {
				t.Fatalf("refused Append consumed seqs: NextSeq %d -> %d", before, got.NextSeq)
			}
			if got.Bytes > 10*108 {
				t.Fatalf("Bytes %d over the cap", got.Bytes)
			}
		})
	}
}

func TestAckDeletesFullyAckedSegments(t *testing.T) {
	dir := t.TempDir()
	opt := Options{SegmentBytes: 300} // 2 records of 100 bytes per segment
	s := mustOpen(t, dir, opt)
	for i := 0; i < 10; i++ {
		mustAppend(t, s, bytes.Repeat([]byte("s"), 100))
	}
	if n := len(segFiles(t, dir)); n != 5 {
		t.Fatalf("%d segment files, want 5", n)
	}
	steps := []struct {
		ack      uint64
		wantSegs []string
	}{
		{1, []string{segName(1), segName(3), segName(5), segName(7), segName(9)}},
		{4, []string{segName(5), segName(7), segName(9)}},
		{3, []string{segName(5), segName(7), segName(9)}}, // backwards: no-op
		{9, []string{segName(9)}},
		{10, []string{segName(9)}}, // the current segment stays
	}
	for _, st := range steps {
		mustAck(t, s, st.ack)
		var got []string
		for _, p := range segFiles(t, dir) {
			got = append(got, filepath.Base(p))
		}
		if !slices.Equal(got, st.wantSegs) {
			t.Fatalf("after Ack(%d): segments %v, want %v", st.ack, got, st.wantSegs)
		}
	}
	// Rolling over lets the next Ack delete the old current segment.
	mustAppend(t, s, bytes.Repeat([]byte("s"), 200))
	mustAck(t, s, 11)
	if got := segFiles(t, dir); len(got) != 1 || filepath.Base(got[0]) != segName(11) {
		t.Fatalf("after roll-over and Ack(11): %v", got)
	}
	mustClose(t, s)

	// Reopening a fully acked spool starts a fresh segment at the next seq.
	s = mustOpen(t, dir, opt)
	defer mustClose(t, s)
	if got := segFiles(t, dir); len(got) != 1 || filepath.Base(got[0]) != segName(12) {
		t.Fatalf("after reopen: %v", got)
	}
	if seq := mustAppend(t, s, []byte("x")); seq != 12 {
		t.Fatalf("seq after reopen = %d, want 12", seq)
	}
}

func TestAppendRejectsInvalidRecordsWithoutStoringAny(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	defer mustClose(t, s)
	tests := []struct {
		name  string
		batch [][]byte
		is    error
	}{
		{"too large", [][]byte{make([]byte, MaxRecordBytes+1)}, ErrTooLarge},
		{"too large after a good one", [][]byte{[]byte("ok"), make([]byte, MaxRecordBytes+1)}, ErrTooLarge},
		{"empty", [][]byte{{}}, nil},
		{"nil after a good one", [][]byte{[]byte("ok"), nil}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq, err := s.Append(tc.batch...)
			if err == nil || seq != 0 {
				t.Fatalf("Append = %d, %v; want an error", seq, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if st := s.Stats(); st.Depth != 0 || st.NextSeq != 1 || st.Dropped != 0 {
				t.Fatalf("rejected batch changed state: %+v", st)
			}
		})
	}
	if seq, err := s.Append(); seq != 0 || err != nil {
		t.Fatalf("empty Append = %d, %v", seq, err)
	}
	// The largest allowed record works and round-trips.
	big := bytes.Repeat([]byte{0xab}, MaxRecordBytes)
	mustAppend(t, s, big)
	if recs := readAll(t, s, 0); len(recs) != 1 || !bytes.Equal(recs[0].Data, big) {
		t.Fatal("MaxRecordBytes record did not round-trip")
	}
}

func TestWaitIsClosedByAppendAndClose(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch1 := s.Wait()
	if ch1 != s.Wait() {
		t.Fatal("two Waits between Appends returned different channels")
	}
	if closed(ch1) {
		t.Fatal("Wait channel closed before any Append")
	}
	s.Append() // an empty Append appends nothing
	if closed(ch1) {
		t.Fatal("empty Append closed the Wait channel")
	}
	mustAppend(t, s, []byte("x"))
	if !closed(ch1) {
		t.Fatal("Append did not close the Wait channel")
	}
	ch2 := s.Wait()
	if closed(ch2) {
		t.Fatal("Wait after Append returned a closed channel")
	}
	done := make(chan struct{})
	go func() {
		<-ch2
		close(done)
	}()
	mustAppend(t, s, []byte("y"))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked waiter was not woken by Append")
	}
	ch3 := s.Wait()
	mustClose(t, s)
	if !closed(ch3) || !closed(s.Wait()) {
		t.Fatal("Close did not close the Wait channel")
	}
}

func TestClosedSpoolRefusesOperations(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	mustAppend(t, s, []byte("x"))
	mustClose(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append([]byte("y")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Read(0, 0, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := s.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

func TestSecondOpenOfSameDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	if s2, err := Open(dir, Options{}); err == nil {
		s2.Close()
		t.Fatal("second Open of an open spool succeeded")
	}
	mustClose(t, s)
	mustClose(t, mustOpen(t, dir, Options{}))
}

func TestOpenRejectsNegativeOptions(t *testing.T) {
	for _, opt := range []Options{{MaxBytes: -1}, {SegmentBytes: -1}} {
		if s, err := Open(t.TempDir(), opt); err == nil {
			s.Close()
			t.Fatalf("Open(%+v) succeeded", opt)
		}
	}
}

func TestGarbageFilesInDirectoryAreIgnored(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	appendN(t, s, 0, 5)
	mustAck(t, s, 2)
	mustClose(t, s)

	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("notes.txt", []byte("hello"))
	write("foo.seg", []byte("not a segment"))
	write("123.seg", appendFrame(nil, []byte("short name")))
	write("0000000000000000000x.seg", nil)
	write(segName(0), appendFrame(nil, []byte("seq zero is not valid")))
	write("99999999999999999999.seg", appendFrame(nil, []byte("overflows uint64")))
	write(ackTmpName, []byte("half-written ack"))
	if err := os.Mkdir(filepath.Join(dir, segName(1000000)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, segName(2000000))); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, dir, Options{})
	if st := s.Stats(); st.AckedSeq != 2 || st.Depth != 3 || st.NextSeq != 6 || st.Corrupt != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	if got := seqsOf(readAll(t, s, 0)); !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Fatalf("seqs = %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ackTmpName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("leftover ack.tmp was not removed")
	}
	mustClose(t, s)

	// A corrupt ack file means "nothing acked": records come again, seqs go on.
	for _, garbage := range [][]byte{nil, []byte("SPAK"), bytes.Repeat([]byte{0xff}, ackSize), []byte("SPAK\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")} {
		write(ackName, garbage)
		s = mustOpen(t, dir, Options{})
		if st := s.Stats(); st.AckedSeq != 0 || st.NextSeq != 6 {
			t.Fatalf("ack %q: Stats = %+v", garbage, st)
		}
		if got := seqsOf(readAll(t, s, 0)); len(got) == 0 || got[len(got)-1] != 5 {
			t.Fatalf("ack %q: seqs = %v", garbage, got)
		}
		mustClose(t, s)
	}
}

func TestReadSkipsCorruptionThatAppearsAfterOpen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer mustClose(t, s)
	for i := 0; i < 5; i++ {
		mustAppend(t, s, bytes.Repeat([]byte{byte('a' + i)}, 100))
	}
	// Flip a byte of record 3 behind the Spool's back.
	f, err := os.OpenFile(segFiles(t, dir)[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{'Z'}, 2*108+8+50)
	f.Close()

	if got := seqsOf(readAll(t, s, 0)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("seqs = %v, want [1 2]", got)
	}
	if st := s.Stats(); st.Corrupt != 1 {
		t.Fatalf("Corrupt = %d, want 1", st.Corrupt)
	}
	// New records go to a fresh segment and are readable.
	seq := mustAppend(t, s, []byte("fresh"))
	if got := seqsOf(readAll(t, s, 2)); !slices.Equal(got, []uint64{seq}) {
		t.Fatalf("seqs after new append = %v, want [%d]", got, seq)
	}
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segment files, want 2", n)
	}
	mustAck(t, s, seq)
	if st := s.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Fatalf("after acking past the damage: %+v", st)
	}
}

func TestConcurrentAppenderAndReader(t *testing.T) {
	const total = 4000
	dir := t.TempDir()
	// Small segments and cap, so rolls, deletions and ErrFull all happen
	// while the reader is reading.
	s := mustOpen(t, dir, Options{SegmentBytes: 8 << 10, MaxBytes: 64 << 10})
	defer mustClose(t, s)

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { // appender
		defer wg.Done()
		r := rand.New(rand.NewPCG(7, 7))
		for k := uint64(0); k < total; {
			n := min(uint64(1+r.IntN(30)), total-k)
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = payloadFor(k + uint64(i))
			}
			last, err := s.Append(batch...)
			if errors.Is(err, ErrFull) {
				time.Sleep(50 * time.Microsecond)
				continue // not stored: retry the same batch
			}
			if err != nil {
				errc <- fmt.Errorf("Append: %w", err)
				return
			}
			if last != k+n {
				errc <- fmt.Errorf("batch %d..%d got lastSeq %d", k, k+n-1, last)
				return
			}
			k += n
		}
	}()
	go func() { // reader + acker
		defer wg.Done()
		var last uint64
		for last < total {
			ch := s.Wait()
			recs, err := s.Read(last, 64, 16<<10)
			if err != nil {
				errc <- fmt.Errorf("Read: %w", err)
				return
			}
			if len(recs) == 0 {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					errc <- fmt.Errorf("stuck after seq %d: %+v", last, s.Stats())
					return
				}
				continue
			}
			for _, r := range recs {
				if r.Seq != last+1 {
					errc <- fmt.Errorf("got seq %d after %d", r.Seq, last)
					return
				}
				if k, ok := checkPayload(r.Data); !ok || k != r.Seq-1 {
					errc <- fmt.Errorf("record %d damaged", r.Seq)
					return
				}
				last = r.Seq
			}
			if err := s.Ack(last); err != nil {
				errc <- fmt.Errorf("Ack: %w", err)
				return
			}
			_ = s.Stats()
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Depth != 0 || st.Bytes != 0 || st.AckedSeq != total || st.NextSeq != total+1 {
		t.Fatalf("final Stats = %+v", st)
	}
	if n := len(segFiles(t, dir)); n > 2 {
		t.Fatalf("%d segment files left after acking everything", n)
	}
	t.Logf("dropped (retried) %d records on ErrFull", st.Dropped)
}

// Crash test: a child process (this test binary re-executed) appends in a
// loop and reports each batch on stdout once Append has returned; the parent
// SIGKILLs it at a random moment and checks the spool.

const (
	crashDirEnv   = "SPOOL_CRASH_CHILD_DIR"
	crashRoundEnv = "SPOOL_CRASH_CHILD_ROUND"
)

var crashOpts = Options{SegmentBytes: 64 << 10, MaxBytes: 1 << 30}

// TestCrashChild is the child half of TestCrashSIGKILLKeepsAppendedRecords;
// it does nothing unless started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashSIGKILLKeepsAppendedRecords")
	}
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	die := func(err error) {
		fmt.Printf("E %v\n", err)
		os.Exit(3)
	}
	s, err := Open(dir, crashOpts)
	if err != nil {
		die(err)
	}
	r := rand.New(rand.NewPCG(uint64(round), 99))
	k := uint64(round) << 32 // payload ids keep increasing across rounds
	for i := 0; ; i++ {
		n := 1 + r.IntN(20)
		if r.IntN(4) == 0 {
			n = 100 + r.IntN(400) // big writes make a kill mid-write likelier
		}
		batch := make([][]byte, n)
		for j := range batch {
			batch[j] = payloadFor(k + uint64(j))
		}
		last, err := s.Append(batch...)
		if err != nil {
			die(err)
		}
		fmt.Printf("A %d %d %d\n", last, k, n)
		k += uint64(n)
		if i%16 == 15 && last > 60 {
			ack := last - uint64(r.IntN(60))
			if ack > s.AckedSeq() {
				if err := s.Ack(ack); err != nil {
					die(err)
				}
				fmt.Printf("K %d\n", ack)
			}
		}
	}
}

func TestCrashSIGKILLKeepsAppendedRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	type batch struct{ last, k, n uint64 }
	var prevMax uint64 // highest seq seen in any earlier round
	for round := 1; round <= 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=2m")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			br := bufio.NewReader(out)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return // a final line without '\n' was cut by the kill: ignore it
				}
				lines <- strings.TrimSuffix(l, "\n")
			}
		}()

		var batches []batch
		var maxAck uint64
		handle := func(l string) {
			var b batch
			switch {
			case strings.HasPrefix(l, "A "):
				if _, err := fmt.Sscanf(l, "A %d %d %d", &b.last, &b.k, &b.n); err != nil {
					t.Fatalf("bad child line %q", l)
				}
				batches = append(batches, b)
			case strings.HasPrefix(l, "K "):
				fmt.Sscanf(l, "K %d", &maxAck)
			case strings.HasPrefix(l, "E "):
				t.Fatalf("child failed: %s", l)
			}
		}
		// Let it get going, then kill it at a random moment.
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("child exited without output; stderr:\n%s", stderr.String())
			}
			handle(l)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("child produced no output")
		}
		deadline := time.After(time.Duration(50+rand.IntN(250)) * time.Millisecond)
	collect:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break collect
				}
				handle(l)
			case <-deadline:
				if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
					t.Fatal(err)
				}
				deadline = nil
			}
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("child did not die of SIGKILL: %v; stderr:\n%s", err, stderr.String())
		}

		s := mustOpen(t, dir, crashOpts)
		st := s.Stats()
		recs := readAll(t, s, 0)
		present := make(map[uint64]uint64, len(recs)) // seq -> k
		var lastSeq, lastK uint64
		for i, r := range recs {
			k, ok := checkPayload(r.Data)
			if !ok {
				t.Fatalf("round %d: record %d is not intact", round, r.Seq)
			}
			if i > 0 && (r.Seq <= lastSeq || k <= lastK) {
				t.Fatalf("round %d: record %d (k=%d) out of order after seq %d (k=%d)", round, r.Seq, k, lastSeq, lastK)
			}
			lastSeq, lastK = r.Seq, k
			present[r.Seq] = k
		}
		if s.AckedSeq() < maxAck {
			t.Fatalf("round %d: AckedSeq %d, but the child saw Ack(%d) return", round, s.AckedSeq(), maxAck)
		}
		if len(batches) > 0 && batches[0].last-batches[0].n+1 <= prevMax {
			t.Fatalf("round %d: first seq %d reuses a seq <= %d from an earlier round", round, batches[0].last-batches[0].n+1, prevMax)
		}
		checked := 0
		for _, b := range batches {
			for j := uint64(0); j < b.n; j++ {
				seq := b.last - b.n + 1 + j
				if seq <= s.AckedSeq() {
					continue
				}
				k, ok := present[seq]
				if !ok {
					t.Fatalf("round %d: record %d was appended but is missing (Stats %+v)", round, seq, st)
				}
				if k != b.k+j {
					t.Fatalf("round %d: record %d holds k=%d, want %d", round, seq, k, b.k+j)
				}
				checked++
			}
		}
		if len(batches) > 0 {
			prevMax = max(prevMax, batches[len(batches)-1].last)
		}
		prevMax = max(prevMax, lastSeq, st.NextSeq-1)
		t.Logf("round %d: %d batches reported, %d unacked reported records verified, %d records on disk, acked %d, corrupt %d",
			round, len(batches), checked, len(recs), s.AckedSeq(), st.Corrupt)
		mustClose(t, s)
	}
}

// referenceFrames parses b the way the format is specified: frames from the
// start until the first one that is torn, implausible or fails its CRC.
func referenceFrames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 8 {
		n := binary.LittleEndian.Uint32(b)
		if n == 0 || n > MaxRecordBytes || uint64(n) > uint64(len(b)-8) {
			break
		}
		p := b[8 : 8+n]
		if crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) != binary.LittleEndian.Uint32(b[4:]) {
			break
		}
		out = append(out, p)
		b = b[8+n:]
	}
	return out
}

func FuzzOpenCorruptSegment(f *testing.F) {
	// Seeds are kept tiny: the fuzzer's minimizer is quadratic in input
	// size, and a big seed makes it spend the whole run minimizing.
	var valid []byte
	for _, p := range []string{"a", "bc", "def", "ghij"} {
		valid = appendFrame(valid, []byte(p))
	}
	ack := func(seq uint64) []byte {
		var b [ackSize]byte
		copy(b[:], ackMagic)
		binary.LittleEndian.PutUint64(b[4:], seq)
		binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
		return b[:]
	}
	f.Add(valid, []byte(nil), false)
	f.Add(valid, ack(2), false)
	f.Add(valid, ack(2), true)
	f.Add(valid[:len(valid)-3], []byte(nil), false)
	f.Add(valid[:len(valid)-3], ack(1), true)
	f.Add(append(slices.Clone(valid), "garbage"...), []byte(nil), true)
	f.Add(make([]byte, 100), []byte("SPAK"), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ack(1<<62), false)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, ack(0), true)
	f.Add(appendFrame(nil, []byte("x")), ack(999), true)

	// Power-loss durability is not under test here, and fsync on a real
	// disk would cut the fuzzer to a few executions per second.
	fsyncOff = true
	f.Cleanup(func() { fsyncOff = false })

	// One directory, emptied after each input: creating and removing a
	// fresh t.TempDir per input costs more than the test itself. (Inputs run
	// one at a time within a fuzzing process.) Emptying it after rather than
	// before keeps each run's coverage a function of its input alone, which
	// the fuzzer's minimizer needs.
	dir := f.TempDir()

	f.Fuzz(func(t *testing.T, seg, ackFile []byte, middle bool) {
		defer func() {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					t.Error(err)
				}
			}
		}()
		os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600)
		if ackFile != nil {
			os.WriteFile(filepath.Join(dir, ackName), ackFile, 0o600)
		}
		want := referenceFrames(seg)
		type rec struct {
			seq  uint64
			data []byte
		}
		var expect []rec
		if middle {
			// The fuzzed segment is followed by a good one at 1000.
			want = want[:min(len(want), 999)]
			var good []byte
			for k := uint64(0); k < 3; k++ {
				good = appendFrame(good, payloadFor(k))
			}
			os.WriteFile(filepath.Join(dir, segName(1000)), good, 0o600)
			for i, p := range want {
				expect = append(expect, rec{uint64(i + 1), p})
			}
			for k := uint64(0); k < 3; k++ {
				expect = append(expect, rec{1000 + k, payloadFor(k)})
			}
		} else {
			for i, p := range want {
				expect = append(expect, rec{uint64(i + 1), p})
			}
		}

		s, err := Open(dir, Options{SegmentBytes: 4096})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		acked := s.AckedSeq()
		if acked != 0 && (len(ackFile) != ackSize || binary.LittleEndian.Uint64(ackFile[4:]) != acked) {
			t.Fatalf("AckedSeq %d does not come from the ack file %x", acked, ackFile)
		}
		expect = slices.DeleteFunc(expect, func(r rec) bool { return r.seq <= acked })

		check := func(recs []Record, extra ...Record) {
			t.Helper()
			if len(recs) != len(expect)+len(extra) {
				t.Fatalf("Read returned %d records, want %d (+%d)", len(recs), len(expect), len(extra))
			}
			for i, r := range recs {
				if i >= len(expect) {
					e := extra[i-len(expect)]
					if r.Seq != e.Seq || !bytes.Equal(r.Data, e.Data) {
						t.Fatalf("record %d = %d/%x, want %d/%x", i, r.Seq, r.Data, e.Seq, e.Data)
					}
					continue
				}
				if r.Seq != expect[i].seq || !bytes.Equal(r.Data, expect[i].data) {
					t.Fatalf("record %d = %d/%x, want %d/%x", i, r.Seq, r.Data, expect[i].seq, expect[i].data)
				}
			}
		}
		recs, err := s.Read(0, 0, 0)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		check(recs)
		st := s.Stats()
		if st.Depth != int64(len(expect)) {
			t.Fatalf("Depth = %d, want %d", st.Depth, len(expect))
		}
		seq, err := s.Append([]byte("appended"))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if seq <= acked || (len(recs) > 0 && seq <= recs[len(recs)-1].Seq) {
			t.Fatalf("Append got seq %d; acked %d, records %v", seq, acked, seqsOf(recs))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s, err = Open(dir, Options{SegmentBytes: 4096})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if st := s.Stats(); !middle && st.Corrupt != 0 {
			t.Fatalf("repair was not durable: Corrupt = %d on reopen", st.Corrupt)
		}
		recs, err = s.Read(0, 0, 0)
		if err != nil {
			t.Fatalf("Read after reopen: %v", err)
		}
		check(recs, Record{Seq: seq, Data: []byte("appended")})
	})
}

func benchmarkAppend(b *testing.B, sync bool) {
	s := mustOpen(b, b.TempDir(), Options{Sync: sync, MaxBytes: 1 << 30})
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 1))
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = make([]byte, 600)
		for j := range batch[i] {
			batch[i][j] = byte(r.Uint32())
		}
	}
	b.SetBytes(100 * 600)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		last, err := s.Append(batch...)
		if err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 { // keep the disk footprint bounded, as a sender would
			if err := s.Ack(last); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAppend measures Append of 100-record batches of 600-byte records
// without fsync (the default: safe against process death).
func BenchmarkAppend(b *testing.B) { benchmarkAppend(b, false) }

// BenchmarkAppendSync is BenchmarkAppend with Options.Sync: one fsync per
// batch (safe against power loss).
func BenchmarkAppendSync(b *testing.B) { benchmarkAppend(b, true) }

// BenchmarkRead measures a sender reading 100-record batches of 600-byte
// records, in order, from a spool holding 60 MB. (Ack is not included: it
// is dominated by its two fsyncs, about 1 ms each on a typical disk.)
func BenchmarkRead(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{})
	defer s.Close()
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = bytes.Repeat([]byte{byte(i)}, 600)
	}
	for j := 0; j < 1000; j++ {
		mustAppend(b, s, batch...)
	}
	end := s.Stats().NextSeq - 1
	b.SetBytes(100 * 600)
	b.ReportAllocs()
	b.ResetTimer()
	var last uint64
	for i := 0; i < b.N; i++ {
		recs, err := s.Read(last, 100, 0)
		if err != nil || len(recs) != 100 {
			b.Fatalf("Read: %d records, %v", len(recs), err)
		}
		if last = recs[len(recs)-1].Seq; last == end {
			last = 0
		}
	}
}
