package bruteforce

import (
	"bytes"
	"net/netip"
	"time"
)

// ParseLine parses one syslog-style line: RFC 3164 ("Dec  4 20:01:02 host prog[pid]: msg"),
// RFC 3339 as rsyslog writes it ("2026-12-04T20:01:02.123456+00:00 host prog[pid]: msg"), RFC
// 5424 ("<38>1 2026-12-04T20:01:02Z host prog pid - - msg"), or one of the services' own log
// formats listed in the package comment. year and loc complete RFC 3164 times, which have
// neither; loc is also the zone of the services' own formats when they give none. It reports
// false for lines of other programs and for lines of known programs that say nothing about an
// authentication or name no address a remote failure can be held against. It does not allocate
// for lines it rejects, and allocates the Line string once for lines it accepts.
//
// ParseLine keeps no state between lines: a PostgreSQL failure, whose address is on an earlier
// line, needs a Parser.
func ParseLine(line []byte, year int, loc *time.Location) (Event, bool) {
	p := Parser{Year: year, Location: loc, stateless: true}
	return p.ParseLine(line)
}

// ParseMessage parses one journald entry: prog is its SYSLOG_IDENTIFIER, msg its MESSAGE and t
// its time (__REALTIME_TIMESTAMP). Event.Line is "prog: msg".
func ParseMessage(prog, msg string, t time.Time) (Event, bool) {
	p := Parser{stateless: true}
	return p.ParseMessage(prog, 0, msg, t)
}

// Parser parses lines like ParseLine, keeping what one line needs from earlier ones: the year of
// RFC 3164 times, which it increments when the month goes from December to January, and the
// client address of each PostgreSQL backend from its "connection received" line (at most
// maxPGBackends at once). A Parser is not safe for concurrent use; its zero value parses with
// year 0 in UTC.
type Parser struct {
	// Year completes RFC 3164 times; set it to the year of the first line.
	Year int
	// Location is the zone of times that carry none; nil means UTC.
	Location *time.Location

	stateless bool
	lastMonth time.Month
	pg        map[int]pgClient
	buf       []byte
}

type pgClient struct {
	addr netip.Addr
	port uint16
}

const maxPGBackends = 4096

// ParseLine parses one line; see the package function ParseLine.
func (p *Parser) ParseLine(line []byte) (Event, bool) {
	n := len(line)
	for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
		n--
	}
	line = line[:n]
	var h header
	if !p.header(line, &h) {
		return Event{}, false
	}
	var r result
	r.pid = h.pid
	if !p.dispatch(h.prog, line, h.msg, &r) {
		return Event{}, false
	}
	t, ok := p.time(&h.stamp)
	if !ok {
		return Event{}, false
	}
	return r.event(string(line), t, ""), true
}

// ParseMessage parses one journald entry; see the package function ParseMessage. pid is the
// entry's _PID (0 if unknown), which joins PostgreSQL lines.
func (p *Parser) ParseMessage(prog string, pid int, msg string, t time.Time) (Event, bool) {
	if len(msg) > maxLine {
		return Event{}, false
	}
	p.buf = append(p.buf[:0], msg...)
	var r result
	r.pid = pid
	if len(prog) > 64 {
		return Event{}, false
	}
	var name [64]byte
	n := copy(name[:], prog)
	if !p.dispatch(name[:n], p.buf, 0, &r) {
		return Event{}, false
	}
	return r.event(msg, t, prog), true
}

// maxLine bounds the lines looked at; longer ones are not authentication lines.
const maxLine = 16 << 10

// header is where a line's parts are.
type header struct {
	stamp stamp
	prog  []byte
	pid   int
	msg   int
}

// stamp is a parsed timestamp, turned into a time.Time only for lines that match.
type stamp struct {
	year, day, hour, min, sec, nsec int
	month                           time.Month
	offset                          int  // seconds east of UTC, when zoned
	zoned                           bool // offset is known; otherwise the Parser's Location
	noYear                          bool // RFC 3164: the year is the Parser's
}

