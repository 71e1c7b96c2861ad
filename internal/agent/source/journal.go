package source

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// DefaultJournalIdentifiers are the SYSLOG_IDENTIFIER values followed when
// JournalOptions.Identifiers is empty: the programs that log authentication, privilege and
// account changes.
var DefaultJournalIdentifiers = []string{
	"sshd", "sshd-session", "sudo", "su", "login", "systemd-logind", "polkitd", "pkexec",
	"passwd", "chpasswd", "chage", "useradd", "userdel", "usermod", "groupadd", "groupdel",
	"groupmod", "gpasswd", "runuser", "doas", "dropbear", "unix_chkpwd",
}

// Journal defaults.
const (
	DefaultJournalMaxEntryBytes = 1 << 20
	DefaultJournalMinBackoff    = time.Second
	DefaultJournalMaxBackoff    = time.Minute
)

// JournalEntry is one systemd journal entry, decoded from journalctl's JSON output.
type JournalEntry struct {
	Time       time.Time // __REALTIME_TIMESTAMP: when journald received the entry (UTC)
	Identifier string    // SYSLOG_IDENTIFIER, e.g. "sshd"; chosen by the sender, so forgeable
	PID        int       // _PID (trusted, set by journald), else SYSLOG_PID; 0 if neither
	Message    string    // MESSAGE as sent: may hold invalid UTF-8 (journalctl sends such values as byte arrays)
	Cursor     string    // __CURSOR: resume after this entry with JournalOptions.Cursor
	Hostname   string    // _HOSTNAME
	// Comm and UID are _COMM and _UID, which journald sets from the kernel's view of the
	// sender: unlike Identifier, a local user cannot forge them (logger -t sshd runs with
	// the user's UID and "logger" as its command). UID is -1 when absent.
	Comm string
	UID  int
}

// JournalOptions tunes a Journal. The zero value is ready to use.
type JournalOptions struct {
	// Identifiers are the SYSLOG_IDENTIFIER values to follow (default
	// DefaultJournalIdentifiers). They become journalctl matches, which journalctl ORs. They
	// come from the agent's configuration only.
	Identifiers []string
	// Cursor resumes after this entry (a JournalEntry.Cursor saved by the caller). Empty:
	// start with entries arriving from now on.
	Cursor string
	// MaxEntryBytes bounds one JSON entry (default 1 MiB); longer ones are skipped and counted
	// as garbage.
	MaxEntryBytes int
	// MinBackoff and MaxBackoff bound the wait before journalctl is restarted after it
	// exits (default 1 s doubling up to 1 min; back to the minimum after it ran for a while).
	MinBackoff, MaxBackoff time.Duration
	// Name is the component name for Status (default "journal").
	Name string
	// Status, if set, is called whenever the source's health changes. Agent.SetComponent
	// fits.
	Status func(finding.ComponentState)

	root string // prefix for the paths probed to tell whether the journal runs (tests)
}

// JournalStats counts what a Journal has done.
type JournalStats struct {
	Entries  uint64 // entries delivered
	Garbage  uint64 // output lines that were not a journal entry (or too long), skipped
	Restarts uint64 // times journalctl exited and was started again
}

// Journal follows the systemd journal by running journalctl, a local binary, with fixed
// arguments:
//
//	journalctl --follow --no-tail --output=json --all --no-pager
//	    --output-fields=MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_HOSTNAME,_COMM,_UID
//	    (--after-cursor=CURSOR | --since=@UNIXSECONDS)
//	    SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=sudo ...
//
// Entries are selected by SYSLOG_IDENTIFIER, the name in front of the PID in a syslog line
// ("sshd[812]: ..."), not by _COMM: _COMM is the kernel's 15-byte command name, which differs
// from the identifier for several programs and would miss messages relayed through syslog(3)
// by helpers. The identifier is chosen by the sender, so each entry also carries the trusted
// _COMM and _UID for the engines to check. --all keeps journalctl from replacing fields over
// 4 KiB with null; --no-tail keeps --follow from starting at the last 10 entries.
//
// The first start with no cursor asks for entries since that moment; afterwards journalctl is
// always started after the cursor of the last delivered entry, so a restart of journalctl
// (with backoff when it exits) loses and repeats nothing. A saved cursor journalctl rejects
// is replaced by the time it encodes (a few entries of that second may be delivered again).
type Journal struct {
	opt    JournalOptions
	bin    string
	status statusReporter

	mu     sync.Mutex
	cursor string
	since  time.Time

	entries, garbage, restarts atomic.Uint64
	running                    atomic.Bool
}

