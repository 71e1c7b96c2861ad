package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// utmpBytes encodes r as glibc's struct utmp, with encoding/binary field by field.
func utmpBytes(t testing.TB, r UtmpRecord) []byte {
	t.Helper()
	var b bytes.Buffer
	ne := binary.NativeEndian
	put := func(v any) {
		if err := binary.Write(&b, ne, v); err != nil {
			t.Fatal(err)
		}
	}
	str := func(s string, n int) {
		f := make([]byte, n)
		copy(f, s)
		put(f)
	}
	put(r.Type)
	put(int16(0)) // padding
	put(r.PID)
	str(r.Line, 32)
	str(r.ID, 4)
	str(r.User, 32)
	str(r.Host, 256)
	put(r.Exit.Termination)
	put(r.Exit.Status)
	put(r.Session)
	put(int32(r.Time.Unix()))
	put(int32(r.Time.Nanosecond() / 1000))
	var addr [16]byte
	if r.Addr.Is4() {
		a4 := r.Addr.As4()
		copy(addr[:], a4[:])
	} else if r.Addr.IsValid() {
		addr = r.Addr.As16()
	}
	put(addr)
	put([20]byte{})
	if b.Len() != UtmpRecordSize {
		t.Fatalf("record is %d bytes", b.Len())
	}
	return b.Bytes()
}

func sampleRecords() []UtmpRecord {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)
	recs := []UtmpRecord{
		{Type: UtBootTime, Line: "~", ID: "~~", User: "reboot", Host: "6.1.0-18-amd64", Time: t0},
		{Type: UtUserProcess, PID: 4242, Line: "pts/0", ID: "ts/0", User: "alice", Host: "192.0.2.10",
			Addr: netip.MustParseAddr("192.0.2.10"), Session: 4242, Time: t0.Add(time.Minute)},
		{Type: UtUserProcess, PID: 4343, Line: "ssh:notty", User: "root", Host: "2001:db8::7",
			Addr: netip.MustParseAddr("2001:db8::7"), Time: t0.Add(2 * time.Minute)},
		{Type: UtDeadProcess, PID: 4242, Line: "pts/0", ID: "ts/0", Time: t0.Add(3 * time.Minute)},
		// A user name that fills the field with no NUL, and hostile bytes.
		{Type: UtUserProcess, PID: 1, Line: "ssh:notty", User: "abcdefghijklmnopqrstuvwxyz012345", Host: "\xff\x1b[31m",
			Time: t0.Add(4 * time.Minute)},
	}
	recs[3].Exit.Status = 255
	return recs
}