func (p *Parser) time(s *stamp) (time.Time, bool) {
	if s.month < 1 || s.month > 12 || s.day < 1 || s.day > 31 || s.hour > 23 || s.min > 59 || s.sec > 60 {
		return time.Time{}, false
	}
	year := s.year
	if s.noYear {
		if !p.stateless {
			if p.lastMonth == 12 && s.month == 1 {
				p.Year++
			}
			p.lastMonth = s.month
		}
		year = p.Year
	}
	if s.zoned {
		return time.Date(year, s.month, s.day, s.hour, s.min, s.sec, s.nsec, time.UTC).Add(-time.Duration(s.offset) * time.Second), true
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(year, s.month, s.day, s.hour, s.min, s.sec, s.nsec, loc), true
}

func (p *Parser) header(line []byte, h *header) bool {
	if len(line) < 20 || len(line) > maxLine {
		return false
	}
	i := 0
	rfc5424 := false
	if line[0] == '<' {
		j := 1
		for j < 5 && isDigit(line[j]) {
			j++
		}
		if j == 1 || line[j] != '>' {
			return false
		}
		i = j + 1
		if line[i] == '1' && line[i+1] == ' ' {
			rfc5424 = true
			i += 2
		}
	}
	c := line[i]
	switch {
	case c >= 'A' && c <= 'Z':
		if isWeekday(line[i:]) {
			return p.headerCtime(line, i+4, h)
		}
		return p.header3164(line, i, h)
	case isDigit(c):
		return p.headerISO(line, i, rfc5424, h)
	}
	return false
}

// header3164 parses "Dec  4 20:01:02 host prog[pid]: ".
func (p *Parser) header3164(line []byte, i int, h *header) bool {
	m := monthOf(line[i:])
	if m == 0 || line[i+3] != ' ' {
		return false
	}
	j := i + 4
	if line[j] == ' ' {
		j++
	}
	day, j, ok := digits(line, j, 2)
	if !ok || j >= len(line) || line[j] != ' ' {
		return false
	}
	j, ok = clock(line, j+1, &h.stamp)
	if !ok || j >= len(line) || line[j] != ' ' {
		return false
	}
	h.stamp.month, h.stamp.day, h.stamp.noYear = m, day, true
	j++
	sp := bytes.IndexByte(line[j:], ' ')
	if sp <= 0 {
		return false
	}
	return tag(line, j+sp+1, h)
}

// headerCtime parses vsftpd's own log: "Sat Dec  4 20:01:02 2026 [pid 12345] [user] ...".
func (p *Parser) headerCtime(line []byte, i int, h *header) bool {
	if len(line) < i+25 {
		return false
	}
	m := monthOf(line[i:])
	if m == 0 || line[i+3] != ' ' {
		return false
	}
	j := i + 4
	if line[j] == ' ' {
		j++
	}
	day, j, ok := digits(line, j, 2)
	if !ok || line[j] != ' ' {
		return false
	}
	j, ok = clock(line, j+1, &h.stamp)
	if !ok || j >= len(line) || line[j] != ' ' {
		return false
	}
	year, j, ok := digits(line, j+1, 4)
	if !ok || j >= len(line) || line[j] != ' ' {
		return false
	}
	h.stamp.year, h.stamp.month, h.stamp.day = year, m, day
	j++
	if hasPrefix(line[j:], "[pid ") {
		e := bytes.IndexByte(line[j:], ']')
		if e < 0 || j+e+2 > len(line) {
			return false
		}
		h.pid, _, _ = digits(line, j+5, 10)
		j += e + 2
	}
	h.prog, h.msg = progVsftpd, j
	return true
}

var progVsftpd = []byte("vsftpd")

// headerISO parses a line that starts with an RFC 3339 or "YYYY-MM-DD HH:MM:SS" time.
func (p *Parser) headerISO(line []byte, i int, rfc5424 bool, h *header) bool {
	j, sep, ok := isoStamp(line, i, &h.stamp)
	if !ok || j >= len(line) || line[j] != ' ' {
		return false
	}
	j++
	sp := bytes.IndexByte(line[j:], ' ')
	if sp <= 0 {
		return false
	}
	tok := line[j : j+sp]
	after := line[j+sp:]
	if allDigits(tok) && hasPrefix(after, " [") {
		// MySQL 5.7/8 ("...Z 12 [Note] ...") and MariaDB ("... 12 [Warning] ...") error logs.
		h.prog, h.msg = progMySQL, j
		return true
	}
	if sep == ' ' && len(after) > 3 && after[1] == '[' && isDigit(after[2]) {
		// PostgreSQL's own log: "%m [%p] " or "%t [%p-%l] ", tok being the zone.
		if !h.stamp.zoned {
			zoneAbbrev(tok, &h.stamp)
		}
		pid, k, _ := digits(line, j+sp+2, 10)
		if k >= len(line) || (line[k] != ']' && line[k] != '-') {
			return false
		}
		e := bytes.IndexByte(line[k:], ']')
		if e < 0 {
			return false
		}
		h.prog, h.pid, h.msg = progPostgres, pid, k+e+1
		return true
	}
	if rfc5424 {
		return header5424(line, j+sp+1, h)
	}
	return tag(line, j+sp+1, h)
}

var (
	progMySQL    = []byte("mysqld")
	progPostgres = []byte("postgres")
)

// header5424 parses "APP PROCID MSGID SD MSG" after the host.
func header5424(line []byte, j int, h *header) bool {
	app := bytes.IndexByte(line[j:], ' ')
	if app <= 0 {
		return false
	}
	h.prog = line[j : j+app]
	if len(h.prog) == 1 && h.prog[0] == '-' {
		return false
	}
	j += app + 1
	sp := bytes.IndexByte(line[j:], ' ')
	if sp <= 0 {
		return false
	}
	h.pid, _, _ = digits(line, j, 10)
	j += sp + 1
	sp = bytes.IndexByte(line[j:], ' ') // MSGID
	if sp <= 0 {
		return false
	}
	j += sp + 1
	if j >= len(line) {
		return false
	}
	if line[j] == '-' {
		j++
	} else {
		for j < len(line) && line[j] == '[' {
			j++
			for quoted := false; ; j++ {
				if j >= len(line) {
					return false
				}
				c := line[j]
				if c == '\\' {
					j++
				} else if c == '"' {
					quoted = !quoted
				} else if c == ']' && !quoted {
					j++
					break
				}
			}
		}
	}
	if j < len(line) && line[j] == ' ' {
		j++
	}
	if hasPrefix(line[j:], "\xef\xbb\xbf") {
		j += 3
	}
	h.msg = j
	return true
}

// tag parses "prog[pid]: ", "prog: " or, in ProFTPD's own log, "prog[pid] ".
func tag(line []byte, j int, h *header) bool {
	k := j
	for k < len(line) && k-j < 64 {
		c := line[k]
		if c == '[' || c == ':' || c == ' ' {
			break
		}
		k++
	}
	if k == j || k >= len(line) {
		return false
	}
	h.prog = line[j:k]
	h.pid = -1
	if line[k] == '[' {
		pid, e, _ := digits(line, k+1, 10)
		if e >= len(line) || line[e] != ']' {
			return false
		}
		h.pid = pid
		k = e + 1
	}
	if k < len(line) && line[k] == ':' {
		k++
	} else if h.pid < 0 {
		return false
	}
	if k < len(line) && line[k] == ' ' {
		k++
	}
	h.msg = k
	return true
}

// dispatch hands the message b[off:] to the parser of the program prog.
func (p *Parser) dispatch(prog, b []byte, off int, r *result) bool {
	switch string(prog) {
	case "sshd", "sshd-session", "sshd-auth":
		r.service = ServiceSSHD
		return parseSSHD(b, off, r)
	case "vsftpd":
		r.service = ServiceVsftpd
		return parseVsftpd(b, off, r)
	case "proftpd":
		r.service = ServiceProFTPD
		return parseProFTPD(b, off, r)
	case "mysqld", "mariadbd", "mysql", "mariadb":
		r.service = ServiceMySQL
		return parseMySQL(b, off, r)
	case "postgres", "postgresql", "postmaster":
		r.service = ServicePostgreSQL
		return p.parsePostgres(b, off, r)
	case "dovecot", "auth", "auth-worker":
		r.service = ServiceDovecot
		return parseDovecot(b, off, r)
	case "su":
		r.service = ServiceSu
		return parseSu(b, off, r)
	case "sudo":
		r.service = ServiceSudo
		return parseSudo(b, off, r)
	}
	if len(prog) > 8 && hasPrefix(prog, "postfix") && hasSuffix(prog, "/smtpd") {
		r.service = ServicePostfix
		return parsePostfix(b, off, r)
	}
	return false
}

// result is what a service parser found, with strings as offsets into the line so that nothing
// is allocated until the line is known to match.
type result struct {
	service   string
	outcome   Outcome
	kind      Kind
	attempts  uint16
	method    string // a constant, or empty with methodSp set
	methodSp  span
	user      span
	userConst string // when the user is not in the line ("ROOT LOGIN REFUSED")
	by, tty   span
	src       netip.Addr
	port      uint16
	pid       int
}

type span struct{ lo, hi int }

func (s span) of(str string) string {
	if s.hi <= s.lo || s.hi > len(str) {
		return ""
	}
	return str[s.lo:s.hi]
}

func (r *result) event(s string, t time.Time, prog string) Event {
	e := Event{
		Time:     t,
		Service:  r.service,
		Outcome:  r.outcome,
		User:     r.user.of(s),
		Source:   r.src,
		Port:     r.port,
		Method:   r.method,
		Line:     s,
		Kind:     r.kind,
		Attempts: r.attempts,
		By:       r.by.of(s),
		TTY:      r.tty.of(s),
	}
	if e.Method == "" {
		e.Method = r.methodSp.of(s)
	}
	if r.userConst != "" {
		e.User = r.userConst
	}
	if r.outcome != Success && e.Attempts == 0 {
		e.Attempts = 1
	}
	if prog != "" {
		e.Line = prog + ": " + s
	}
	return e
}

// fail records a failure of kind k.
func (r *result) fail(o Outcome, k Kind) bool {
	r.outcome, r.kind = o, k
	return true
}

// ---- byte helpers ----

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

func hasSuffix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[len(b)-len(s):]) == s
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