// OpenJournal checks that the journal can be followed here and prepares to follow it. It
// returns an error matching ErrUnavailable (an *UnavailableError with the reason) when
// journalctl is not installed or no journal is running and no journal files exist — the
// usual state inside a container.
func OpenJournal(opt JournalOptions) (*Journal, error) {
	if opt.Name == "" {
		opt.Name = "journal"
	}
	if len(opt.Identifiers) == 0 {
		opt.Identifiers = DefaultJournalIdentifiers
	}
	if opt.MaxEntryBytes <= 0 {
		opt.MaxEntryBytes = DefaultJournalMaxEntryBytes
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultJournalMinBackoff
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(DefaultJournalMaxBackoff, opt.MinBackoff)
	}
	for _, id := range opt.Identifiers {
		if !validJournalValue(id, 256) {
			return nil, fmt.Errorf("journal: invalid identifier %q", id)
		}
	}
	if opt.Cursor != "" && !validJournalValue(opt.Cursor, 1024) {
		return nil, fmt.Errorf("journal: invalid cursor %q", opt.Cursor)
	}
	j := &Journal{opt: opt, cursor: opt.Cursor, status: statusReporter{name: opt.Name, fn: opt.Status}}
	fail := func(reason string, err error) (*Journal, error) {
		j.status.report(finding.StateUnavailable, reason)
		return nil, &UnavailableError{Source: opt.Name, Reason: reason, Err: err}
	}
	bin, err := exec.LookPath("journalctl")
	if err != nil {
		return fail("journalctl is not installed (not found in PATH)", err)
	}
	j.bin = bin
	if !journalPresent(opt.root) {
		return fail("systemd-journald is not running (no /run/systemd/journal/socket) and there are no journal files in /var/log/journal or /run/log/journal", nil)
	}
	return j, nil
}

// validJournalValue accepts printable ASCII without spaces: identifiers and cursors are
// passed as single arguments (no shell), and this keeps them from reading as options or
// carrying control characters.
func validJournalValue(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// journalPresent reports whether journald is running (its socket exists) or journal files
// exist to be followed (for example a host journal mounted into a container).
func journalPresent(root string) bool {
	if _, err := os.Stat(filepath.Join(root, "/run/systemd/journal/socket")); err == nil {
		return true
	}
	for _, dir := range []string{"/run/log/journal", "/var/log/journal"} {
		for _, pat := range []string{"*.journal", "*/*.journal"} {
			if m, _ := filepath.Glob(filepath.Join(root, dir, pat)); len(m) > 0 {
				return true
			}
		}
	}
	return false
}

// Cursor is the cursor of the last entry whose out call returned nil (the saved cursor if
// none yet). Save it after the consumer has processed the entries; pass it back in
// JournalOptions.Cursor to resume. Safe from any goroutine.
func (j *Journal) Cursor() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cursor
}

// Stats returns counters since OpenJournal. Safe from any goroutine.
func (j *Journal) Stats() JournalStats {
	return JournalStats{Entries: j.entries.Load(), Garbage: j.garbage.Load(), Restarts: j.restarts.Load()}
}

// args builds journalctl's command line: fixed flags, the start position, the matches.
func (j *Journal) args() []string {
	a := []string{
		"--follow", "--no-tail", "--output=json", "--all", "--no-pager",
		"--output-fields=MESSAGE,SYSLOG_IDENTIFIER,SYSLOG_PID,_PID,_HOSTNAME,_COMM,_UID",
	}
	j.mu.Lock()
	if j.cursor != "" {
		a = append(a, "--after-cursor="+j.cursor)
	} else {
		a = append(a, "--since=@"+strconv.FormatInt(j.since.Unix(), 10))
	}
	j.mu.Unlock()
	for _, id := range j.opt.Identifiers {
		a = append(a, "SYSLOG_IDENTIFIER="+id)
	}
	return a
}

