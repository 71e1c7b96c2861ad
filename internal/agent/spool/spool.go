// Package spool is the agent's disk-backed, crash-safe FIFO of opaque byte
// records. The agent appends findings as they are produced; a sender reads
// them in order, ships them to the console and acknowledges them once the
// console has confirmed receipt. Unacknowledged records survive agent
// restarts, including SIGKILL, so delivery is at-least-once.
//
// What it is not: it is not a general database or message broker (one
// directory, one process, one consumer position); it does not deduplicate
// (a record may be delivered twice around a crash — the console must be
// idempotent on Seq); it does not encrypt or authenticate data (CRC32-C
// detects accidental corruption and torn writes, not tampering); and without
// Options.Sync it does not survive power loss or a kernel crash, only the
// death of the agent process.
//
// # On-disk format
//
// A spool directory holds:
//
//   - segment files named "%020d.seg" after the sequence number of their
//     first record. A segment is a plain concatenation of frames
//     [uint32 length][uint32 CRC32-C of payload][payload], integers
//     little-endian. There is no per-record sequence number on disk: the
//     N-th valid frame of segment B has Seq B+N. Empty payloads are not
//     allowed, so a zero-filled region never parses as records.
//   - "ack": 16 bytes, "SPAK" + uint64 acked seq + CRC32-C of the first 12
//     bytes, replaced atomically via "ack.tmp", rename and directory fsync.
//   - "lock": flocked while a Spool has the directory open.
//
// Other files are ignored. On Open, each segment is validated frame by
// frame. The first bad frame of the last segment marks a torn tail (the
// agent died mid-write, or garbage was appended): the file is truncated
// there, and since the cut bytes might have held records whose sequence
// numbers were already handed out, the next sequence number skips as many
// as they could have held (one per 9 bytes) and appending resumes in a new
// segment. The first bad frame of any other segment makes the rest of that
// segment unreadable; it is skipped. Either case adds one to
// Stats.Corrupt. The last segment is never deleted, so its name records a
// floor for the next sequence number, which is also kept above the ack
// position: sequence numbers are not reused across restarts. (Exception:
// without Options.Sync, a power loss can silently shorten a file, and the
// sequence numbers of records lost that way can be handed out again.)
//
// # Concurrency
//
// A Spool may be used from any number of goroutines; the intended use is one
// appender and one reader/acker. Appends are serialised with each other and
// Acks with each other, but file reads and writes happen outside the
// metadata lock, so a slow disk write does not stall Read and vice versa.
package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Default option values.
const (
	// DefaultMaxBytes is used when Options.MaxBytes is 0.
	DefaultMaxBytes = 256 << 20
	// DefaultSegmentBytes is used when Options.SegmentBytes is 0.
	DefaultSegmentBytes = 8 << 20
)

// ErrFull is returned (wrapped) by Append when storing the batch would push
// the unacknowledged bytes over Options.MaxBytes. Nothing from the batch is
// stored; each refused record is counted in Stats.Dropped.
var ErrFull = errors.New("spool: full")

// ErrTooLarge is returned (wrapped) by Append for a record whose payload
// exceeds MaxRecordBytes. Nothing from the batch is stored.
var ErrTooLarge = errors.New("spool: record too large")

// ErrClosed is returned by operations on a closed Spool.
var ErrClosed = errors.New("spool: closed")

// Options configures a Spool. The zero value is usable.
type Options struct {
	// MaxBytes caps the bytes held on disk by unacknowledged records,
	// counting the 8-byte frame header of each. 0 means DefaultMaxBytes
	// (256 MiB). Space taken by acknowledged records that still share the
	// current segment with newer ones is not counted; it is reclaimed when
	// the segment rolls over and is fully acknowledged.
	MaxBytes int64
	// SegmentBytes makes Append start a new segment file once the current one
	// would grow past this size. 0 means DefaultSegmentBytes (8 MiB). A
	// single record larger than this gets a segment of its own.
	SegmentBytes int64
	// Sync makes Append fsync the segment (and the directory when a segment
	// was created) before returning, so that appended records survive power
	// loss. Records survive the death of the process (SIGKILL, panic, OOM
	// kill) without it, because they are in the kernel page cache once the
	// write syscall returns. Acks are always fsynced.
	Sync bool
}