// digits reads up to max decimal digits at b[i:], returning the value and the index after them.
func digits(b []byte, i, max int) (int, int, bool) {
	v, j := 0, i
	for j < len(b) && j-i < max && isDigit(b[j]) {
		v = v*10 + int(b[j]-'0')
		j++
	}
	return v, j, j > i
}

// portAt reads a port number at b[i:].
func portAt(b []byte, i int) (uint16, int, bool) {
	v, j, ok := digits(b, i, 5)
	if !ok || v > 65535 || (j < len(b) && isDigit(b[j])) {
		return 0, j, false
	}
	return uint16(v), j, true
}

// clock parses "HH:MM:SS" at b[i:].
func clock(b []byte, i int, s *stamp) (int, bool) {
	if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
		return i, false
	}
	var ok1, ok2, ok3 bool
	var e int
	s.hour, e, ok1 = digits(b, i, 2)
	ok1 = ok1 && e == i+2
	s.min, e, ok2 = digits(b, i+3, 2)
	ok2 = ok2 && e == i+5
	s.sec, e, ok3 = digits(b, i+6, 2)
	ok3 = ok3 && e == i+8
	return i + 8, ok1 && ok2 && ok3
}

// isoStamp parses "YYYY-MM-DD[T ]HH:MM:SS[.frac|,frac][Z|±hh:mm|±hhmm]" at b[i:].
func isoStamp(b []byte, i int, s *stamp) (int, byte, bool) {
	if len(b) < i+19 || b[i+4] != '-' || b[i+7] != '-' {
		return i, 0, false
	}
	var ok bool
	var e, mon int
	if s.year, e, ok = digits(b, i, 4); !ok || e != i+4 {
		return i, 0, false
	}
	if mon, e, ok = digits(b, i+5, 2); !ok || e != i+7 {
		return i, 0, false
	}
	if s.day, e, ok = digits(b, i+8, 2); !ok || e != i+10 {
		return i, 0, false
	}
	s.month = time.Month(mon)
	sep := b[i+10]
	if sep != 'T' && sep != ' ' {
		return i, 0, false
	}
	j, ok := clock(b, i+11, s)
	if !ok {
		return i, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == ',') {
		k := j + 1
		scale := 100000000
		for k < len(b) && isDigit(b[k]) {
			s.nsec += int(b[k]-'0') * scale
			scale /= 10
			k++
		}
		if k == j+1 {
			return i, 0, false
		}
		j = k
	}
	if j < len(b) {
		switch b[j] {
		case 'Z':
			s.zoned = true
			j++
		case '+', '-':
			off, k, ok := numericZone(b, j)
			if !ok {
				return i, 0, false
			}
			s.offset, s.zoned, j = off, true, k
		}
	}
	return j, sep, true
}

