package bruteforce

import (
	"bytes"
	"net/netip"
)

// pamFields parses "logname=L uid=N euid=N tty=T ruser=R rhost=H  user=U" at b[off:], as
// pam_unix writes it for sshd, su and sudo (whose fields before user= are the system's own, so a
// forward scan is safe; Dovecot's and vsftpd's carry the client's user name in ruser= and are not
// read: those services log the same failures themselves). A rhost that is not an address (a
// host name) fails the parse.
func pamFields(b []byte, off int, r *result) bool {
	if off > len(b) {
		return false
	}
	i := off
	var vals [6]span
	for k, key := range [...]string{"logname=", "uid=", "euid=", "tty=", "ruser=", "rhost="} {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if !hasPrefix(b[i:], key) {
			return false
		}
		i += len(key)
		j := i
		for j < len(b) && b[j] != ' ' {
			j++
		}
		vals[k] = span{i, j}
		i = j
	}
	for i < len(b) && b[i] == ' ' {
		i++
	}
	if hasPrefix(b[i:], "user=") {
		r.user = span{i + 5, len(b)}
	} else if i != len(b) {
		return false
	}
	if rh := vals[5]; rh.hi > rh.lo && !r.addrAt(b, rh.lo, rh.hi) {
		return false
	}
	tty := vals[3]
	if hasPrefix(b[tty.lo:tty.hi], "/dev/") {
		tty.lo += 5
	}
	r.tty = tty
	r.by = vals[4]
	if r.by.hi == r.by.lo {
		r.by = vals[0]
	}
	return true
}

var (
	sFailLogin = []byte("] FAIL LOGIN: Client \"")
	sOKLogin   = []byte("] OK LOGIN: Client \"")
)

// parseVsftpd parses "[pid N] [U] FAIL LOGIN: Client "IP"" and "... OK LOGIN: ...". A failure
// line ends at the address, so its marker is the last one (the user name before it may contain
// one); a success may be followed by the anonymous password, so its marker is the first, and an
// anonymous one is recognised first of all.
func parseVsftpd(b []byte, off int, r *result) bool {
	m := b[off:]
	if hasPrefix(m, "[pid ") {
		e := bytes.IndexByte(m, ']')
		if e < 0 || e+2 > len(m) {
			return false
		}
		m, off = m[e+2:], off+e+2
	}
	if len(m) < 2 || m[0] != '[' {
		return false
	}
	// An anonymous login may be followed by its password, which may imitate a failure.
	for _, anon := range [...]string{"[ftp] OK LOGIN: Client \"", "[anonymous] OK LOGIN: Client \""} {
		if hasPrefix(m, anon) {
			q := bytes.IndexByte(m[len(anon):], '"')
			if q >= 0 && r.addrAt(b, off+len(anon), off+len(anon)+q) {
				r.user = span{off + 1, off + len(anon) - len(sOKLogin)}
				r.method = "password"
				r.outcome = Success
				return true
			}
		}
	}
	if i := bytes.LastIndex(m, sFailLogin); i >= 0 {
		lo := i + len(sFailLogin)
		if m[len(m)-1] != '"' || !r.addrAt(b, off+lo, off+len(m)-1) {
			return false
		}
		r.user = span{off + 1, off + i}
		r.method = "password"
		return r.fail(Failure, KindAttempt)
	}
	if i := bytes.Index(m, sOKLogin); i >= 0 {
		lo := i + len(sOKLogin)
		q := bytes.IndexByte(m[lo:], '"')
		if q < 0 || !r.addrAt(b, off+lo, off+lo+q) {
			return false
		}
		r.user = span{off + 1, off + i}
		r.method = "password"
		r.outcome = Success
		return true
	}
	return false
}

var (
	sLoginFailed = []byte(" (Login failed)")
	sNoSuchUser  = []byte(": no such user found from ")
	sLoginOK     = []byte(": Login successful.")
)