// Run follows the journal until ctx ends (nil) or out fails (its error), calling out from
// this goroutine. journalctl is restarted with backoff whenever it exits; the status is
// degraded while it is down. Run may be called once.
func (j *Journal) Run(ctx context.Context, out func(JournalEntry) error) error {
	if !j.running.CompareAndSwap(false, true) {
		return errors.New("journal: Run may be called only once")
	}
	j.mu.Lock()
	j.since = time.Now()
	j.mu.Unlock()
	backoff := j.opt.MinBackoff
	for first := true; ; first = false {
		started := time.Now()
		res, err := j.runOnce(ctx, out, first)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if res.entries > 0 || time.Since(started) > 2*j.opt.MaxBackoff {
			backoff = j.opt.MinBackoff
		}
		if res.cursorRejected {
			j.dropCursor()
		}
		j.restarts.Add(1)
		j.status.report(finding.StateDegraded, fmt.Sprintf("journalctl %s; restarting in %s", res.describe(), backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, j.opt.MaxBackoff)
	}
}

// dropCursor replaces a cursor journalctl refused by the time it encodes.
func (j *Journal) dropCursor() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if t, ok := cursorTime(j.cursor); ok {
		j.since = t
	}
	j.cursor = ""
}

// cursorTime extracts the realtime timestamp ("t=" field, hex microseconds) from a cursor.
func cursorTime(c string) (time.Time, bool) {
	for f := range strings.SplitSeq(c, ";") {
		if v, ok := strings.CutPrefix(f, "t="); ok {
			us, err := strconv.ParseUint(v, 16, 63)
			if err != nil {
				return time.Time{}, false
			}
			return time.UnixMicro(int64(us)), true
		}
	}
	return time.Time{}, false
}

type runResult struct {
	entries        uint64
	exit           error
	stderr         string
	cursorRejected bool
}

func (r runResult) describe() string {
	s := "exited"
	if r.exit != nil {
		s += " (" + r.exit.Error() + ")"
	}
	if r.stderr != "" {
		s += ": " + r.stderr
	}
	return s
}

// runOnce runs journalctl until it exits, ctx ends, or out fails (returned as the error).
func (j *Journal) runOnce(ctx context.Context, out func(JournalEntry) error, first bool) (runResult, error) {
	var res runResult
	cmd := exec.CommandContext(ctx, j.bin, j.args()...)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=cat", "PAGER=cat")
	cmd.WaitDelay = 2 * time.Second
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	setChildAttrs(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.exit = err
		return res, nil
	}
	if err := cmd.Start(); err != nil {
		res.exit = err
		return res, nil
	}
	var healthy *time.Timer
	if first {
		j.status.report(finding.StateRunning, "")
	} else {
		// Still degraded until it proves itself, so a journalctl that fails at once does not
		// flap between running and degraded.
		healthy = time.AfterFunc(3*time.Second, func() { j.status.report(finding.StateRunning, "") })
	}
	r := bufio.NewReaderSize(stdout, 64<<10)
	var outErr error
	for {
		line, tooLong, err := readLine(r, j.opt.MaxEntryBytes)
		if ctx.Err() != nil {
			break // shutting down: deliver nothing more
		}
		if tooLong {
			j.garbage.Add(1)
		} else if len(line) > 0 {
			if e, derr := DecodeJournalEntry(line); derr != nil {
				j.garbage.Add(1)
			} else if outErr = out(e); outErr != nil {
				break
			} else {
				res.entries++
				j.entries.Add(1)
				j.mu.Lock()
				j.cursor = e.Cursor
				j.mu.Unlock()
				if healthy != nil && res.entries == 1 {
					j.status.report(finding.StateRunning, "")
				}
			}
		}
		if err != nil {
			break
		}
	}
	if healthy != nil {
		healthy.Stop()
	}
	if outErr != nil && cmd.Process != nil {
		cmd.Process.Kill()
	}
	res.exit = cmd.Wait()
	res.stderr = stderr.String()
	if res.entries == 0 && strings.Contains(res.stderr, "cursor") && j.Cursor() != "" {
		res.cursorRejected = true
	}
	return res, outErr
}