// Record is one record returned by Read.
type Record struct {
	// Seq is the record's sequence number, assigned by Append: 1 for the
	// first record of a new spool, then strictly increasing and not reused
	// across restarts (see the package documentation for the one exception).
	// There may be gaps where corrupt data was skipped.
	Seq uint64
	// Data is the payload, in a slice owned by the caller.
	Data []byte
}

// Stats is a point-in-time snapshot of a Spool's counters.
type Stats struct {
	// Depth is the number of unacknowledged records.
	Depth int64
	// Bytes is the on-disk size of unacknowledged records, frame headers
	// included; this is what Options.MaxBytes limits.
	Bytes int64
	// Dropped counts records refused by Append with ErrFull since Open.
	Dropped uint64
	// Corrupt counts corrupt regions skipped since Open: one per torn tail or
	// bad frame found when opening (or later, by Read, if a file changed on
	// disk under the Spool), plus one per record discarded because two
	// segments overlapped. Records lost inside a corrupt region cannot be
	// counted individually.
	Corrupt uint64
	// NextSeq is the sequence number the next appended record will get.
	NextSeq uint64
	// AckedSeq is the acknowledged position: every Seq <= AckedSeq is done.
	AckedSeq uint64
}

// Spool is a disk-backed FIFO of records. Create one with Open.
type Spool struct {
	dir    string
	opt    Options
	lockF  *os.File
	syncIO bool

	// appendMu serialises Append and Close; it guards wf and wbuf.
	appendMu sync.Mutex
	wf       *os.File // the last segment, open read-write
	wbuf     []byte

	// ackMu serialises Ack and Close; it guards trash.
	ackMu sync.Mutex
	trash []string // paths of acked segments whose removal failed

	// mu guards everything below, and the fields of every *segment.
	mu      sync.Mutex
	closed  bool
	broken  error // sticky: a failed Append could not be rolled back
	segs    []*segment
	nextSeq uint64
	acked   uint64
	dropped uint64
	corrupt uint64
	waitCh  chan struct{}
}

// Open opens the spool in dir, creating the directory (mode 0700) if needed,
// and repairs whatever a crash left behind, as described in the package
// documentation. Only one Spool may have a directory open at a time; a
// second Open fails until the first is closed or its process exits.
func Open(dir string, opt Options) (*Spool, error) {
	if opt.MaxBytes < 0 || opt.SegmentBytes < 0 {
		return nil, fmt.Errorf("spool: negative MaxBytes (%d) or SegmentBytes (%d)", opt.MaxBytes, opt.SegmentBytes)
	}
	if opt.MaxBytes == 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.SegmentBytes == 0 {
		opt.SegmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lk, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, opt: opt, lockF: lk, syncIO: opt.Sync}
	if err := s.load(); err != nil {
		if s.wf != nil {
			s.wf.Close()
		}
		lk.Close()
		return nil, err
	}
	return s, nil
}