// parseProFTPD parses "SERVER (NAME[IP]) - USER U (Login failed): ..." (syslog) and
// "SERVER (NAME[IP]): USER U ..." (proftpd.log). The address is the first bracketed one, which
// precedes the user name.
func parseProFTPD(b []byte, off int, r *result) bool {
	m := b[off:]
	op := bytes.Index(m, []byte(" ("))
	if op < 0 {
		return false
	}
	cl := bytes.Index(m[op:], []byte("])"))
	if cl < 0 {
		return false
	}
	cl += op
	lb := bytes.LastIndexByte(m[op:cl], '[')
	if lb < 0 || !r.addrAt(b, off+op+lb+1, off+cl) {
		return false
	}
	rest := cl + 2
	switch {
	case hasPrefix(m[rest:], " - "):
		rest += 3
	case hasPrefix(m[rest:], ": "):
		rest += 2
	default:
		return false
	}
	t := m[rest:]
	if hasPrefix(t, "Maximum login attempts (") {
		return r.fail(Blocked, KindConnection)
	}
	if !hasPrefix(t, "USER ") {
		return false
	}
	ulo := off + rest + 5
	switch {
	case hasSuffix(t, ": Login successful."):
		r.user = span{ulo, off + rest + bytes.LastIndex(t, sLoginOK)}
		r.outcome = Success
		return true
	case bytes.Contains(t, sLoginFailed):
		r.user = span{ulo, off + rest + bytes.LastIndex(t, sLoginFailed)}
		r.method = "password"
		return r.fail(Failure, KindAttempt)
	case bytes.Contains(t, sNoSuchUser):
		r.user = span{ulo, off + rest + bytes.LastIndex(t, sNoSuchUser)}
		r.method = "password"
		return r.fail(InvalidUser, KindAttempt)
	}
	return false
}

var (
	sAccessDenied = []byte("Access denied for user '")
	sUsingPass    = []byte("' (using password: ")
	sAtQuote      = []byte("'@'")
)

// parseMySQL parses "Access denied for user 'U'@'HOST' (using password: YES)" anywhere in the
// message. HOST is the server's view of the client and is the last quoted part.
func parseMySQL(b []byte, off int, r *result) bool {
	m := b[off:]
	i := bytes.Index(m, sAccessDenied)
	if i < 0 {
		return false
	}
	lo := i + len(sAccessDenied)
	up := bytes.LastIndex(m, sUsingPass)
	if up < lo {
		return false
	}
	at := bytes.LastIndex(m[lo:up], sAtQuote)
	if at < 0 || !r.addrAt(b, off+lo+at+3, off+up) {
		return false
	}
	r.user = span{off + lo, off + lo + at}
	r.method = "password"
	return r.fail(Failure, KindAttempt)
}

var (
	sFatal        = []byte("FATAL:  ")
	sPGPassFailed = []byte("FATAL:  password authentication failed for user \"")
	sPGRole       = []byte("FATAL:  role \"")
	sPGConnRecv   = []byte("LOG:  connection received: host=")
	sPGConnAuth   = []byte("LOG:  connection authorized: user=")
)