// readLine reads one '\n'-terminated line without the newline. A line longer than limit is
// consumed and reported as tooLong.
func readLine(r *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	var acc []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(acc)+len(frag) > limit+1 {
			tooLong = true
			acc = nil
		} else if !tooLong {
			if acc == nil && err == nil {
				return bytes.TrimSuffix(frag, []byte{'\n'}), false, nil
			}
			acc = append(acc, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			return nil, true, err
		}
		return bytes.TrimSuffix(acc, []byte{'\n'}), false, err
	}
}

// tailBuffer keeps the last max bytes written to it, as one line of text.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(strings.TrimSpace(string(t.b)), "?")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// journalJSON holds the fields the decoder uses. journalctl prints every value as a string,
// as an array of byte values when it is not valid UTF-8 (or has control characters), as null
// when it is too large (prevented with --all), and as an array of such values when the field
// occurs more than once in the entry.
type journalJSON struct {
	Cursor     journalValue `json:"__CURSOR"`
	Realtime   journalValue `json:"__REALTIME_TIMESTAMP"`
	Message    journalValue `json:"MESSAGE"`
	Identifier journalValue `json:"SYSLOG_IDENTIFIER"`
	SyslogPID  journalValue `json:"SYSLOG_PID"`
	PID        journalValue `json:"_PID"`
	Hostname   journalValue `json:"_HOSTNAME"`
	Comm       journalValue `json:"_COMM"`
	UID        journalValue `json:"_UID"`
}

// journalValue is one journal field value; for a field that occurs several times, the first.
type journalValue struct {
	s   string
	set bool
}

func (v *journalValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("empty value")
	}
	switch b[0] {
	case 'n':
		*v = journalValue{}
		return nil
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = journalValue{s: s, set: true}
		return nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			return err
		}
		if len(elems) == 0 {
			*v = journalValue{set: true}
			return nil
		}
		if c := bytes.TrimSpace(elems[0]); len(c) > 0 && (c[0] == '-' || c[0] >= '0' && c[0] <= '9') {
			buf := make([]byte, len(elems))
			for i, e := range elems {
				n, err := strconv.ParseUint(string(bytes.TrimSpace(e)), 10, 8)
				if err != nil {
					return fmt.Errorf("byte array element %d: %w", i, err)
				}
				buf[i] = byte(n)
			}
			*v = journalValue{s: string(buf), set: true}
			return nil
		}
		// Several values of the field: keep the first (a string or a byte array).
		return v.UnmarshalJSON(elems[0])
	default:
		return fmt.Errorf("unexpected journal value %.20q", b)
	}
}

// DecodeJournalEntry decodes one line of `journalctl --output=json`. It fails for anything
// that is not a JSON object with a __CURSOR (and, when present, a numeric
// __REALTIME_TIMESTAMP).
func DecodeJournalEntry(line []byte) (JournalEntry, error) {
	var raw journalJSON
	if err := json.Unmarshal(line, &raw); err != nil {
		return JournalEntry{}, fmt.Errorf("journal entry: %w", err)
	}
	if !raw.Cursor.set || raw.Cursor.s == "" {
		return JournalEntry{}, errors.New("journal entry: no __CURSOR")
	}
	if !validJournalValue(raw.Cursor.s, 1024) {
		return JournalEntry{}, errors.New("journal entry: malformed __CURSOR")
	}
	e := JournalEntry{
		Cursor: raw.Cursor.s, Message: raw.Message.s, Identifier: raw.Identifier.s,
		Hostname: raw.Hostname.s, Comm: raw.Comm.s, UID: -1,
	}
	if raw.Realtime.set {
		us, err := strconv.ParseInt(raw.Realtime.s, 10, 64)
		if err != nil || us < 0 {
			return JournalEntry{}, fmt.Errorf("journal entry: bad __REALTIME_TIMESTAMP %q", raw.Realtime.s)
		}
		e.Time = time.UnixMicro(us).UTC()
	}
	if pid, err := strconv.Atoi(raw.PID.s); err == nil && pid > 0 {
		e.PID = pid
	} else if pid, err := strconv.Atoi(raw.SyslogPID.s); err == nil && pid > 0 {
		e.PID = pid
	}
	if uid, err := strconv.Atoi(raw.UID.s); err == nil && uid >= 0 {
		e.UID = uid
	}
	return e, nil
}

var _ io.Writer = (*tailBuffer)(nil)