// load scans and repairs the directory and builds the in-memory state. It
// runs before s is shared, so it takes no locks.
func (s *Spool) load() error {
	acked := readAck(s.dir)
	_ = os.Remove(filepath.Join(s.dir, ackTmpName))

	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var segs []*segment
	for _, e := range ents {
		base, ok := parseSegName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue // not ours
		}
		segs = append(segs, &segment{path: filepath.Join(s.dir, e.Name()), base: base, badFrom: noBad})
	}
	slices.SortFunc(segs, func(a, b *segment) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})

	dirty := false
	skipSeqs := uint64(0) // seqs possibly lost in a torn tail
	for i, g := range segs {
		r, err := scanSegment(g.path)
		if err != nil {
			return err
		}
		g.count, g.size, g.index = r.count, r.end, r.index
		if r.bad {
			s.corrupt++
		}
		if i == len(segs)-1 && r.fileSize != r.end {
			// Torn or garbage tail: cut it off. The cut bytes may have
			// held up to cut/minFrame records whose seqs were handed out
			// (a record corrupted after it was sent, say), so skip past
			// all of them; the next record starts a new segment.
			if err := os.Truncate(g.path, r.end); err != nil {
				return fmt.Errorf("spool: truncating torn tail: %w", err)
			}
			cut := uint64(r.fileSize - r.end)
			skipSeqs = (cut + minFrame - 1) / minFrame
			dirty = true
		}
	}

	// Segments are named after their first seq and hold contiguous seqs,
	// so they cannot overlap unless the directory was tampered with (or a
	// write error could not be rolled back). The later segment wins.
	for i := 0; i+1 < len(segs); i++ {
		g, nx := segs[i], segs[i+1]
		if g.base+g.count <= nx.base {
			continue
		}
		keep := nx.base - g.base
		off, err := offsetOf(g, keep)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.corrupt += g.count - keep
		g.count, g.size = keep, off
		g.index = g.index[:(keep+indexStride-1)/indexStride]
	}

	next := max(acked+1, 1)
	if n := len(segs); n > 0 {
		next = max(next, segs[n-1].base+segs[n-1].count+skipSeqs)
	}
	s.nextSeq, s.acked = next, acked

	fullyAcked := func(g *segment) bool { return g.count == 0 || g.base+g.count-1 <= acked }

	// Keep appending to the last segment if it ends exactly at next and
	// still holds something unacknowledged (or nothing at all); otherwise
	// start a fresh one so the tidy-up below can remove the old.
	if n := len(segs); n > 0 && segs[n-1].base+segs[n-1].count == next &&
		(segs[n-1].count == 0 || !fullyAcked(segs[n-1])) {
		s.wf, err = os.OpenFile(segs[n-1].path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	} else {
		g := &segment{path: filepath.Join(s.dir, segName(next)), base: next, badFrom: noBad}
		s.wf, err = os.OpenFile(g.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("spool: creating segment: %w", err)
		}
		segs = append(segs, g)
		dirty = true
	}

	// Drop fully acknowledged (or entirely unreadable) segments, except the
	// last, which is the one being appended to.
	kept := segs[:0]
	for i, g := range segs {
		if i < len(segs)-1 && fullyAcked(g) {
			if err := os.Remove(g.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.trash = append(s.trash, g.path)
			}
			dirty = true
			continue
		}
		kept = append(kept, g)
	}
	s.segs = kept

	for _, g := range s.segs {
		switch {
		case acked < g.base:
			g.ackOff = 0
		case fullyAcked(g):
			g.ackOff = g.size
		default:
			off, err := offsetOf(g, acked+1-g.base)
			if err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			g.ackOff = off
		}
	}

	if dirty {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// unackedLocked returns the number and on-disk size of unacknowledged
// records. s.mu must be held.
func (s *Spool) unackedLocked() (depth, bytes int64) {
	for _, g := range s.segs {
		bytes += g.size - g.ackOff
		if g.count == 0 || s.acked >= g.base+g.count-1 {
			continue
		}
		if s.acked < g.base {
			depth += int64(g.count)
		} else {
			depth += int64(g.base + g.count - 1 - s.acked)
		}
	}
	return depth, bytes
}

// chunk is the part of one Append batch that goes into one segment file.
type chunk struct {
	seg   *segment // the existing segment appended to, or nil for a new file
	path  string
	base  uint64
	f     *os.File
	start int64 // file size before this batch
	size  int64 // file size after this batch
	count uint64
	index []int64 // sparse index entries added by this batch
}

// Append stores data as consecutive records and returns the sequence number
// of the last one. The batch is all-or-nothing: on any error no record of it
// is visible to Read and lastSeq is 0. Each record has been handed to the
// kernel with a write syscall (and fsynced, with Options.Sync) before Append
// returns, so it survives the process being killed from then on.
//
// If the batch does not fit under Options.MaxBytes, Append returns an error
// wrapping ErrFull and adds len(data) to Stats.Dropped; the caller still
// holds the records and decides whether to retry later or discard them.
// Records larger than MaxRecordBytes fail with ErrTooLarge and empty records
// are rejected; neither counts as Dropped. Append with no records returns
// (0, nil).
//
// If a write fails, Append truncates away what it wrote and returns the
// error. Should that clean-up fail too, the Spool refuses further Appends
// (Read and Ack keep working); reopening it repairs the directory, and
// records from the failed batch may then be delivered after all.
func (s *Spool) Append(data ...[]byte) (lastSeq uint64, err error) {
	var total int64
	for i, d := range data {
		if len(d) == 0 {
			return 0, fmt.Errorf("spool: record %d of batch is empty; empty records are not allowed", i)
		}
		if len(d) > MaxRecordBytes {
			return 0, fmt.Errorf("%w: record %d of batch is %d bytes, limit is %d", ErrTooLarge, i, len(d), MaxRecordBytes)
		}
		total += frameHeaderSize + int64(len(d))
	}

	s.appendMu.Lock()
	defer s.appendMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		return 0, fmt.Errorf("spool: unusable after an unrecoverable write error, reopen it: %w", err)
	}
	if len(data) == 0 {
		s.mu.Unlock()
		return 0, nil
	}
	if _, used := s.unackedLocked(); used+total > s.opt.MaxBytes {
		s.dropped += uint64(len(data))
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %d record(s) (%d bytes) refused, %d of %d bytes in use",
			ErrFull, len(data), total, used, s.opt.MaxBytes)
	}
	if s.nextSeq+uint64(len(data)) > maxSeq {
		s.mu.Unlock()
		return 0, errors.New("spool: sequence numbers exhausted")
	}
	act := s.segs[len(s.segs)-1]
	cur := &chunk{seg: act, path: act.path, base: act.base, f: s.wf, start: act.size, size: act.size, count: act.count}
	roll := act.badFrom != noBad // don't bury new records behind a bad frame
	seq := s.nextSeq
	s.mu.Unlock()

	chunks := []*chunk{cur}
	buf := s.wbuf[:0]
	fail := func(err error) (uint64, error) {
		s.rollback(chunks)
		return 0, err
	}
	for _, d := range data {
		frame := frameHeaderSize + int64(len(d))
		if roll || (cur.size > 0 && cur.size+frame > s.opt.SegmentBytes) {
			roll = false
			if err := s.flush(cur, buf); err != nil {
				return fail(err)
			}
			buf = buf[:0]
			path := filepath.Join(s.dir, segName(seq))
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fail(fmt.Errorf("spool: creating segment: %w", err))
			}
			cur = &chunk{path: path, base: seq, f: f}
			chunks = append(chunks, cur)
		}
		if cur.count%indexStride == 0 {
			cur.index = append(cur.index, cur.size)
		}
		buf = appendFrame(buf, d)
		cur.size += frame
		cur.count++
		seq++
	}
	if err := s.flush(cur, buf); err != nil {
		return fail(err)
	}
	if s.syncIO && len(chunks) > 1 {
		if err := syncDir(s.dir); err != nil {
			return fail(fmt.Errorf("spool: %w", err))
		}
	}
	if cap(buf) <= 4<<20 {
		s.wbuf = buf[:0] // keep a modest buffer for the next batch
	}

	s.mu.Lock()
	for _, c := range chunks {
		if c.seg != nil {
			c.seg.count, c.seg.size = c.count, c.size
			c.seg.index = append(c.seg.index, c.index...)
			continue
		}
		s.segs = append(s.segs, &segment{path: c.path, base: c.base, count: c.count, size: c.size, index: c.index, badFrom: noBad})
	}
	s.nextSeq = seq
	if s.waitCh != nil {
		close(s.waitCh)
		s.waitCh = nil
	}
	s.mu.Unlock()

	// Files of segments we rolled away from are finished.
	for _, c := range chunks[:len(chunks)-1] {
		c.f.Close()
	}
	s.wf = chunks[len(chunks)-1].f
	return seq - 1, nil
}