// parsePostgres parses the lines of one PostgreSQL backend; see the package comment. The
// address of a failure is the one its backend's "connection received" line gave.
func (p *Parser) parsePostgres(b []byte, off int, r *result) bool {
	m := b[off:]
	pid := r.pid
	if f := bytes.Index(m, sFatal); f >= 0 {
		client, known := p.pgTake(pid)
		if known {
			r.src, r.port = client.addr, client.port
		}
		switch {
		case bytes.Contains(m, sPGPassFailed):
			i := bytes.LastIndex(m, sPGPassFailed) + len(sPGPassFailed)
			q := bytes.LastIndexByte(m, '"')
			if q < i {
				return false
			}
			r.user = span{off + i, off + q}
			r.method = "password"
			r.fail(Failure, KindAttempt)
		case bytes.Contains(m, sPGRole) && hasSuffix(m, "\" does not exist"):
			i := bytes.LastIndex(m, sPGRole) + len(sPGRole)
			q := len(m) - len("\" does not exist")
			if q < i {
				return false
			}
			r.user = span{off + i, off + q}
			r.fail(InvalidUser, KindAttempt)
		default:
			// "no pg_hba.conf entry for host "IP", user "U", database "D", ..." and "pg_hba.conf
			// rejects connection for host ...": the message names the host, which is trusted
			// only when no other FATAL on the line could be a role name imitating one.
			t := m[f+len(sFatal):]
			var hl int
			switch {
			case hasPrefix(t, "no pg_hba.conf entry for host \""):
				hl = len("no pg_hba.conf entry for host \"")
			case hasPrefix(t, "pg_hba.conf rejects connection for host \""):
				hl = len("pg_hba.conf rejects connection for host \"")
			default:
				return false
			}
			q := bytes.IndexByte(t[hl:], '"')
			if q < 0 {
				return false
			}
			if !known {
				if bytes.Count(m, sFatal) != 1 || !r.addrAt(b, off+f+len(sFatal)+hl, off+f+len(sFatal)+hl+q) {
					return false
				}
			}
			us := bytes.Index(t[hl+q:], []byte(", user \""))
			ue := bytes.LastIndex(t, []byte("\", database \""))
			if us >= 0 && ue > hl+q+us+8 {
				base := off + f + len(sFatal)
				r.user = span{base + hl + q + us + 8, base + ue}
			}
			r.fail(Failure, KindAttempt)
		}
		return r.src.IsValid()
	}
	if i := bytes.LastIndex(m, sPGConnRecv); i >= 0 {
		// "connection received: host=IP port=P", which must end the line.
		t := m[i+len(sPGConnRecv):]
		sp := bytes.Index(t, []byte(" port="))
		if sp < 0 {
			p.pgTake(pid)
			return false
		}
		port, e, ok := portAt(t, sp+6)
		a, aok := parseAddr(t[:sp])
		if !ok || e != len(t) || !aok {
			p.pgTake(pid)
			return false
		}
		p.pgPut(pid, pgClient{a, port})
		return false
	}
	if i := bytes.LastIndex(m, sPGConnAuth); i >= 0 {
		client, known := p.pgTake(pid)
		if !known {
			return false
		}
		lo := i + len(sPGConnAuth)
		e := bytes.Index(m[lo:], []byte(" database="))
		if e < 0 {
			return false
		}
		r.src, r.port = client.addr, client.port
		r.user = span{off + lo, off + lo + e}
		r.outcome = Success
		return true
	}
	return false
}

func (p *Parser) pgTake(pid int) (pgClient, bool) {
	if p.pg == nil || pid <= 0 {
		return pgClient{}, false
	}
	c, ok := p.pg[pid]
	if ok {
		delete(p.pg, pid)
	}
	return c, ok
}

func (p *Parser) pgPut(pid int, c pgClient) {
	if p.stateless || pid <= 0 {
		return
	}
	if p.pg == nil {
		p.pg = make(map[int]pgClient)
	}
	if len(p.pg) >= maxPGBackends {
		clear(p.pg) // backends that never logged an end; start over rather than grow
	}
	p.pg[pid] = c
}

var (
	sAuthFailed = []byte("(auth failed, ")
	sRip        = []byte(", rip=")
	sUserLT     = []byte("user=<")
	sMethodEq   = []byte(">, method=")
	sArgsEnd    = []byte("): ")
)

// parseDovecot parses the login processes' "Disconnected (auth failed, N attempts in S secs):
// user=<U>, method=M, rip=IP, ..." and "Login: user=<U>, ..." and the auth process's
// "DRIVER(U,IP[,<session>]): REASON".
func parseDovecot(b []byte, off int, r *result) bool {
	m := b[off:]
	c := bytes.Index(m, []byte(": "))
	if c <= 0 || c > 48 {
		return false
	}
	proc := m[:c]
	rest := off + c + 2
	for _, lvl := range [...]string{"Info: ", "Warning: ", "Error: "} {
		if hasPrefix(b[rest:], lvl) {
			rest += len(lvl)
			break
		}
	}
	switch {
	case hasSuffix(proc, "-login"):
		t := b[rest:]
		if hasPrefix(t, "Login: ") {
			if !dovecotFields(b, rest, r) {
				return false
			}
			r.outcome = Success
			return true
		}
		af := bytes.Index(t, sAuthFailed)
		if af < 0 {
			return false
		}
		n, _, ok := digits(t, af+len(sAuthFailed), 5)
		if !ok || n == 0 || !dovecotFields(b, rest+af, r) {
			return false
		}
		r.attempts = uint16(min(n, 1<<15))
		return r.fail(Failure, KindSummary)
	case hasPrefix(proc, "auth"):
		t := b[rest:]
		op := bytes.IndexByte(t, '(')
		if op <= 0 || op > 24 {
			return false
		}
		ae := bytes.LastIndex(t, sArgsEnd)
		if ae < op {
			return false
		}
		args := t[op+1 : ae]
		if len(args) > 0 && args[len(args)-1] == '>' {
			if s := bytes.LastIndex(args, []byte(",<")); s >= 0 {
				args = args[:s]
			}
		}
		comma := bytes.LastIndexByte(args, ',')
		if comma < 0 || !r.addrAt(b, rest+op+1+comma+1, rest+op+1+len(args)) {
			return false
		}
		r.user = span{rest + op + 1, rest + op + 1 + comma}
		reason := t[ae+3:]
		switch {
		case hasPrefix(reason, "pam_authenticate() failed: User not known"), hasPrefix(reason, "unknown user"):
			return r.fail(InvalidUser, KindAttempt)
		case hasPrefix(reason, "pam_authenticate() failed"), hasPrefix(reason, "Password mismatch"),
			hasPrefix(reason, "invalid credentials"):
			return r.fail(Failure, KindAttempt)
		}
	}
	return false
}

