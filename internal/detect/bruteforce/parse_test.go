package bruteforce_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
)

// want is what a parsed line must say. src "" means no address; n 0 means 1 for failures.
type want struct {
	svc     string
	out     bf.Outcome
	user    string
	src     string
	port    uint16
	method  string
	kind    bf.Kind
	n       uint16
	by, tty string
}

type lineCase struct {
	name string
	line string
	want *want // nil: the line must be rejected
}

var (
	fail  = bf.Failure
	inval = bf.InvalidUser
	succ  = bf.Success
	block = bf.Blocked
	att   = bf.KindAttempt
	conn  = bf.KindConnection
	summ  = bf.KindSummary
)

func checkEvent(t *testing.T, e bf.Event, w *want, line string) {
	t.Helper()
	wantN := w.n
	if wantN == 0 && w.out != succ {
		wantN = 1
	}
	var src netip.Addr
	if w.src != "" {
		src = netip.MustParseAddr(w.src)
	}
	if e.Service != w.svc || e.Outcome != w.out || e.User != w.user || e.Source != src || e.Port != w.port ||
		e.Method != w.method || e.Kind != w.kind || e.Attempts != wantN || e.By != w.by || e.TTY != w.tty {
		t.Errorf("line %q\n got svc=%s out=%v user=%q src=%v port=%d method=%q kind=%v n=%d by=%q tty=%q\nwant svc=%s out=%v user=%q src=%v port=%d method=%q kind=%v n=%d by=%q tty=%q",
			line, e.Service, e.Outcome, e.User, e.Source, e.Port, e.Method, e.Kind, e.Attempts, e.By, e.TTY,
			w.svc, w.out, w.user, src, w.port, w.method, w.kind, wantN, w.by, w.tty)
	}
}

func runLineCases(t *testing.T, cases []lineCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, ok := bf.ParseLine([]byte(c.line), 2026, time.UTC)
			if c.want == nil {
				if ok {
					t.Fatalf("accepted %q as %+v", c.line, e)
				}
				return
			}
			if !ok {
				t.Fatalf("rejected %q", c.line)
			}
			checkEvent(t, e, c.want, c.line)
			if e.Line != c.line {
				t.Errorf("Line = %q", e.Line)
			}
		})
	}
}

const h3164 = "Dec  4 20:01:02 web-01 "

