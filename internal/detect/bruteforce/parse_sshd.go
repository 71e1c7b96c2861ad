package bruteforce

import "bytes"

var (
	sFrom     = []byte(" from ")
	sPort     = []byte(" port ")
	sPreauth  = []byte(" [preauth]")
	sTooMany  = []byte(": Too many authentication failures")
	sNotAllow = []byte(" not allowed because ")
)

// parseSSHD parses the message b[off:] of an OpenSSH sshd line. Every address is found to the
// right of the user name, which the client chose, or at a fixed place before it.
func parseSSHD(b []byte, off int, r *result) bool {
	end := len(b)
	if end-off < 10 {
		return false
	}
	preauth := false
	if hasSuffix(b[:end], " [preauth]") {
		end -= len(sPreauth)
		preauth = true
	}
	if end-off < 4 {
		return false
	}
	b = b[:end]
	m := b[off:]
	switch m[0] {
	case 'F':
		if hasPrefix(m, "Failed ") {
			return sshAuth(b, off+7, r, false)
		}
	case 'A':
		if hasPrefix(m, "Accepted ") {
			return sshAuth(b, off+9, r, true)
		}
	case 'I':
		if hasPrefix(m, "Invalid user ") {
			return sshInvalidUser(b, off+13, r)
		}
	case 'e':
		if hasPrefix(m, "error: ") {
			m = m[7:]
			off += 7
			switch {
			case hasPrefix(m, "maximum authentication attempts exceeded for "):
				if !sshFromPort(b, off+45, r, true) {
					return false
				}
				r.outcome, r.kind = Blocked, KindConnection
				return true
			case hasPrefix(m, "PAM: Authentication failure for "):
				return sshPAMError(b, off+32, r)
			case hasPrefix(m, "Received disconnect from ") && preauth:
				return sshProbeLeft(b, off+25, r)
			}
		}
	case 'p':
		if hasPrefix(m, "pam_unix(sshd:auth): authentication failure; ") {
			if !pamFields(b, off+45, r) || !r.src.IsValid() {
				return false
			}
			return r.fail(Failure, KindConnection)
		}
	case 'P':
		if hasPrefix(m, "PAM ") {
			// "PAM 2 more authentication failures; logname= ... rhost=IP  user=root"
			n, e, ok := digits(b, off+4, 4)
			if !ok || !hasPrefix(b[e:], " more authentication failure") {
				return false
			}
			semi := bytes.IndexByte(b[e:], ';')
			if semi < 0 || !pamFields(b, e+semi+2, r) || !r.src.IsValid() {
				return false
			}
			r.attempts = uint16(n + 1)
			return r.fail(Failure, KindConnection)
		}
	case 'D':
		switch {
		case hasPrefix(m, "Disconnected from ") && preauth:
			return sshUserAddrPort(b, off+18, len(b), r)
		case hasPrefix(m, "Disconnecting ") && preauth:
			// "Disconnecting authenticating user U IP port P: Too many authentication failures"
			tm := bytes.LastIndex(m, sTooMany)
			if tm < 0 || !sshUserAddrPort(b, off+14, off+tm, r) {
				return false
			}
			r.outcome = Blocked
			return true
		case hasPrefix(m, "Did not receive identification string from "):
			return sshProbeLeft(b, off+43, r)
		}
	case 'C':
		if preauth && (hasPrefix(m, "Connection closed by ") || hasPrefix(m, "Connection reset by ")) {
			i := bytes.IndexByte(m[11:], ' ') // after "closed" / "reset"
			return sshUserAddrPort(b, off+11+i+4, len(b), r)
		}
	case 'R':
		switch {
		case hasPrefix(m, "Received disconnect from ") && preauth:
			return sshProbeLeft(b, off+25, r)
		case hasPrefix(m, "ROOT LOGIN REFUSED FROM "):
			if !sshAddrPortRight(b, off+24, r) {
				return false
			}
			r.userConst = "root"
			return true
		}
	case 'U':
		switch {
		case hasPrefix(m, "Unable to negotiate with "):
			return sshProbeLeft(b, off+25, r)
		case hasPrefix(m, "User "):
			// "User U from IP not allowed because not listed in AllowUsers"
			na := bytes.LastIndex(m, sNotAllow)
			if na < 0 {
				return false
			}
			fr := bytes.LastIndex(m[:na], sFrom)
			if fr < 4 || !r.addrAt(b, off+fr+6, off+na) {
				return false
			}
			r.user = span{off + 5, off + fr}
			return r.fail(Failure, KindConnection)
		}
	case 'b':
		if hasPrefix(m, "banner exchange: Connection from ") {
			return sshProbeLeft(b, off+33, r)
		}
	case 'B':
		if hasPrefix(m, "Bad protocol version identification ") {
			fr := bytes.LastIndex(m, sFrom)
			if fr < 0 {
				return false
			}
			return sshAddrPortRight(b, off+fr+6, r)
		}
	}
	return false
}

// sshAuth parses "METHOD for [invalid user ]U from IP port P ssh2[: ...]" at b[off:] (after
// "Failed " or "Accepted ").
func sshAuth(b []byte, off int, r *result, success bool) bool {
	m := b[off:]
	sp := bytes.IndexByte(m, ' ')
	if sp <= 0 || !hasPrefix(m[sp:], " for ") {
		return false
	}
	meth := m[:sp]
	if !sshFromPort(b, off+sp+5, r, true) {
		return false
	}
	kind := KindAttempt
	switch string(meth) {
	case "password":
		r.method = "password"
	case "keyboard-interactive/pam":
		r.method = "keyboard-interactive/pam"
	case "keyboard-interactive":
		r.method = "keyboard-interactive"
	case "publickey":
		r.method, kind = "publickey", KindConnection
	case "none":
		r.method, kind = "none", KindConnection
	case "hostbased":
		r.method, kind = "hostbased", KindConnection
	case "gssapi-with-mic":
		r.method, kind = "gssapi-with-mic", KindConnection
	default:
		r.methodSp, kind = span{off, off + sp}, KindConnection
	}
	if success {
		if r.outcome == InvalidUser { // "Accepted ... for invalid user" does not exist
			return false
		}
		r.outcome = Success
		return true
	}
	r.kind = kind
	return true
}