// flush writes one chunk's frames with a single positioned write (and
// fsyncs it with Options.Sync).
func (s *Spool) flush(c *chunk, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if _, err := c.f.WriteAt(buf, c.start); err != nil {
		return fmt.Errorf("spool: write: %w", err)
	}
	if s.syncIO {
		if err := fsync(c.f); err != nil {
			return fmt.Errorf("spool: fsync: %w", err)
		}
	}
	return nil
}

// rollback undoes the file changes of a failed Append: it truncates the
// existing segment back to its committed size and removes segments the
// batch created. If that fails the Spool is marked broken.
func (s *Spool) rollback(chunks []*chunk) {
	var errs []error
	for _, c := range chunks {
		if c.seg != nil {
			errs = append(errs, c.f.Truncate(c.start))
			continue
		}
		c.f.Close()
		if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.mu.Lock()
		s.broken = err
		s.mu.Unlock()
	}
}

// Read returns up to max records with Seq > after, in Seq order, stopping
// before the payloads would exceed maxBytes — except that the first record
// is returned whatever its size, so a reader always makes progress. max <= 0
// and maxBytes <= 0 mean no limit. Read removes nothing; call Ack once the
// records are delivered. Acknowledged records are never returned, even when
// after < AckedSeq. An empty result means no such records exist yet; use
// Wait to block until some are appended.
//
// If Read finds a frame that no longer matches its checksum (the file was
// changed after Open), it skips the rest of that segment, counts it in
// Stats.Corrupt and carries on with the next segment.
func (s *Spool) Read(after uint64, max int, maxBytes int) ([]Record, error) {
	type snap struct {
		live *segment
		g    segment
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if after < s.acked {
		after = s.acked
	}
	if after >= s.nextSeq-1 {
		s.mu.Unlock()
		return nil, nil
	}
	start := after + 1
	var snaps []snap
	for _, g := range s.segs {
		if end := min(g.count, g.badFrom); end > 0 && g.base+end > start {
			snaps = append(snaps, snap{live: g, g: *g})
		}
	}
	s.mu.Unlock()

	var out []Record
	if max > 0 {
		out = make([]Record, 0, min(max, 1024))
	}
	nbytes := 0
	bufSize := readBufMin
	if maxBytes > bufSize {
		bufSize = min(maxBytes, 1<<20)
	}
	for _, sn := range snaps {
		g := &sn.g
		idx := uint64(0)
		if start > g.base {
			idx = start - g.base
		}
		end := min(g.count, g.badFrom)
		f, err := os.Open(g.path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Deleted by a concurrent Ack (so acknowledged), or by
				// someone else (so lost).
				s.markBad(sn.live, 0)
				continue
			}
			return nil, fmt.Errorf("spool: read: %w", err)
		}
		fr := newFrameReader(f, g.index[idx/indexStride], g.size, bufSize)
		i := idx - idx%indexStride
		for ; i < idx; i++ {
			if _, err = fr.header(); err != nil {
				break
			}
			if err = fr.skip(); err != nil {
				break
			}
		}
		full := false
		for ; err == nil && i < end; i++ {
			var n int
			n, err = fr.header()
			if err != nil {
				break
			}
			if (max > 0 && len(out) >= max) || (maxBytes > 0 && len(out) > 0 && nbytes+n > maxBytes) {
				full = true
				break
			}
			var p []byte
			p, err = fr.payload()
			if err != nil {
				break
			}
			out = append(out, Record{Seq: g.base + i, Data: p})
			nbytes += n
		}
		f.Close()
		if err != nil {
			if !errors.Is(err, errBadFrame) && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("spool: read %s: %w", filepath.Base(g.path), err)
			}
			s.markBad(sn.live, i)
		}
		if full || (max > 0 && len(out) >= max) || (maxBytes > 0 && nbytes >= maxBytes) {
			break
		}
	}
	return out, nil
}