func TestParseSSHD(t *testing.T) {
	s := bf.ServiceSSHD
	runLineCases(t, []lineCase{
		// OpenSSH 7.4 (CentOS 7)
		{"7.4 invalid user without port", h3164 + "sshd[2211]: Invalid user admin from 203.0.113.7",
			&want{svc: s, out: inval, user: "admin", src: "203.0.113.7", kind: conn}},
		{"7.4 pam failure of an invalid user", h3164 + "sshd[2211]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7",
			&want{svc: s, out: fail, src: "203.0.113.7", kind: conn, tty: "ssh"}},
		{"7.4 pam failure with user", h3164 + "sshd[2214]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  user=root",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", kind: conn, tty: "ssh"}},
		{"7.4 failed password invalid user", h3164 + "sshd[2211]: Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2",
			&want{svc: s, out: inval, user: "admin", src: "203.0.113.7", port: 40022, method: "password", kind: att}},
		{"7.4 PAM more failures", h3164 + "sshd[2214]: PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  user=root",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", kind: conn, n: 6, tty: "ssh"}},
		{"7.4 PAM one more failure", h3164 + "sshd[2214]: PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  user=root",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", kind: conn, n: 2, tty: "ssh"}},
		{"7.4 disconnecting without address", h3164 + "sshd[2214]: Disconnecting: Too many authentication failures for root [preauth]", nil},
		{"7.4 disconnected without user", h3164 + "sshd[2211]: Disconnected from 203.0.113.7 port 40022 [preauth]", nil},
		{"7.4 did not receive identification", h3164 + "sshd[2300]: Did not receive identification string from 192.0.2.200",
			&want{svc: s, out: fail, src: "192.0.2.200", kind: conn}},
		{"7.4 PAM error keyboard-interactive", h3164 + "sshd[2400]: error: PAM: Authentication failure for root from 198.51.100.23",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", kind: conn}},
		{"PAM error illegal user", h3164 + "sshd[2400]: error: PAM: Authentication failure for illegal user test from 198.51.100.23",
			&want{svc: s, out: inval, user: "test", src: "198.51.100.23", kind: conn}},
		{"PAM error host name", h3164 + "sshd[2400]: error: PAM: Authentication failure for root from scanner.example.net", nil},
		{"pam rhost host name", h3164 + "sshd[2214]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example.net  user=root", nil},
		{"pam check pass", h3164 + "sshd[2211]: pam_unix(sshd:auth): check pass; user unknown", nil},
		{"input_userauth_request", h3164 + "sshd[2211]: input_userauth_request: invalid user admin [preauth]", nil},
		{"7.4 received disconnect", h3164 + "sshd[2211]: Received disconnect from 203.0.113.7 port 40022:11: Bye Bye [preauth]",
			&want{svc: s, out: fail, src: "203.0.113.7", port: 40022, kind: conn}},
		{"6.x received disconnect without port", h3164 + "sshd[2211]: Received disconnect from 203.0.113.7: 11: Bye Bye [preauth]",
			&want{svc: s, out: fail, src: "203.0.113.7", kind: conn}},
		{"received disconnect after a session", h3164 + "sshd[2211]: Received disconnect from 10.0.0.6 port 52010:11: disconnected by user", nil},
		{"error received disconnect", h3164 + "sshd[2211]: error: Received disconnect from 203.0.113.7 port 40022:3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
			&want{svc: s, out: fail, src: "203.0.113.7", port: 40022, kind: conn}},
		// OpenSSH 8.2 (Ubuntu 20.04)
		{"8.2 invalid user with port", h3164 + "sshd[2211]: Invalid user admin from 203.0.113.7 port 40022",
			&want{svc: s, out: inval, user: "admin", src: "203.0.113.7", port: 40022, kind: conn}},
		{"8.2 disconnected invalid user", h3164 + "sshd[2211]: Disconnected from invalid user admin 203.0.113.7 port 40022 [preauth]",
			&want{svc: s, out: inval, user: "admin", src: "203.0.113.7", port: 40022, kind: conn}},
		{"8.2 disconnected authenticating user", h3164 + "sshd[2211]: Disconnected from authenticating user root 203.0.113.7 port 40022 [preauth]",
			&want{svc: s, out: fail, user: "root", src: "203.0.113.7", port: 40022, kind: conn}},
		{"disconnected after a session", h3164 + "sshd[2211]: Disconnected from user alice 10.0.0.6 port 52010", nil},
		{"8.2 connection closed authenticating", h3164 + "sshd[2220]: Connection closed by authenticating user root 198.51.100.23 port 51234 [preauth]",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, kind: conn}},
		{"connection reset invalid", h3164 + "sshd[2220]: Connection reset by invalid user pi 198.51.100.23 port 51234 [preauth]",
			&want{svc: s, out: inval, user: "pi", src: "198.51.100.23", port: 51234, kind: conn}},
		{"connection closed without user", h3164 + "sshd[2220]: Connection closed by 198.51.100.23 port 51234 [preauth]", nil},
		{"connection closed not preauth", h3164 + "sshd[2220]: Connection closed by authenticating user root 198.51.100.23 port 51234", nil},
		{"8.2 disconnecting too many", h3164 + "sshd[2221]: Disconnecting invalid user test 203.0.113.7 port 40100: Too many authentication failures [preauth]",
			&want{svc: s, out: block, user: "test", src: "203.0.113.7", port: 40100, kind: conn}},
		{"unable to negotiate", h3164 + "sshd[2222]: Unable to negotiate with 192.0.2.50 port 60000: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]",
			&want{svc: s, out: fail, src: "192.0.2.50", port: 60000, kind: conn}},
		{"8.2 did not receive with port", h3164 + "sshd[2223]: Did not receive identification string from 192.0.2.51 port 60001",
			&want{svc: s, out: fail, src: "192.0.2.51", port: 60001, kind: conn}},
		{"bad protocol version", h3164 + "sshd[2224]: Bad protocol version identification 'GET / HTTP/1.1' from 192.0.2.52 port 60002",
			&want{svc: s, out: fail, src: "192.0.2.52", port: 60002, kind: conn}},
		{"bad protocol version imitating an address", h3164 + "sshd[2224]: Bad protocol version identification 'x from 6.6.6.6 port 1' from 192.0.2.52 port 60002",
			&want{svc: s, out: fail, src: "192.0.2.52", port: 60002, kind: conn}},
		// OpenSSH 8.9 (Ubuntu 22.04) and 9.x
		{"banner exchange", h3164 + "sshd[2213]: banner exchange: Connection from 192.0.2.52 port 60002: invalid format",
			&want{svc: s, out: fail, src: "192.0.2.52", port: 60002, kind: conn}},
		{"kex_exchange_identification", h3164 + "sshd[2214]: error: kex_exchange_identification: Connection closed by remote host", nil},
		{"max auth attempts", h3164 + "sshd[2214]: error: maximum authentication attempts exceeded for root from 198.51.100.23 port 51234 ssh2 [preauth]",
			&want{svc: s, out: block, user: "root", src: "198.51.100.23", port: 51234, kind: conn}},
		{"max auth attempts invalid", h3164 + "sshd[2214]: error: maximum authentication attempts exceeded for invalid user oracle from 198.51.100.23 port 51234 ssh2 [preauth]",
			&want{svc: s, out: block, user: "oracle", src: "198.51.100.23", port: 51234, kind: conn}},
		{"9.x disconnecting authenticating", h3164 + "sshd[2214]: Disconnecting authenticating user root 198.51.100.23 port 51234: Too many authentication failures [preauth]",
			&want{svc: s, out: block, user: "root", src: "198.51.100.23", port: 51234, kind: conn}},
		{"failed publickey", h3164 + "sshd[2214]: Failed publickey for root from 198.51.100.23 port 51234 ssh2: RSA SHA256:5F7u0mQ3n0VzGkYHn2g1G9Yl8bS0d3xKQyq1XxW8k2c",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "publickey", kind: conn}},
		{"failed keyboard-interactive/pam", h3164 + "sshd[2214]: Failed keyboard-interactive/pam for invalid user support from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: inval, user: "support", src: "198.51.100.23", port: 51234, method: "keyboard-interactive/pam", kind: att}},
		{"failed none", h3164 + "sshd[2214]: Failed none for invalid user ftpuser from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: inval, user: "ftpuser", src: "198.51.100.23", port: 51234, method: "none", kind: conn}},
		{"failed illegal user (old)", h3164 + "sshd[2214]: Failed password for illegal user test from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: inval, user: "test", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"accepted password", h3164 + "sshd[2310]: Accepted password for alice from 10.0.0.6 port 52010 ssh2",
			&want{svc: s, out: succ, user: "alice", src: "10.0.0.6", port: 52010, method: "password", kind: att}},
		{"accepted publickey with key", h3164 + "sshd[2301]: Accepted publickey for deploy from 2001:db8::10 port 52000 ssh2: ED25519 SHA256:qv9sOqD0hN7X2vA9Yw3cJm8F7l1nB2k4zQx6uR0tP5E",
			&want{svc: s, out: succ, user: "deploy", src: "2001:db8::10", port: 52000, method: "publickey", kind: att}},
		{"accepted keyboard-interactive", h3164 + "sshd[2301]: Accepted keyboard-interactive/pam for bob from 10.0.0.7 port 52001 ssh2",
			&want{svc: s, out: succ, user: "bob", src: "10.0.0.7", port: 52001, method: "keyboard-interactive/pam", kind: att}},
		{"accepted gssapi", h3164 + "sshd[2301]: Accepted gssapi-with-mic for bob from 10.0.0.7 port 52001 ssh2",
			&want{svc: s, out: succ, user: "bob", src: "10.0.0.7", port: 52001, method: "gssapi-with-mic", kind: att}},
		{"user not allowed", h3164 + "sshd[2301]: User root from 198.51.100.23 not allowed because not listed in AllowUsers",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", kind: conn}},
		{"root login refused", h3164 + "sshd[2301]: ROOT LOGIN REFUSED FROM 198.51.100.23 port 4000",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 4000, kind: conn}},
		{"sshd-session (9.8+)", h3164 + "sshd-session[2214]: Failed password for root from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"session opened", h3164 + "sshd[2301]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)", nil},
		{"server listening", h3164 + "sshd[800]: Server listening on 0.0.0.0 port 22.", nil},
		{"timeout before auth", h3164 + "sshd[800]: Timeout before authentication for 192.0.2.9 port 40000", nil},
		// addresses
		{"IPv6", h3164 + "sshd[1]: Failed password for root from 2001:db8:0:1::7 port 22 ssh2",
			&want{svc: s, out: fail, user: "root", src: "2001:db8:0:1::7", port: 22, method: "password", kind: att}},
		{"IPv4-mapped", h3164 + "sshd[1]: Failed password for root from ::ffff:203.0.113.9 port 22 ssh2",
			&want{svc: s, out: fail, user: "root", src: "203.0.113.9", port: 22, method: "password", kind: att}},
		{"IPv6 with zone", h3164 + "sshd[1]: Failed password for root from fe80::1%eth0 port 22 ssh2",
			&want{svc: s, out: fail, user: "root", src: "fe80::1", port: 22, method: "password", kind: att}},
		{"IPv6 invalid user", h3164 + "sshd[1]: Invalid user a from 2001:db8::1 port 22",
			&want{svc: s, out: inval, user: "a", src: "2001:db8::1", port: 22, kind: conn}},
		{"IPv6 connection closed", h3164 + "sshd[1]: Connection closed by invalid user a 2001:db8::1 port 22 [preauth]",
			&want{svc: s, out: inval, user: "a", src: "2001:db8::1", port: 22, kind: conn}},
		{"IPv6 received disconnect", h3164 + "sshd[1]: Received disconnect from 2001:db8::1 port 22:11: Bye Bye [preauth]",
			&want{svc: s, out: fail, src: "2001:db8::1", port: 22, kind: conn}},
		{"bad address", h3164 + "sshd[1]: Failed password for root from 203.0.113.999 port 22 ssh2", nil},
		{"bad port", h3164 + "sshd[1]: Failed password for root from 203.0.113.9 port 99999 ssh2", nil},
		// odd user names
		{"user with spaces", h3164 + "sshd[1]: Failed password for invalid user john smith from 203.0.113.9 port 22 ssh2",
			&want{svc: s, out: inval, user: "john smith", src: "203.0.113.9", port: 22, method: "password", kind: att}},
		{"empty invalid user", h3164 + "sshd[1]: Failed password for invalid user  from 203.0.113.9 port 22 ssh2",
			&want{svc: s, out: inval, user: "", src: "203.0.113.9", port: 22, method: "password", kind: att}},
		{"empty invalid user announced", h3164 + "sshd[1]: Invalid user  from 203.0.113.9 port 22",
			&want{svc: s, out: inval, user: "", src: "203.0.113.9", port: 22, kind: conn}},
		{"user named invalid user", h3164 + "sshd[1]: Failed password for invalid user invalid user from 203.0.113.9 port 22 ssh2",
			&want{svc: s, out: inval, user: "invalid user", src: "203.0.113.9", port: 22, method: "password", kind: att}},
		{"unicode user", h3164 + "sshd[1]: Invalid user пользователь from 203.0.113.9 port 22",
			&want{svc: s, out: inval, user: "пользователь", src: "203.0.113.9", port: 22, kind: conn}},
		{"user containing from", h3164 + "sshd[1]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 203.0.113.9 port 2222 ssh2",
			&want{svc: s, out: inval, user: "x from 6.6.6.6 port 22 ssh2", src: "203.0.113.9", port: 2222, method: "password", kind: att}},
		{"invalid user containing from, no port", h3164 + "sshd[1]: Invalid user a from 6.6.6.6 port 22 from 203.0.113.9",
			&want{svc: s, out: inval, user: "a from 6.6.6.6 port 22", src: "203.0.113.9", kind: conn}},
		{"closed by user containing an address", h3164 + "sshd[1]: Connection closed by invalid user x 6.6.6.6 port 1 203.0.113.9 port 2222 [preauth]",
			&want{svc: s, out: inval, user: "x 6.6.6.6 port 1", src: "203.0.113.9", port: 2222, kind: conn}},
		{"disconnecting with a user imitating the reason", h3164 + "sshd[1]: Disconnecting invalid user x 6.6.6.6 port 1: Too many authentication failures 203.0.113.9 port 2222: Too many authentication failures [preauth]",
			&want{svc: s, out: block, user: "x 6.6.6.6 port 1: Too many authentication failures", src: "203.0.113.9", port: 2222, kind: conn}},
		{"user not allowed imitating", h3164 + "sshd[1]: User x from 6.6.6.6 not allowed because y from 203.0.113.9 not allowed because not listed in AllowUsers",
			&want{svc: s, out: fail, user: "x from 6.6.6.6 not allowed because y", src: "203.0.113.9", kind: conn}},
		{"invalid UTF-8 user", h3164 + "sshd[1]: Invalid user \xff\xfe from 203.0.113.9 port 22",
			&want{svc: s, out: inval, user: "\xff\xfe", src: "203.0.113.9", port: 22, kind: conn}},
		// headers
		{"RFC 3339 (Debian 12 rsyslog)", "2026-12-04T20:01:04.345678+00:00 db-01 sshd[2211]: Failed password for root from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"RFC 5424", "<38>1 2026-12-04T20:01:04.345Z db-01 sshd 2211 - - Failed password for root from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"RFC 5424 with structured data", `<38>1 2026-12-04T20:01:04.345Z db-01 sshd 2211 ID47 [exampleSDID@32473 iut="3" eventSource="App\]x"] Failed password for root from 198.51.100.23 port 51234 ssh2`,
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"RFC 3164 with PRI", "<38>" + h3164 + "sshd[1]: Failed password for root from 198.51.100.23 port 51234 ssh2",
			&want{svc: s, out: fail, user: "root", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"other program", h3164 + "CRON[3344]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", nil},
		{"kernel", h3164 + "kernel: [12345.678] Failed password for root from 1.2.3.4 port 22 ssh2", nil},
		{"program imitating sshd", h3164 + "sshdx[1]: Failed password for root from 1.2.3.4 port 22 ssh2", nil},
		{"garbage", "this is not a log line at all, Failed password for root from 1.2.3.4 port 22 ssh2", nil},
		{"short", "Dec  4", nil},
		{"bad month", "Foo  4 20:01:02 web-01 sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", nil},
		{"bad time", "Dec  4 25:01:02 web-01 sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", nil},
	})
}

func TestParseServices(t *testing.T) {
	runLineCases(t, []lineCase{
		// vsftpd
		{"vsftpd fail", h3164 + `vsftpd[1201]: [alice] FAIL LOGIN: Client "::ffff:198.51.100.23"`,
			&want{svc: "vsftpd", out: fail, user: "alice", src: "198.51.100.23", method: "password", kind: att}},
		{"vsftpd pid fail", h3164 + `vsftpd[1201]: [pid 1202] [bob] FAIL LOGIN: Client "198.51.100.23"`,
			&want{svc: "vsftpd", out: fail, user: "bob", src: "198.51.100.23", method: "password", kind: att}},
		{"vsftpd ok", h3164 + `vsftpd[1201]: [alice] OK LOGIN: Client "::ffff:10.0.0.6"`,
			&want{svc: "vsftpd", out: succ, user: "alice", src: "10.0.0.6", method: "password"}},
		{"vsftpd anonymous password imitating a failure", h3164 + `vsftpd[1201]: [ftp] OK LOGIN: Client "10.0.0.6", anon password "x] FAIL LOGIN: Client "6.6.6.6"`,
			&want{svc: "vsftpd", out: succ, user: "ftp", src: "10.0.0.6", method: "password"}},
		{"vsftpd user imitating a failure", h3164 + `vsftpd[1201]: [x] FAIL LOGIN: Client "6.6.6.6] FAIL LOGIN: Client "198.51.100.23"`,
			&want{svc: "vsftpd", out: fail, user: `x] FAIL LOGIN: Client "6.6.6.6`, src: "198.51.100.23", method: "password", kind: att}},
		{"vsftpd own log", `Sat Dec  4 20:01:02 2026 [pid 1202] [bob] FAIL LOGIN: Client "::ffff:198.51.100.23"`,
			&want{svc: "vsftpd", out: fail, user: "bob", src: "198.51.100.23", method: "password", kind: att}},
		{"vsftpd connect", h3164 + `vsftpd[1201]: [pid 1202] CONNECT: Client "::ffff:198.51.100.23"`, nil},
		{"vsftpd pam", h3164 + `vsftpd[1201]: pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=bob rhost=::ffff:198.51.100.23`, nil},
		// ProFTPD
		{"proftpd login failed", h3164 + "proftpd[3310]: ftp.example.com (198.51.100.23[198.51.100.23]) - USER alice (Login failed): Incorrect password",
			&want{svc: "proftpd", out: fail, user: "alice", src: "198.51.100.23", method: "password", kind: att}},
		{"proftpd no such user", h3164 + "proftpd[3310]: ftp.example.com (scan.example.net[198.51.100.23]) - USER nobody1: no such user found from scan.example.net [198.51.100.23] to 10.0.0.1:21",
			&want{svc: "proftpd", out: inval, user: "nobody1", src: "198.51.100.23", method: "password", kind: att}},
		{"proftpd success", h3164 + "proftpd[3310]: ftp.example.com (10.0.0.6[10.0.0.6]) - USER alice: Login successful.",
			&want{svc: "proftpd", out: succ, user: "alice", src: "10.0.0.6"}},
		{"proftpd max attempts", h3164 + "proftpd[3310]: ftp.example.com (198.51.100.23[198.51.100.23]) - Maximum login attempts (3) exceeded, connection refused",
			&want{svc: "proftpd", out: block, src: "198.51.100.23", kind: conn}},
		{"proftpd IPv6", h3164 + "proftpd[3310]: ftp.example.com (2001:db8::5[2001:db8::5]) - USER root (Login failed): Incorrect password",
			&want{svc: "proftpd", out: fail, user: "root", src: "2001:db8::5", method: "password", kind: att}},
		{"proftpd own log", "2026-12-04 20:01:02,123 ftp proftpd[3310] ftp.example.com (198.51.100.23[198.51.100.23]): USER admin (Login failed): Incorrect password",
			&want{svc: "proftpd", out: fail, user: "admin", src: "198.51.100.23", method: "password", kind: att}},
		{"proftpd user imitating", h3164 + "proftpd[3310]: ftp.example.com (198.51.100.23[198.51.100.23]) - USER x (6.6.6.6[6.6.6.6]) - USER y (Login failed): Incorrect password",
			&want{svc: "proftpd", out: fail, user: "x (6.6.6.6[6.6.6.6]) - USER y", src: "198.51.100.23", method: "password", kind: att}},
		// MySQL / MariaDB
		{"mysql 8 error log", "2026-12-04T20:01:02.123456Z 12 [Note] [MY-010926] [Server] Access denied for user 'root'@'198.51.100.23' (using password: YES)",
			&want{svc: "mysql", out: fail, user: "root", src: "198.51.100.23", method: "password", kind: att}},
		{"mysql 5.7 error log", "2026-12-04T20:01:02.123456Z 12 [Note] Access denied for user 'admin'@'198.51.100.23' (using password: NO)",
			&want{svc: "mysql", out: fail, user: "admin", src: "198.51.100.23", method: "password", kind: att}},
		{"mariadb error log", "2026-12-04 20:01:02 12 [Warning] Access denied for user 'root'@'198.51.100.23' (using password: YES)",
			&want{svc: "mysql", out: fail, user: "root", src: "198.51.100.23", method: "password", kind: att}},
		{"mariadb syslog", h3164 + "mariadbd[901]: 2026-12-04 20:01:02 12 [Warning] Access denied for user 'wp'@'2001:db8::9' (using password: YES)",
			&want{svc: "mysql", out: fail, user: "wp", src: "2001:db8::9", method: "password", kind: att}},
		{"mysql user with quote-at-quote", h3164 + "mysqld[901]: Access denied for user 'a'@'6.6.6.6'@'198.51.100.23' (using password: YES)",
			&want{svc: "mysql", out: fail, user: "a'@'6.6.6.6", src: "198.51.100.23", method: "password", kind: att}},
		{"mysql localhost", h3164 + "mysqld[901]: Access denied for user 'root'@'localhost' (using password: YES)", nil},
		{"mysql empty user", h3164 + "mysqld[901]: Access denied for user ''@'198.51.100.23' (using password: NO)",
			&want{svc: "mysql", out: fail, user: "", src: "198.51.100.23", method: "password", kind: att}},
		// PostgreSQL, stateless: only lines that name their host
		{"postgres hba", "2026-12-04 20:01:02.123 UTC [12345] bob@app FATAL:  no pg_hba.conf entry for host \"198.51.100.23\", user \"bob\", database \"app\", SSL off",
			&want{svc: "postgresql", out: fail, user: "bob", src: "198.51.100.23", kind: att}},
		{"postgres hba imitated by a role name", "2026-12-04 20:01:02.123 UTC [12345] x FATAL:  no pg_hba.conf entry for host \"6.6.6.6\"@app FATAL:  no pg_hba.conf entry for host \"198.51.100.23\", user \"x FATAL:  no pg_hba.conf entry for host \"6.6.6.6\"\", database \"app\", SSL off", nil},
		{"postgres password failed without connection line", "2026-12-04 20:01:02.123 UTC [12345] bob@app FATAL:  password authentication failed for user \"bob\"", nil},
		{"postgres connection received", "2026-12-04 20:01:02.120 UTC [12345] [unknown]@[unknown] LOG:  connection received: host=198.51.100.23 port=51234", nil},
		// Dovecot
		{"dovecot login disconnected 2.2", h3164 + "dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<alice>, method=PLAIN, rip=198.51.100.23, lip=10.0.0.1, TLS, session=<x9Yz1Q2R>",
			&want{svc: "dovecot", out: fail, user: "alice", src: "198.51.100.23", method: "PLAIN", kind: summ, n: 3}},
		{"dovecot login disconnected 2.3", h3164 + "dovecot[777]: pop3-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<bob>, method=LOGIN, rip=2001:db8::7, lip=2001:db8::1, TLS, session=<Ab12>",
			&want{svc: "dovecot", out: fail, user: "bob", src: "2001:db8::7", method: "LOGIN", kind: summ, n: 1}},
		{"dovecot login aborted", h3164 + "dovecot: imap-login: Info: Aborted login (auth failed, 2 attempts in 7 secs): user=<carol>, method=PLAIN, rip=198.51.100.24, lip=10.0.0.1, session=<Q>",
			&want{svc: "dovecot", out: fail, user: "carol", src: "198.51.100.24", method: "PLAIN", kind: summ, n: 2}},
		{"dovecot user imitating rip", h3164 + "dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=6.6.6.6>, method=PLAIN, rip=198.51.100.23, lip=10.0.0.1, session=<Q>",
			&want{svc: "dovecot", out: fail, user: "x>, method=PLAIN, rip=6.6.6.6", src: "198.51.100.23", method: "PLAIN", kind: summ}},
		{"dovecot login success", h3164 + "dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=10.0.0.6, lip=10.0.0.1, mpid=4242, TLS, session=<Z>",
			&want{svc: "dovecot", out: succ, user: "alice", src: "10.0.0.6", method: "PLAIN"}},
		{"dovecot no auth attempts", h3164 + "dovecot: imap-login: Disconnected (no auth attempts in 0 secs): user=<>, rip=198.51.100.23, lip=10.0.0.1, session=<Z>", nil},
		{"dovecot pam failed", h3164 + "dovecot: auth-worker(4321): pam(alice,198.51.100.23,<x9Yz1Q2R>): pam_authenticate() failed: Authentication failure (password mismatch?)",
			&want{svc: "dovecot", out: fail, user: "alice", src: "198.51.100.23", kind: att}},
		{"dovecot pam unknown user", h3164 + "dovecot: auth-worker(4321): pam(zz,198.51.100.23,<x9Yz1Q2R>): pam_authenticate() failed: User not known to the underlying authentication module: 1 Time(s)",
			&want{svc: "dovecot", out: inval, user: "zz", src: "198.51.100.23", kind: att}},
		{"dovecot passwd-file mismatch", h3164 + "dovecot: auth: passwd-file(bob@example.com,198.51.100.23): Password mismatch",
			&want{svc: "dovecot", out: fail, user: "bob@example.com", src: "198.51.100.23", kind: att}},
		{"dovecot sql unknown user", h3164 + "dovecot: auth: Info: sql(ghost,2001:db8::3,<s>): unknown user",
			&want{svc: "dovecot", out: inval, user: "ghost", src: "2001:db8::3", kind: att}},
		{"dovecot user with commas", h3164 + "dovecot: auth: passwd-file(a,6.6.6.6,198.51.100.23): Password mismatch",
			&want{svc: "dovecot", out: fail, user: "a,6.6.6.6", src: "198.51.100.23", kind: att}},
		{"dovecot pam_unix", h3164 + "auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=alice rhost=198.51.100.23  user=alice", nil},
		// Postfix
		{"postfix sasl", h3164 + "postfix/smtpd[5511]: warning: unknown[198.51.100.23]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
			&want{svc: "postfix", out: fail, src: "198.51.100.23", method: "LOGIN", kind: att}},
		{"postfix sasl with user", h3164 + "postfix/submission/smtpd[5511]: warning: mail.example.net[2001:db8::44]: SASL PLAIN authentication failed: authentication failure, sasl_username=info@example.com",
			&want{svc: "postfix", out: fail, user: "info@example.com", src: "2001:db8::44", method: "PLAIN", kind: att}},
		{"postfix sasl success", h3164 + "postfix/smtps/smtpd[5511]: 4F2A1C0D2A: client=unknown[10.0.0.6], sasl_method=PLAIN, sasl_username=alice@example.com",
			&want{svc: "postfix", out: succ, user: "alice@example.com", src: "10.0.0.6", method: "PLAIN"}},
		{"postfix connect", h3164 + "postfix/smtpd[5511]: connect from unknown[198.51.100.23]", nil},
		{"postfix qmgr", h3164 + "postfix/qmgr[900]: 4F2A1C0D2A: from=<a@example.com>, size=1234, nrcpt=1 (queue active)", nil},
		// su
		{"su failed util-linux", h3164 + "su[4100]: FAILED SU (to root) alice on pts/0",
			&want{svc: "su", out: fail, user: "root", method: "", kind: summ, by: "alice", tty: "pts/0"}},
		{"su pam", h3164 + "su[4100]: pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root",
			&want{svc: "su", out: fail, user: "root", kind: att, by: "alice", tty: "pts/0"}},
		{"su-l pam", h3164 + "su[4100]: pam_unix(su-l:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/3 ruser=alice rhost=  user=postgres",
			&want{svc: "su", out: fail, user: "postgres", kind: att, by: "alice", tty: "pts/3"}},
		{"su success", h3164 + "su[4101]: (to root) alice on pts/0",
			&want{svc: "su", out: succ, user: "root", by: "alice", tty: "pts/0"}},
		{"su shadow failed", h3164 + "su[4101]: FAILED su for root by alice",
			&want{svc: "su", out: fail, user: "root", kind: summ, by: "alice"}},
		{"su shadow success", h3164 + "su[4101]: Successful su for root by alice",
			&want{svc: "su", out: succ, user: "root", by: "alice"}},
		{"su session", h3164 + "su[4101]: pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)", nil},
		// sudo
		{"sudo pam", h3164 + "sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice",
			&want{svc: "sudo", out: fail, user: "alice", method: "password", kind: att, by: "alice", tty: "pts/0"}},
		{"sudo incorrect attempts", h3164 + "sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
			&want{svc: "sudo", out: fail, user: "root", method: "password", kind: summ, n: 3, by: "alice", tty: "pts/0"}},
		{"sudo one incorrect attempt", h3164 + "sudo[7001]:    alice : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update",
			&want{svc: "sudo", out: fail, user: "root", method: "password", kind: summ, n: 1, by: "alice", tty: "pts/1"}},
		{"sudo success", h3164 + "sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
			&want{svc: "sudo", out: succ, user: "root", by: "alice", tty: "pts/0"}},
		{"sudo not in sudoers", h3164 + "sudo:      bob : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash", nil},
		{"sudo session", h3164 + "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)", nil},
	})
}

// TestParsePostgresJoin follows one backend: the connection line gives the address, the failure
// the user, across the PostgreSQL log's own format and syslog.
func TestParsePostgresJoin(t *testing.T) {
	p := bf.Parser{Year: 2026}
	lines := []struct {
		line string
		want *want
	}{
		{"2026-12-04 20:01:02.120 UTC [12345] [unknown]@[unknown] LOG:  connection received: host=198.51.100.23 port=51234", nil},
		{"2026-12-04 20:01:02.121 UTC [12346] [unknown]@[unknown] LOG:  connection received: host=10.0.0.6 port=40000", nil},
		{"2026-12-04 20:01:02.123 UTC [12345] bob@app FATAL:  password authentication failed for user \"bob\"",
			&want{svc: "postgresql", out: fail, user: "bob", src: "198.51.100.23", port: 51234, method: "password", kind: att}},
		{"2026-12-04 20:01:02.124 UTC [12345] bob@app DETAIL:  Connection matched pg_hba.conf line 99: \"host all all 0.0.0.0/0 scram-sha-256\"", nil},
		{"2026-12-04 20:01:02.125 UTC [12346] alice@app LOG:  connection authorized: user=alice database=app application_name=psql",
			&want{svc: "postgresql", out: succ, user: "alice", src: "10.0.0.6", port: 40000}},
		// the same backend again: the address was used up
		{"2026-12-04 20:01:02.126 UTC [12345] bob@app FATAL:  password authentication failed for user \"bob\"", nil},
		// the Debian prefix before PostgreSQL 10: "%t [%p-%l] %q%u@%d "
		{"2026-12-04 20:01:03 CET [4242-1] [unknown]@[unknown] LOG:  connection received: host=2001:db8::8 port=50000", nil},
		{"2026-12-04 20:01:03 CET [4242-2] ghost@app FATAL:  role \"ghost\" does not exist",
			&want{svc: "postgresql", out: inval, user: "ghost", src: "2001:db8::8", port: 50000, kind: att}},
		// syslog
		{"Dec  4 20:01:04 db-01 postgres[5151]: [2-1] LOG:  connection received: host=198.51.100.30 port=1234", nil},
		{"Dec  4 20:01:04 db-01 postgres[5151]: [3-1] FATAL:  password authentication failed for user \"postgres\"",
			&want{svc: "postgresql", out: fail, user: "postgres", src: "198.51.100.30", port: 1234, method: "password", kind: att}},
		// a role name imitating a connection line cannot plant an address
		{"2026-12-04 20:01:05.000 UTC [777] x LOG:  connection received: host=6.6.6.6 port=1@app DETAIL:  Connection matched pg_hba.conf line 99", nil},
		{"2026-12-04 20:01:05.001 UTC [777] x@app FATAL:  password authentication failed for user \"x\"", nil},
		{"2026-12-04 20:01:05.002 UTC [778] [unknown]@[unknown] LOG:  connection received: host=[local]", nil},
	}
	for _, l := range lines {
		e, ok := p.ParseLine([]byte(l.line))
		if l.want == nil {
			if ok {
				t.Errorf("accepted %q as %+v", l.line, e)
			}
			continue
		}
		if !ok {
			t.Errorf("rejected %q", l.line)
			continue
		}
		checkEvent(t, e, l.want, l.line)
	}
	// journald: the PID comes with the entry
	if _, ok := p.ParseMessage("postgres", 6000, "[2-1] LOG:  connection received: host=198.51.100.31 port=99", time.Unix(0, 0)); ok {
		t.Error("connection line accepted")
	}
	e, ok := p.ParseMessage("postgres", 6000, "[3-1] FATAL:  password authentication failed for user \"app\"", time.Unix(0, 0))
	if !ok || e.Source != netip.MustParseAddr("198.51.100.31") || e.User != "app" {
		t.Errorf("journal failure = %+v, %v", e, ok)
	}
}

func TestParseTimes(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	cases := []struct {
		line string
		loc  *time.Location
		want time.Time
	}{
		{h3164 + "sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", time.UTC, time.Date(2026, 12, 4, 20, 1, 2, 0, time.UTC)},
		{"Dec 04 20:01:02 web-01 sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", time.UTC, time.Date(2026, 12, 4, 20, 1, 2, 0, time.UTC)},
		{"Jul 14 08:00:00 web-01 sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", berlin, time.Date(2026, 7, 14, 6, 0, 0, 0, time.UTC)},
		{"2026-12-04T20:01:02.123456+00:00 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", berlin, time.Date(2026, 12, 4, 20, 1, 2, 123456000, time.UTC)},
		{"2026-12-04T21:01:02.5+01:00 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", time.UTC, time.Date(2026, 12, 4, 20, 1, 2, 500000000, time.UTC)},
		{"2026-12-04T15:01:02-0500 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", time.UTC, time.Date(2026, 12, 4, 20, 1, 2, 0, time.UTC)},
		{"2026-12-04T20:01:02Z h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", berlin, time.Date(2026, 12, 4, 20, 1, 2, 0, time.UTC)},
		{"2026-12-04T20:01:02 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", berlin, time.Date(2026, 12, 4, 19, 1, 2, 0, time.UTC)},
		{"2026-12-04 20:01:02.123 UTC [1] a@b FATAL:  no pg_hba.conf entry for host \"1.2.3.4\", user \"a\", database \"b\", SSL off", berlin, time.Date(2026, 12, 4, 20, 1, 2, 123000000, time.UTC)},
		{"2026-12-04 20:01:02 12 [Warning] Access denied for user 'root'@'1.2.3.4' (using password: YES)", berlin, time.Date(2026, 12, 4, 19, 1, 2, 0, time.UTC)},
		{`Sat Dec  4 20:01:02 2021 [pid 1202] [bob] FAIL LOGIN: Client "1.2.3.4"`, time.UTC, time.Date(2021, 12, 4, 20, 1, 2, 0, time.UTC)},
	}
	for _, c := range cases {
		e, ok := bf.ParseLine([]byte(c.line), 2026, c.loc)
		if !ok || !e.Time.Equal(c.want) {
			t.Errorf("%q: time %v (ok %v), want %v", c.line, e.Time, ok, c.want)
		}
	}
	// Parser rolls the year over at New Year.
	p := bf.Parser{Year: 2025, Location: time.UTC}
	for _, l := range []struct {
		line string
		year int
	}{
		{"Dec 31 23:59:59 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", 2025},
		{"Jan  1 00:00:01 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", 2026},
		{"Jan  1 00:00:02 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2", 2026},
	} {
		e, ok := p.ParseLine([]byte(l.line))
		if !ok || e.Time.Year() != l.year {
			t.Errorf("%q: year %d, want %d", l.line, e.Time.Year(), l.year)
		}
	}
}

func TestParseMessage(t *testing.T) {
	at := time.Date(2026, 12, 4, 20, 1, 2, 0, time.UTC)
	cases := []struct {
		prog, msg string
		want      *want
	}{
		{"sshd", "Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2",
			&want{svc: "sshd", out: inval, user: "admin", src: "203.0.113.7", port: 40022, method: "password", kind: att}},
		{"sshd-session", "Connection closed by authenticating user root 2001:db8::1 port 22 [preauth]",
			&want{svc: "sshd", out: fail, user: "root", src: "2001:db8::1", port: 22, kind: conn}},
		{"mariadbd", "2026-12-04 20:01:02 12 [Warning] Access denied for user 'root'@'198.51.100.23' (using password: YES)",
			&want{svc: "mysql", out: fail, user: "root", src: "198.51.100.23", method: "password", kind: att}},
		{"sudo", "   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
			&want{svc: "sudo", out: fail, user: "root", method: "password", kind: summ, n: 3, by: "alice", tty: "pts/0"}},
		{"systemd", "Started Session 1 of User alice.", nil},
		{"sshd", "Server listening on :: port 22.", nil},
		{strings.Repeat("x", 100), "Failed password for root from 1.2.3.4 port 22 ssh2", nil},
	}
	for _, c := range cases {
		e, ok := bf.ParseMessage(c.prog, c.msg, at)
		if c.want == nil {
			if ok {
				t.Errorf("%s: accepted %q", c.prog, c.msg)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: rejected %q", c.prog, c.msg)
			continue
		}
		checkEvent(t, e, c.want, c.msg)
		if !e.Time.Equal(at) || e.Line != c.prog+": "+c.msg {
			t.Errorf("time %v line %q", e.Time, e.Line)
		}
	}
}

// TestParseRejectsWithoutAllocating: lines of other programs, and lines of known programs that
// say nothing about authentication, cost no allocation.
func TestParseRejectsWithoutAllocating(t *testing.T) {
	lines := [][]byte{
		[]byte(h3164 + "CRON[3344]: pam_unix(cron:session): session closed for user root"),
		[]byte(h3164 + "systemd[1]: Started Session 42 of User alice."),
		[]byte(h3164 + "kernel: [UFW BLOCK] IN=eth0 OUT= MAC=... SRC=198.51.100.23 DST=10.0.0.1"),
		[]byte(h3164 + "sshd[2301]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
		[]byte(h3164 + "sshd[2301]: Received disconnect from 10.0.0.6 port 52010:11: disconnected by user"),
		[]byte("2026-12-04T20:01:02.123456+00:00 db-01 systemd-logind[500]: New session 7 of user alice."),
	}
	var p bf.Parser
	allocs := testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			if _, ok := p.ParseLine(l); ok {
				t.Fatalf("accepted %q", l)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			bf.ParseLine(l, 2026, time.UTC)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseLine: %v allocations per run, want 0", allocs)
	}
	match := []byte(h3164 + "sshd[1]: Failed password for invalid user admin from 203.0.113.7 port 40022 ssh2")
	allocs = testing.AllocsPerRun(100, func() { p.ParseLine(match) })
	if allocs > 1 {
		t.Errorf("%v allocations per accepted line, want at most 1 (the Line string)", allocs)
	}
}

// TestParseAddrMatchesNetip compares the allocation-free address parser with net/netip on the
// address part of sshd lines.
func TestParseAddrMatchesNetip(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "255.255.255.255", "0.0.0.0", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3",
		"::", "::1", "2001:db8::1", "2001:DB8:0:0:0:0:0:1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
		"1::2::3", "12345::1", ":1", "1:", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "fe80::1%eth0",
		"fe80::1%", "g::1", "", "::ffff:256.1.1.1",
	} {
		line := h3164 + "sshd[1]: Failed password for root from " + s + " port 22 ssh2"
		e, ok := bf.ParseLine([]byte(line), 2026, time.UTC)
		want, err := netip.ParseAddr(s)
		if (err == nil) != ok {
			t.Errorf("%q: parsed %v, netip error %v", s, ok, err)
			continue
		}
		if ok && e.Source != want.WithZone("").Unmap() {
			t.Errorf("%q: %v, netip %v", s, e.Source, want)
		}
	}
}