// sshFromPort parses "[invalid user |illegal user ]U from IP port P[ ssh2[: ...]]" at b[off:]
// into r.user, r.src, r.port and r.outcome (Failure or InvalidUser). The port and address are
// the last " port " and the last " from " before it, so no user name can supply them.
func sshFromPort(b []byte, off int, r *result, ssh2 bool) bool {
	m := b[off:]
	pp := bytes.LastIndex(m, sPort)
	if pp < 0 {
		return false
	}
	port, e, ok := portAt(m, pp+6)
	if !ok {
		return false
	}
	if e < len(m) && !(ssh2 && (hasPrefix(m[e:], " ssh2") || hasPrefix(m[e:], " ssh1"))) {
		return false
	}
	fr := bytes.LastIndex(m[:pp], sFrom)
	if fr < 0 || !r.addrAt(b, off+fr+6, off+pp) {
		return false
	}
	r.port = port
	r.outcome = Failure
	ulo := 0
	if u := m[:fr]; hasPrefix(u, "invalid user ") || hasPrefix(u, "illegal user ") {
		r.outcome, ulo = InvalidUser, 13
	}
	r.user = span{off + ulo, off + fr}
	return true
}

// sshInvalidUser parses "U from IP[ port P]" after "Invalid user ".
func sshInvalidUser(b []byte, off int, r *result) bool {
	m := b[off:]
	hi := len(m)
	if pp := bytes.LastIndex(m, sPort); pp >= 0 {
		if port, e, ok := portAt(m, pp+6); ok && e == len(m) {
			r.port, hi = port, pp
		}
	}
	fr := bytes.LastIndex(m[:hi], sFrom)
	if fr < 0 {
		if !hasPrefix(m, "from ") { // "Invalid user  from IP" with an empty name
			return false
		}
		fr = -1
	}
	if !r.addrAt(b, off+fr+6, off+hi) {
		return false
	}
	if fr >= 0 {
		r.user = span{off, off + fr}
	}
	return r.fail(InvalidUser, KindConnection)
}

// sshPAMError parses "[illegal user ]U from HOST" after "error: PAM: Authentication failure for ".
func sshPAMError(b []byte, off int, r *result) bool {
	m := b[off:]
	fr := bytes.LastIndex(m, sFrom)
	if fr < 0 || !r.addrAt(b, off+fr+6, len(b)) {
		return false
	}
	r.outcome = Failure
	lo := 0
	if hasPrefix(m[:fr], "illegal user ") || hasPrefix(m[:fr], "invalid user ") {
		r.outcome, lo = InvalidUser, 13
	}
	r.user = span{off + lo, off + fr}
	r.kind = KindConnection
	return true
}

// sshUserAddrPort parses "[authenticating |invalid ]user U IP port P" at b[off:hi], the preauth
// ends of connections. A line without a user ("Connection closed by IP port P") is not counted:
// the client left before naming one, which scanners and health checks do.
func sshUserAddrPort(b []byte, off, hi int, r *result) bool {
	m := b[off:hi]
	r.outcome = Failure
	switch {
	case hasPrefix(m, "authenticating user "):
		m, off = m[20:], off+20
	case hasPrefix(m, "invalid user "):
		m, off = m[13:], off+13
		r.outcome = InvalidUser
	default:
		return false
	}
	pp := bytes.LastIndex(m, sPort)
	if pp < 0 {
		return false
	}
	port, e, ok := portAt(m, pp+6)
	if !ok || e != len(m) {
		return false
	}
	sp := bytes.LastIndexByte(m[:pp], ' ')
	if !r.addrAt(b, off+sp+1, off+pp) {
		return false
	}
	if sp > 0 {
		r.user = span{off, off + sp}
	}
	r.port = port
	r.kind = KindConnection
	return true
}

// sshProbeLeft parses "IP[ port P][:...]" or "IP[:...]" at b[off:], where the address comes
// right after the server's own words: a probe, a Failure with no user.
func sshProbeLeft(b []byte, off int, r *result) bool {
	m := b[off:]
	e := bytes.IndexByte(m, ' ')
	if e < 0 {
		e = len(m)
	}
	hi := e
	if hi > 0 && m[hi-1] == ':' && bytes.Count(m[:hi], []byte{':'}) != 2 { // "1.2.3.4:" (old "Received disconnect")
		hi--
	}
	if !r.addrAt(b, off, off+hi) {
		return false
	}
	if hasPrefix(m[e:], " port ") {
		if port, _, ok := portAt(m, e+6); ok {
			r.port = port
		}
	}
	return r.fail(Failure, KindConnection)
}

// sshAddrPortRight parses "IP[ port P]" to the end of b, after the last " from ".
func sshAddrPortRight(b []byte, off int, r *result) bool {
	m := b[off:]
	hi := len(m)
	if pp := bytes.LastIndex(m, sPort); pp >= 0 {
		if port, e, ok := portAt(m, pp+6); ok && e == len(m) {
			r.port, hi = port, pp
		}
	}
	if !r.addrAt(b, off, off+hi) {
		return false
	}
	return r.fail(Failure, KindConnection)
}