// markBad records that records from idx on in g cannot be read, unless they
// have all been acknowledged (or g removed) in the meantime.
func (s *Spool) markBad(g *segment, idx uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.base+idx > s.acked && idx < g.badFrom && slices.Contains(s.segs, g) {
		g.badFrom = idx
		s.corrupt++
	}
}

// Ack records that every record with Seq <= seq has been delivered. The
// position is persisted atomically (temporary file, fsync, rename, directory
// fsync) before Ack returns, then segment files holding only acknowledged
// records are deleted. The current segment is kept even when fully
// acknowledged; it is deleted after a later roll-over. Acking at or below
// AckedSeq is a no-op. Acking a seq that was never appended (>= NextSeq) is
// an error and changes nothing. An error means the position was not
// persisted; failures to delete files are not reported and are retried by
// later Acks and by Open.
func (s *Spool) Ack(seq uint64) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if seq <= s.acked {
		s.mu.Unlock()
		return nil
	}
	if seq >= s.nextSeq {
		next := s.nextSeq
		s.mu.Unlock()
		return fmt.Errorf("spool: ack %d is beyond the last appended record %d", seq, next-1)
	}
	// Find the segment holding seq, and where its unacked part will start.
	var target *segment
	var snap segment
	for _, g := range s.segs {
		if g.count > 0 && g.base <= seq && seq < g.base+g.count {
			target, snap = g, *g
			break
		}
	}
	s.mu.Unlock()

	newOff := int64(-1)
	if target != nil {
		if off, err := offsetOf(&snap, seq+1-snap.base); err == nil {
			newOff = off
		} // else: keep the old, larger byte count; it is exact again once the segment is fully acked
	}

	if err := writeAck(s.dir, seq); err != nil {
		return err
	}

	s.mu.Lock()
	s.acked = seq
	kept := s.segs[:0]
	var del []string
	for i, g := range s.segs {
		switch {
		case g.count == 0 || g.base+g.count-1 <= seq:
			if i < len(s.segs)-1 {
				del = append(del, g.path)
				continue
			}
			g.ackOff = g.size
		case g == target && newOff > g.ackOff:
			g.ackOff = newOff
		}
		kept = append(kept, g)
	}
	clear(s.segs[len(kept):])
	s.segs = kept
	s.mu.Unlock()

	s.trash = append(s.trash, del...)
	left := s.trash[:0]
	for _, p := range s.trash {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			left = append(left, p)
		}
	}
	s.trash = left
	return nil
}