// dovecotFields reads user=<U>, method=M and rip=IP from b[off:]. rip is the last ", rip=",
// after the user name; the user ends at the last ">, method=" before it.
func dovecotFields(b []byte, off int, r *result) bool {
	t := b[off:]
	ri := bytes.LastIndex(t, sRip)
	if ri < 0 {
		return false
	}
	ae := bytes.IndexByte(t[ri+6:], ',')
	if ae < 0 {
		ae = len(t) - ri - 6
	}
	if !r.addrAt(b, off+ri+6, off+ri+6+ae) {
		return false
	}
	ul := bytes.Index(t[:ri], sUserLT)
	if ul < 0 {
		return true
	}
	ul += len(sUserLT)
	if me := bytes.LastIndex(t[ul:ri], sMethodEq); me >= 0 {
		r.user = span{off + ul, off + ul + me}
		r.methodSp = span{off + ul + me + len(sMethodEq), off + ri}
	} else if ri > ul && t[ri-1] == '>' {
		r.user = span{off + ul, off + ri - 1}
	}
	return true
}

var (
	sSASL       = []byte("]: SASL ")
	sSASLUser   = []byte(", sasl_username=")
	sSASLMethod = []byte("], sasl_method=")
)

// parsePostfix parses smtpd's "warning: NAME[IP]: SASL METHOD authentication failed: ..." and
// "QUEUEID: client=NAME[IP], sasl_method=M, sasl_username=U".
func parsePostfix(b []byte, off int, r *result) bool {
	m := b[off:]
	if hasPrefix(m, "warning: ") {
		s := bytes.Index(m, sSASL)
		if s < 0 {
			return false
		}
		lb := bytes.LastIndexByte(m[:s], '[')
		if lb < 0 || !r.addrAt(b, off+lb+1, off+s) {
			return false
		}
		ml := s + len(sSASL)
		sp := bytes.IndexByte(m[ml:], ' ')
		if sp <= 0 || !hasPrefix(m[ml+sp:], " authentication failed") {
			return false
		}
		r.methodSp = span{off + ml, off + ml + sp}
		if u := bytes.Index(m[ml:], sSASLUser); u >= 0 {
			r.user = span{off + ml + u + len(sSASLUser), len(b)}
		}
		return r.fail(Failure, KindAttempt)
	}
	ci := bytes.Index(m, []byte(": client="))
	if ci < 0 || ci > 20 {
		return false
	}
	sm := bytes.Index(m, sSASLMethod)
	if sm < 0 {
		return false
	}
	lb := bytes.LastIndexByte(m[:sm], '[')
	if lb < 0 || !r.addrAt(b, off+lb+1, off+sm) {
		return false
	}
	ml := sm + len(sSASLMethod)
	u := bytes.Index(m[ml:], sSASLUser)
	if u < 0 {
		return false
	}
	r.methodSp = span{off + ml, off + ml + u}
	r.user = span{off + ml + u + len(sSASLUser), len(b)}
	r.outcome = Success
	return true
}

