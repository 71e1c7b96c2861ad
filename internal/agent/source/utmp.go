package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// utmp record types (ut_type), from <utmp.h>.
const (
	UtEmpty        = 0 // record holds no valid data
	UtRunLevel     = 1 // change in system run level (shutdown, reboot)
	UtBootTime     = 2 // time of system boot
	UtNewTime      = 3 // time after a system clock change
	UtOldTime      = 4 // time before a system clock change
	UtInitProcess  = 5 // process spawned by init
	UtLoginProcess = 6 // session leader of a logged-in user (getty waiting for a login)
	UtUserProcess  = 7 // normal process: a login (in btmp: a failed login)
	UtDeadProcess  = 8 // terminated process: a logout
	UtAccounting   = 9
)

// UtmpRecordSize is the size of struct utmp with glibc on Linux (x86_64, aarch64, and the
// 32-bit ABIs too: the time fields stay 32-bit for compatibility).
const UtmpRecordSize = 384

// Field offsets in struct utmp.
const (
	utType    = 0   // int16 + 2 bytes padding
	utPID     = 4   // int32
	utLine    = 8   // [32]byte
	utID      = 40  // [4]byte
	utUser    = 44  // [32]byte
	utHost    = 76  // [256]byte
	utExit    = 332 // {int16 e_termination, int16 e_exit}
	utSession = 336 // int32
	utTvSec   = 340 // int32
	utTvUsec  = 344 // int32
	utAddr    = 348 // [4]int32, network byte order
	// 364: 20 bytes unused
)

// UtmpRecord is one decoded struct utmp. Strings are the bytes up to the first NUL, not
// validated: in btmp, User is whatever name a remote client tried, so treat it as hostile.
type UtmpRecord struct {
	Type    int16
	PID     int32
	Line    string // tty name without "/dev/", e.g. "pts/0"; "ssh:notty" for SSH without a tty
	ID      string // inittab ID or tty suffix
	User    string
	Host    string // remote host name or address as written by the login program
	Exit    UtmpExit
	Session int32
	// Addr is ut_addr_v6: an IPv4 address when only the first word is set (and IPv4-mapped
	// IPv6 addresses are unmapped to IPv4), IPv6 otherwise, the zero Addr when all zero.
	Addr netip.Addr
	// Time is ut_tv in UTC. The seconds field is 32 bits; it is read as unsigned, so dates
	// after 2038 (up to 2106) decode correctly and no date is before 1970.
	Time time.Time
}

// UtmpExit is ut_exit: how a DEAD_PROCESS ended.
type UtmpExit struct {
	Termination int16
	Status      int16
}

// ErrPartialRecord is matched by the error ReadUtmp returns when the input ends inside a
// record. That is normal for a file being written: every complete record before it was
// delivered, and a follower waits for the rest.
var ErrPartialRecord = errors.New("utmp: partial record at end of input")

// PartialRecordError reports a trailing partial record. It matches ErrPartialRecord.
type PartialRecordError struct {
	Offset int64 // where the partial record starts (bytes consumed by whole records)
	Bytes  int   // how many bytes of it there are
}

func (e *PartialRecordError) Error() string {
	return fmt.Sprintf("utmp: partial record of %d bytes at offset %d", e.Bytes, e.Offset)
}

// Is makes errors.Is(err, ErrPartialRecord) true.
func (e *PartialRecordError) Is(target error) bool { return target == ErrPartialRecord }

// ReadUtmp reads struct utmp records (utmp, wtmp, btmp) from r until EOF and calls fn with each.
// It returns nil at a record boundary, a *PartialRecordError when r ends inside a record,
// the first error of fn, or a read error. Records are decoded in this machine's byte order,
// as glibc writes them.
func ReadUtmp(r io.Reader, fn func(UtmpRecord) error) error {
	var b [UtmpRecordSize]byte
	var off int64
	for {
		n, err := io.ReadFull(r, b[:])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &PartialRecordError{Offset: off, Bytes: n}
		default:
			return err
		}
		if err := fn(ParseUtmp(b[:])); err != nil {
			return err
		}
		off += UtmpRecordSize
	}
}

// ParseUtmp decodes one record; b must hold at least UtmpRecordSize bytes.
func ParseUtmp(b []byte) UtmpRecord {
	b = b[:UtmpRecordSize]
	ne := binary.NativeEndian
	r := UtmpRecord{
		Type:    int16(ne.Uint16(b[utType:])),
		PID:     int32(ne.Uint32(b[utPID:])),
		Line:    cString(b[utLine : utLine+32]),
		ID:      cString(b[utID : utID+4]),
		User:    cString(b[utUser : utUser+32]),
		Host:    cString(b[utHost : utHost+256]),
		Session: int32(ne.Uint32(b[utSession:])),
	}
	r.Exit.Termination = int16(ne.Uint16(b[utExit:]))
	r.Exit.Status = int16(ne.Uint16(b[utExit+2:]))
	sec, usec := ne.Uint32(b[utTvSec:]), int64(int32(ne.Uint32(b[utTvUsec:])))
	if usec < 0 || usec >= 1e6 {
		usec = 0
	}
	r.Time = time.Unix(int64(sec), usec*1e3).UTC()
	r.Addr = utmpAddr(b[utAddr : utAddr+16])
	return r
}