// AckedSeq returns the acknowledged position: every record with Seq <= the
// returned value has been acknowledged. It is 0 for a new spool.
func (s *Spool) AckedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

// Wait returns a channel that is closed by the next successful Append after
// the call (or by Close). It is edge-triggered and says nothing about
// records appended before Wait was called, so obtain the channel before
// calling Read to avoid missing a wake-up:
//
//	for {
//		ch := s.Wait()
//		recs, err := s.Read(last, 100, 1<<20)
//		// ... handle err, send and Ack recs, update last ...
//		if len(recs) == 0 {
//			select {
//			case <-ch:
//			case <-ctx.Done():
//				return
//			}
//		}
//	}
//
// Calls between two Appends return the same channel, so any number of
// goroutines may wait. After Close the returned channel is already closed.
func (s *Spool) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitCh == nil {
		s.waitCh = make(chan struct{})
	}
	return s.waitCh
}

// Stats returns a snapshot of the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	depth, bytes := s.unackedLocked()
	return Stats{
		Depth:    depth,
		Bytes:    bytes,
		Dropped:  s.dropped,
		Corrupt:  s.corrupt,
		NextSeq:  s.nextSeq,
		AckedSeq: s.acked,
	}
}

// Close waits for in-flight Append and Ack calls, closes the files and
// releases the directory lock. Everything appended is already on disk, so
// Close loses nothing. Later calls return ErrClosed (Wait returns a closed
// channel); closing twice is a no-op.
func (s *Spool) Close() error {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.waitCh == nil {
		s.waitCh = make(chan struct{})
	}
	close(s.waitCh)
	s.mu.Unlock()

	var err error
	if s.syncIO {
		err = fsync(s.wf)
	}
	if cerr := s.wf.Close(); err == nil {
		err = cerr
	}
	if cerr := s.lockF.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}