// numericZone parses "+hh:mm", "+hhmm" or "+hh" at b[j:].
func numericZone(b []byte, j int) (int, int, bool) {
	sign := 1
	if b[j] == '-' {
		sign = -1
	}
	hh, k, ok := digits(b, j+1, 2)
	if !ok || k != j+3 || hh > 23 {
		return 0, j, false
	}
	mm := 0
	if k < len(b) && b[k] == ':' {
		k++
	}
	if m, e, ok := digits(b, k, 2); ok && e == k+2 {
		mm, k = m, e
	}
	if mm > 59 {
		return 0, j, false
	}
	return sign * (hh*3600 + mm*60), k, true
}

// zoneAbbrev reads PostgreSQL's zone: "UTC" or "GMT", or a numeric "+03"; other abbreviations
// leave the time in the Parser's Location.
func zoneAbbrev(tok []byte, s *stamp) {
	switch string(tok) {
	case "UTC", "GMT", "Z":
		s.zoned, s.offset = true, 0
		return
	}
	if len(tok) >= 3 && (tok[0] == '+' || tok[0] == '-') {
		if off, k, ok := numericZone(tok, 0); ok && k == len(tok) {
			s.zoned, s.offset = true, off
		}
	}
}

func monthOf(b []byte) time.Month {
	if len(b) < 3 {
		return 0
	}
	switch string(b[:3]) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

func isWeekday(b []byte) bool {
	if len(b) < 4 || b[3] != ' ' {
		return false
	}
	switch string(b[:3]) {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

// addrTo parses the address at b[lo:hi] into r.src, which must be a valid address.
func (r *result) addrAt(b []byte, lo, hi int) bool {
	if lo < 0 || hi > len(b) || hi <= lo {
		return false
	}
	a, ok := parseAddr(b[lo:hi])
	r.src = a
	return ok
}