func TestReadUtmp(t *testing.T) {
	want := sampleRecords()
	var file []byte
	for _, r := range want {
		file = append(file, utmpBytes(t, r)...)
	}
	var got []UtmpRecord
	if err := ReadUtmp(bytes.NewReader(file), func(r UtmpRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if !got[1].Addr.Is4() || !got[2].Addr.Is6() || got[0].Addr.IsValid() {
		t.Errorf("addresses %v %v %v", got[0].Addr, got[1].Addr, got[2].Addr)
	}

	// A trailing partial record: every whole record is delivered, then ErrPartialRecord.
	got = nil
	err := ReadUtmp(bytes.NewReader(file[:2*UtmpRecordSize+100]), func(r UtmpRecord) error { got = append(got, r); return nil })
	var pe *PartialRecordError
	if !errors.Is(err, ErrPartialRecord) || !errors.As(err, &pe) || pe.Offset != 2*UtmpRecordSize || pe.Bytes != 100 || len(got) != 2 {
		t.Fatalf("partial: err %v, %d records", err, len(got))
	}

	// Callback and reader errors come back as they are.
	stop := errors.New("stop")
	if err := ReadUtmp(bytes.NewReader(file), func(UtmpRecord) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error: %v", err)
	}
	if err := ReadUtmp(io.MultiReader(bytes.NewReader(file[:10]), iotestErrReader{}), func(UtmpRecord) error { return nil }); err == nil || errors.Is(err, ErrPartialRecord) {
		t.Fatalf("read error: %v", err)
	}
	if err := ReadUtmp(bytes.NewReader(nil), func(UtmpRecord) error { return nil }); err != nil {
		t.Fatalf("empty: %v", err)
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestUtmpAddr(t *testing.T) {
	for _, tc := range []struct {
		raw  [16]byte
		want string
	}{
		{[16]byte{}, "invalid IP"},
		{[16]byte{10, 0, 0, 1}, "10.0.0.1"},
		{[16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: 9}, "198.51.100.9"}, // IPv4-mapped
		{netip.MustParseAddr("fe80::1").As16(), "fe80::1"},
		{[16]byte{15: 1}, "::1"},
	} {
		if got := utmpAddr(tc.raw[:]).String(); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.raw, got, tc.want)
		}
	}
}

func TestUtmpTimeAfter2038(t *testing.T) {
	r := UtmpRecord{Type: UtUserProcess, Time: time.Unix(1<<31+100, 0).UTC()} // int32 overflow
	b := utmpBytes(t, r)
	if got := ParseUtmp(b).Time; !got.Equal(r.Time) {
		t.Fatalf("time %v, want %v", got, r.Time)
	}
}

func TestReadLastlog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lastlog")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := func(sec uint32, line, host string) []byte {
		b := make([]byte, LastlogRecordSize)
		binary.NativeEndian.PutUint32(b, sec)
		copy(b[4:36], line)
		copy(b[36:], host)
		return b
	}
	// Sparse, as on a real host: UID 0 and UID 100000 written, holes in between.
	if _, err := f.WriteAt(rec(1700000000, "pts/0", "192.0.2.5"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(rec(1700000500, "ssh", "2001:db8::1"), 100000*LastlogRecordSize); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uid  int
		want LastlogRecord
	}{
		{0, LastlogRecord{Time: time.Unix(1700000000, 0).UTC(), Line: "pts/0", Host: "192.0.2.5"}},
		{1000, LastlogRecord{}}, // hole: never logged in
		{100000, LastlogRecord{Time: time.Unix(1700000500, 0).UTC(), Line: "ssh", Host: "2001:db8::1"}},
		{200000, LastlogRecord{}}, // beyond the end
	} {
		got, err := ReadLastlog(f, tc.uid)
		if err != nil || got != tc.want {
			t.Errorf("uid %d: %+v %v, want %+v", tc.uid, got, err, tc.want)
		}
	}
	if _, err := ReadLastlog(f, -1); err == nil {
		t.Error("negative uid accepted")
	}
	// A file cut inside a record.
	if _, err := ReadLastlog(bytes.NewReader(make([]byte, LastlogRecordSize+10)), 1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut record: %v", err)
	}
}

type utmpCollector struct {
	mu   sync.Mutex
	recs []UtmpRecord
}

func (c *utmpCollector) out(r UtmpRecord) error {
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	return nil
}

func (c *utmpCollector) users() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var u []string
	for _, r := range c.recs {
		u = append(u, r.User)
	}
	return u
}

func runUtmp(t *testing.T, path string, st *State, opt TailOptions) (*UtmpFollower, *utmpCollector, func()) {
	t.Helper()
	u, err := OpenUtmp(path, st, opt)
	if err != nil {
		t.Fatal(err)
	}
	c := &utmpCollector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx, c.out) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return u, c, stop
}

