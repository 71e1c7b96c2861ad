package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk layout constants.
const (
	// MaxRecordBytes is the largest payload Append accepts. Frames on disk
	// claiming a larger length are treated as corrupt.
	MaxRecordBytes = 16 << 20

	// frameHeaderSize is the size of the per-record header:
	// uint32 little-endian payload length, uint32 little-endian CRC32-C.
	frameHeaderSize = 8

	// minFrame is the smallest possible frame: a header and a 1-byte
	// payload (empty payloads are not allowed).
	minFrame = frameHeaderSize + 1

	// indexStride is how many records share one entry of a segment's sparse
	// in-memory offset index. Locating a record costs at most
	// indexStride-1 header skips.
	indexStride = 64

	// maxSeq bounds sequence numbers: segment names above it are ignored and
	// Append refuses to go past it, so that arithmetic on seqs (base plus a
	// record count derived from a file size) can never overflow.
	maxSeq = 1 << 63

	// maxAckSeq bounds the position accepted from the ack file; anything
	// larger is treated as corrupt. It leaves room below maxSeq.
	maxAckSeq = 1 << 62

	segDigits  = 20
	segSuffix  = ".seg"
	ackName    = "ack"
	ackTmpName = "ack.tmp"
	lockName   = "lock"
	ackMagic   = "SPAK"
	ackSize    = 16 // magic(4) + seq(8) + crc32c(4)
	noBad      = ^uint64(0)
	readBufMin = 64 << 10
	scanBufLen = 256 << 10
)

// castagnoli is the CRC32-C table used for frame and ack checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadFrame reports a torn, truncated or checksum-failing frame. It never
// escapes the package: callers translate it into skipping/truncation.
var errBadFrame = errors.New("spool: bad frame")

// segment is the in-memory description of one segment file. Records in a
// segment have contiguous sequence numbers base, base+1, ..., base+count-1:
// the sequence number of a record is implied by its position.
type segment struct {
	path  string
	base  uint64  // sequence number of the first record (also the file name)
	count uint64  // number of valid, committed records
	size  int64   // byte offset just past the last valid, committed frame
	index []int64 // index[i] is the offset of record i*indexStride

	// ackOff is the offset of the first unacknowledged record (size when
	// every record is acknowledged). size-ackOff is the unacked byte count.
	ackOff int64

	// badFrom is the index of the first record that Read found to be
	// unreadable after Open (the file changed under us), or noBad.
	badFrom uint64
}

// segName returns the file name of the segment whose first record is base.
func segName(base uint64) string {
	return fmt.Sprintf("%0*d%s", segDigits, base, segSuffix)
}

// parseSegName reports the base sequence number encoded in a segment file
// name, and whether name is a well-formed segment name at all.
func parseSegName(name string) (uint64, bool) {
	if len(name) != segDigits+len(segSuffix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	for _, c := range name[:segDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(name[:segDigits], 10, 64)
	if err != nil || v == 0 || v > maxSeq {
		return 0, false
	}
	return v, true
}

// appendFrame appends the framed form of payload to buf.
func appendFrame(buf, payload []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(payload)))
	buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(payload, castagnoli))
	return append(buf, payload...)
}

// frameReader walks the frames of one segment file sequentially, starting
// at a known frame boundary and never looking past limit.
type frameReader struct {
	br    *bufio.Reader
	off   int64 // offset of the next frame header (or of the pending payload)
	limit int64 // frames must end at or before this offset
	n     uint32
	sum   uint32
}

// newFrameReader returns a frameReader over f[off:limit], buffering up to
// bufSize bytes (less when the range is smaller).
func newFrameReader(f *os.File, off, limit int64, bufSize int) *frameReader {
	if n := limit - off; n < int64(bufSize) {
		bufSize = int(max(n, 16))
	}
	return &frameReader{
		br:    bufio.NewReaderSize(io.NewSectionReader(f, off, limit-off), bufSize),
		off:   off,
		limit: limit,
	}
}

// header reads and sanity-checks the next frame header and returns the
// payload length. It returns io.EOF at a clean end (off == limit),
// errBadFrame for a torn or implausible header, or an I/O error.
func (fr *frameReader) header() (int, error) {
	if fr.off >= fr.limit {
		return 0, io.EOF
	}
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(fr.br, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, errBadFrame
		}
		return 0, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n == 0 || n > MaxRecordBytes || int64(n) > fr.limit-fr.off-frameHeaderSize {
		return 0, errBadFrame
	}
	fr.n, fr.sum = n, binary.LittleEndian.Uint32(hdr[4:8])
	return int(n), nil
}

// skip discards the payload of the frame whose header was just read,
// without verifying it.
func (fr *frameReader) skip() error {
	if _, err := fr.br.Discard(int(fr.n)); err != nil {
		return eofIsBad(err)
	}
	fr.off += frameHeaderSize + int64(fr.n)
	return nil
}