// parseSu parses util-linux's "FAILED SU (to U) BY on TTY" and "(to U) BY on TTY", shadow's
// "FAILED su for U by BY" and "Successful su for U by BY", and pam_unix(su:auth).
func parseSu(b []byte, off int, r *result) bool {
	m := b[off:]
	switch {
	case hasPrefix(m, "pam_unix(su:auth): authentication failure; "):
		if !pamFields(b, off+43, r) {
			return false
		}
		r.src = netipZero
		return r.fail(Failure, KindAttempt)
	case hasPrefix(m, "pam_unix(su-l:auth): authentication failure; "):
		if !pamFields(b, off+45, r) {
			return false
		}
		r.src = netipZero
		return r.fail(Failure, KindAttempt)
	case hasPrefix(m, "FAILED SU (to "):
		if !suTo(b, off+14, r) {
			return false
		}
		return r.fail(Failure, KindSummary)
	case hasPrefix(m, "(to "):
		if !suTo(b, off+4, r) {
			return false
		}
		r.outcome = Success
		return true
	case hasPrefix(m, "FAILED su for "), hasPrefix(m, "Successful su for "):
		lo := off + 14
		if m[0] == 'S' {
			lo = off + 18
		}
		by := bytes.LastIndex(b[lo:], []byte(" by "))
		if by < 0 {
			return false
		}
		r.user = span{lo, lo + by}
		r.by = span{lo + by + 4, len(b)}
		if m[0] == 'S' {
			r.outcome = Success
			return true
		}
		return r.fail(Failure, KindSummary)
	}
	return false
}

// suTo parses "U) BY on TTY".
func suTo(b []byte, off int, r *result) bool {
	m := b[off:]
	cp := bytes.Index(m, []byte(") "))
	on := bytes.LastIndex(m, []byte(" on "))
	if cp < 0 || on < cp+2 {
		return false
	}
	r.user = span{off, off + cp}
	r.by = span{off + cp + 2, off + on}
	r.tty = span{off + on + 4, len(b)}
	if hasPrefix(b[r.tty.lo:], "/dev/") {
		r.tty.lo += 5
	}
	return true
}

var (
	sSudoSep = []byte(" : ")
	sTTYEq   = []byte("TTY=")
	sUserEq  = []byte(" ; USER=")
)

// parseSudo parses pam_unix(sudo:auth) and "BY : N incorrect password attempts ; TTY=T ; PWD=D ;
// USER=U ; COMMAND=C" and the success "BY : TTY=T ; PWD=D ; USER=U ; COMMAND=C".
func parseSudo(b []byte, off int, r *result) bool {
	for off < len(b) && b[off] == ' ' {
		off++
	}
	m := b[off:]
	if hasPrefix(m, "pam_unix(sudo:auth): authentication failure; ") {
		if !pamFields(b, off+45, r) {
			return false
		}
		r.src = netipZero
		r.method = "password"
		return r.fail(Failure, KindAttempt)
	}
	sep := bytes.Index(m, sSudoSep)
	if sep <= 0 || sep > 256 {
		return false
	}
	r.by = span{off, off + sep}
	t := m[sep+3:]
	toff := off + sep + 3
	failed := false
	if n, e, ok := digits(t, 0, 4); ok && hasPrefix(t[e:], " incorrect password attempt") {
		failed = true
		r.attempts = uint16(n)
		semi := bytes.Index(t, []byte(" ; "))
		if semi < 0 {
			return false
		}
		t, toff = t[semi+3:], toff+semi+3
	}
	if !hasPrefix(t, "TTY=") {
		return false
	}
	te := bytes.Index(t, []byte(" ; "))
	if te < 0 {
		return false
	}
	r.tty = span{toff + 4, toff + te}
	if u := bytes.Index(t, sUserEq); u >= 0 {
		ue := bytes.Index(t[u+len(sUserEq):], []byte(" ; "))
		if ue >= 0 {
			r.user = span{toff + u + len(sUserEq), toff + u + len(sUserEq) + ue}
		}
	}
	if failed {
		if r.attempts == 0 {
			return false
		}
		r.method = "password"
		return r.fail(Failure, KindSummary)
	}
	r.outcome = Success
	return true
}

var netipZero = netip.Addr{}