func waitUsers(t *testing.T, c *utmpCollector, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(c.users()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if got := c.users(); !equalStrings(got, want) {
		t.Fatalf("users %q, want %q", got, want)
	}
}

func TestUtmpFollower(t *testing.T) {
	modes(t, func(t *testing.T, opt TailOptions) {
		dir := t.TempDir()
		path := filepath.Join(dir, "btmp")
		rec := func(user string) []byte {
			return utmpBytes(t, UtmpRecord{Type: UtUserProcess, PID: 7, Line: "ssh:notty", User: user, Host: "203.0.113.9",
				Addr: netip.MustParseAddr("203.0.113.9"), Time: time.Unix(1700000000, 0).UTC()})
		}
		// An old record and half of one being written: with no state, following starts at
		// the last whole record, and the half record is delivered once complete.
		half := rec("admin")
		writeFile(t, path, string(rec("old"))+string(half[:100]))
		u, c, stop := runUtmp(t, path, nil, opt)
		time.Sleep(30 * time.Millisecond)
		appendFile(t, path, string(half[100:]))
		appendFile(t, path, string(rec("oracle")))
		waitUsers(t, c, "admin", "oracle")
		if st := u.State(); st.Offset != 3*UtmpRecordSize {
			t.Fatalf("state %+v", st)
		}

		// Monthly rotation with "create": the rest of the old file, then the new one from 0.
		appendFile(t, path, string(rec("test")))
		if err := os.Rename(path, path+".1"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, string(rec("ubuntu"))+string(rec("pi")[:50]))
		waitUsers(t, c, "admin", "oracle", "test", "ubuntu")
		stop()
		st := u.State()
		if st.Offset != UtmpRecordSize {
			t.Fatalf("state after rotation %+v", st)
		}

		// Resume: the partial record completed while down is delivered, nothing is repeated.
		appendFile(t, path, string(rec("pi")[50:]))
		_, c2, _ := runUtmp(t, path, &st, opt)
		waitUsers(t, c2, "pi")

		// A saved offset off a record boundary is rounded down and counted.
		bad := st
		bad.Offset = UtmpRecordSize + 7
		u3, c3, _ := runUtmp(t, path, &bad, opt)
		waitUsers(t, c3, "pi")
		if s := u3.Stats(); s.Realigned != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestUtmpFollowerPartialDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wtmp")
	writeFile(t, path, "")
	u, c, _ := runUtmp(t, path, nil, TailOptions{RotateWait: 20 * time.Millisecond})
	appendFile(t, path, string(utmpBytes(t, UtmpRecord{Type: UtUserProcess, User: "a"}))+"garbage")
	waitUsers(t, c, "a")
	if err := os.Truncate(path, 0); err != nil { // the partial record is abandoned
		t.Fatal(err)
	}
	appendFile(t, path, string(utmpBytes(t, UtmpRecord{Type: UtUserProcess, User: "b"})))
	waitUsers(t, c, "a", "b")
	if s := u.Stats(); s.Partial != 1 || s.Truncations != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestSystemUtmpFiles reads this machine's login records, if it has any, as a smoke test.
func TestSystemUtmpFiles(t *testing.T) {
	found := false
	for _, p := range []string{"/var/log/wtmp", "/var/run/utmp", "/var/log/btmp"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		found = true
		n := 0
		err = ReadUtmp(f, func(r UtmpRecord) error {
			n++
			if r.Type < UtEmpty || r.Type > UtAccounting {
				t.Logf("%s: record %d has unknown type %d", p, n, r.Type)
			}
			return nil
		})
		f.Close()
		if err != nil && !errors.Is(err, ErrPartialRecord) {
			t.Errorf("%s: %v", p, err)
		}
		t.Logf("%s: %d records", p, n)
	}
	if f, err := os.Open("/var/log/lastlog"); err == nil {
		found = true
		if _, err := ReadLastlog(f, os.Getuid()); err != nil {
			t.Errorf("lastlog: %v", err)
		}
		f.Close()
	}
	if !found {
		t.Skip("no utmp, wtmp, btmp or lastlog on this machine")
	}
}

func FuzzReadUtmp(f *testing.F) {
	var file []byte
	for _, r := range sampleRecords() {
		file = append(file, utmpBytes(f, r)...)
	}
	f.Add(file)
	f.Add(file[:UtmpRecordSize+1])
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, UtmpRecordSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := ReadUtmp(bytes.NewReader(data), func(r UtmpRecord) error {
			n++
			if r.Time.Before(time.Unix(0, 0)) {
				t.Fatalf("time before 1970: %v", r.Time)
			}
			if len(r.User) > 32 || len(r.Line) > 32 || len(r.ID) > 4 || len(r.Host) > 256 {
				t.Fatalf("field too long: %+v", r)
			}
			if r.Addr.Is4In6() {
				t.Fatalf("mapped address not unmapped: %v", r.Addr)
			}
			return nil
		})
		if n != len(data)/UtmpRecordSize {
			t.Fatalf("%d records from %d bytes", n, len(data))
		}
		var pe *PartialRecordError
		switch rest := len(data) % UtmpRecordSize; {
		case rest == 0 && err != nil:
			t.Fatalf("whole records: %v", err)
		case rest != 0 && (!errors.As(err, &pe) || pe.Bytes != rest || pe.Offset != int64(len(data)-rest)):
			t.Fatalf("partial record of %d bytes: %v", rest, err)
		}
		if len(data) >= LastlogRecordSize {
			if _, err := ReadLastlog(bytes.NewReader(data), 0); err != nil {
				t.Fatalf("lastlog: %v", err)
			}
		}
	})
}