// verify consumes the payload of the frame whose header was just read and
// checks its CRC without allocating.
func (fr *frameReader) verify() error {
	var sum uint32
	for left := int(fr.n); left > 0; {
		p, err := fr.br.Peek(min(left, fr.br.Size()))
		sum = crc32.Update(sum, castagnoli, p)
		left -= len(p)
		if _, derr := fr.br.Discard(len(p)); derr != nil {
			return eofIsBad(derr)
		}
		if err != nil && left > 0 {
			return eofIsBad(err)
		}
	}
	if sum != fr.sum {
		return errBadFrame
	}
	fr.off += frameHeaderSize + int64(fr.n)
	return nil
}

// payload reads and verifies the payload of the frame whose header was just
// read, returning it in a freshly allocated slice.
func (fr *frameReader) payload() ([]byte, error) {
	p := make([]byte, fr.n)
	if _, err := io.ReadFull(fr.br, p); err != nil {
		return nil, eofIsBad(err)
	}
	if crc32.Checksum(p, castagnoli) != fr.sum {
		return nil, errBadFrame
	}
	fr.off += frameHeaderSize + int64(fr.n)
	return p, nil
}

// eofIsBad maps a premature end of file to errBadFrame: the file is
// shorter than our metadata says, so the frame is torn.
func eofIsBad(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errBadFrame
	}
	return err
}

// scanResult is what scanSegment learned about one segment file.
type scanResult struct {
	count    uint64
	end      int64 // offset just past the last valid frame
	fileSize int64
	index    []int64
	bad      bool // a torn or corrupt frame was found at end
}

// scanSegment validates every frame of the segment file at path, stopping at
// the first bad one. Only I/O errors are returned as errors.
func scanSegment(path string) (scanResult, error) {
	var r scanResult
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return r, err
	}
	r.fileSize = fi.Size()
	fr := newFrameReader(f, 0, r.fileSize, scanBufLen)
	for {
		off := fr.off
		_, err := fr.header()
		if err == nil {
			err = fr.verify()
		}
		switch {
		case err == nil:
			if r.count%indexStride == 0 {
				r.index = append(r.index, off)
			}
			r.count++
			r.end = fr.off
			continue
		case errors.Is(err, io.EOF):
			return r, nil
		case errors.Is(err, errBadFrame):
			r.bad = true
			return r, nil
		default:
			return r, fmt.Errorf("spool: scanning %s: %w", filepath.Base(path), err)
		}
	}
}

// offsetOf returns the byte offset of record idx (0 <= idx <= g.count) in
// segment g, using the sparse index and skipping at most indexStride-1
// frame headers. g must be a snapshot whose fields are not being mutated.
func offsetOf(g *segment, idx uint64) (int64, error) {
	if idx >= g.count {
		return g.size, nil
	}
	f, err := os.Open(g.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fr := newFrameReader(f, g.index[idx/indexStride], g.size, readBufMin)
	for i := uint64(0); i < idx%indexStride; i++ {
		if _, err := fr.header(); err != nil {
			return 0, eofIsBad(err)
		}
		if err := fr.skip(); err != nil {
			return 0, err
		}
	}
	return fr.off, nil
}

// writeAck atomically replaces the ack file with seq: write a temporary
// file, fsync it, rename it over the old one and fsync the directory.
func writeAck(dir string, seq uint64) error {
	var b [ackSize]byte
	copy(b[:4], ackMagic)
	binary.LittleEndian.PutUint64(b[4:12], seq)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	tmp := filepath.Join(dir, ackTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: writing ack: %w", err)
	}
	_, err = f.Write(b[:])
	if err == nil {
		err = fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, ackName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("spool: writing ack: %w", err)
	}
	return nil
}

// readAck returns the persisted ack position. A missing, unreadable or
// corrupt ack file yields 0 (nothing acknowledged): records are then
// delivered again, which at-least-once delivery permits.
func readAck(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, ackName))
	if err != nil || len(b) != ackSize || string(b[:4]) != ackMagic {
		return 0
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		return 0
	}
	seq := binary.LittleEndian.Uint64(b[4:12])
	if seq > maxAckSeq {
		return 0
	}
	return seq
}

// fsyncOff turns every fsync into a no-op. Only the fuzz test sets it, to
// test thousands of inputs per second instead of a few dozen; nothing it
// checks depends on durability across power loss.
var fsyncOff bool

// fsync flushes f to stable storage unless fsyncOff is set.
func fsync(f *os.File) error {
	if fsyncOff {
		return nil
	}
	return f.Sync()
}

// syncDir fsyncs a directory so that creations, renames and removals of its
// entries are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