func utmpAddr(a []byte) netip.Addr {
	var b16 [16]byte
	copy(b16[:], a)
	switch {
	case b16 == [16]byte{}:
		return netip.Addr{}
	case bytes.Equal(b16[4:], make([]byte, 12)):
		return netip.AddrFrom4([4]byte(b16[:4]))
	default:
		return netip.AddrFrom16(b16).Unmap()
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// LastlogRecordSize is the size of struct lastlog (int32 time, line[32], host[256]).
const LastlogRecordSize = 292

// LastlogRecord is one user's last login from /var/log/lastlog.
type LastlogRecord struct {
	Time time.Time // zero when the user never logged in
	Line string
	Host string
}

// ReadLastlog reads the record for uid from a lastlog file. The file is an array of records
// indexed by UID, and it is sparse: with UIDs in the millions (LDAP, containers) it is
// gigabytes long on paper and mostly holes, so it must be read with ReadAt at uid*292, never
// copied or read whole. A record beyond the end of the file, or all zero (a hole), means the
// user never logged in: the zero LastlogRecord and no error.
func ReadLastlog(r io.ReaderAt, uid int) (LastlogRecord, error) {
	if uid < 0 || int64(uid) > (1<<63-1)/LastlogRecordSize-1 {
		return LastlogRecord{}, fmt.Errorf("lastlog: uid %d out of range", uid)
	}
	var b [LastlogRecordSize]byte
	n, err := r.ReadAt(b[:], int64(uid)*LastlogRecordSize)
	switch {
	case n == LastlogRecordSize:
	case n == 0 && errors.Is(err, io.EOF):
		return LastlogRecord{}, nil
	case errors.Is(err, io.EOF):
		return LastlogRecord{}, fmt.Errorf("lastlog: record for uid %d: %w", uid, io.ErrUnexpectedEOF)
	default:
		return LastlogRecord{}, fmt.Errorf("lastlog: record for uid %d: %w", uid, err)
	}
	rec := LastlogRecord{Line: cString(b[4:36]), Host: cString(b[36:292])}
	if sec := binary.NativeEndian.Uint32(b[0:4]); sec != 0 {
		rec.Time = time.Unix(int64(sec), 0).UTC()
	}
	return rec, nil
}

// UtmpFollower follows a wtmp (logins, logouts, boots) or btmp (failed logins) file and
// delivers each new record once, with the same file handling as Tailer: rotation by rename
// (logrotate rotates wtmp and btmp monthly with "create"), truncation, deletion and
// re-creation, a missing file, and resuming from a saved State. Run one per file.
//
// Records are fixed-size, so offsets stay on record boundaries: a trailing partial record
// (the file is being written) is held until complete, and one still incomplete when its file
// is left is dropped and counted (FollowStats.Partial). A saved or computed offset that is not
// a multiple of the record size is rounded down and counted (FollowStats.Realigned). With no
// saved state, following starts at the end (the last whole record) unless FromStart is set.
type UtmpFollower struct {
	f *follower
}

// OpenUtmp prepares to follow a wtmp or btmp file; see OpenTail for st and the options
// (MaxLineBytes does not apply).
func OpenUtmp(path string, st *State, opt TailOptions) (*UtmpFollower, error) {
	var fl *follower
	dropped := func() { fl.stats.partial.Add(1) }
	fl, err := newFollower(path, st, opt, format{
		kind: "utmp",
		newFramer: func(start int64, _ bool) framer {
			return &recordFramer{start: start, dropped: dropped}
		},
		endStart: func(_ *os.File, size int64) (int64, bool) {
			return size - size%UtmpRecordSize, false
		},
		align: func(off int64) int64 { return off - off%UtmpRecordSize },
	})
	if err != nil {
		return nil, err
	}
	return &UtmpFollower{f: fl}, nil
}

// Run follows the file until ctx ends (nil) or out fails (its error), calling out from this
// goroutine. Run may be called once.
func (u *UtmpFollower) Run(ctx context.Context, out func(UtmpRecord) error) error {
	return u.f.run(ctx, func(unit []byte, _ int64, _ bool) error {
		return out(ParseUtmp(unit))
	})
}

// State is the position after the last record whose out call returned nil; see
// Tailer.State.
func (u *UtmpFollower) State() State { return u.f.state() }

// Stats returns counters since OpenUtmp.
func (u *UtmpFollower) Stats() FollowStats { return u.f.statsSnapshot() }

// Close releases the open file when Run was never called.
func (u *UtmpFollower) Close() error {
	if !u.f.running.Load() {
		u.f.close()
	}
	return nil
}

// recordFramer cuts fixed-size utmp records.
type recordFramer struct {
	pend    []byte
	start   int64 // offset of the incomplete record = after the last delivered one
	dropped func()
}

func (r *recordFramer) feed(data []byte, emit emitFunc) error {
	if len(r.pend) > 0 {
		k := min(UtmpRecordSize-len(r.pend), len(data))
		r.pend = append(r.pend, data[:k]...)
		data = data[k:]
		if len(r.pend) < UtmpRecordSize {
			return nil
		}
		if err := emit(r.pend, r.start+UtmpRecordSize, false); err != nil {
			return err
		}
		r.pend = r.pend[:0]
		r.start += UtmpRecordSize
	}
	for len(data) >= UtmpRecordSize {
		if err := emit(data[:UtmpRecordSize], r.start+UtmpRecordSize, false); err != nil {
			return err
		}
		data = data[UtmpRecordSize:]
		r.start += UtmpRecordSize
	}
	if len(data) > 0 {
		if r.pend == nil {
			r.pend = make([]byte, 0, UtmpRecordSize)
		}
		r.pend = append(r.pend, data...)
	}
	return nil
}

func (r *recordFramer) flush(emitFunc) error {
	if len(r.pend) > 0 {
		r.pend = r.pend[:0]
		if r.dropped != nil {
			r.dropped()
		}
	}
	return nil
}

func (r *recordFramer) resume() int64 { return r.start }
