// Package gen writes synthetic, labelled authentication logs for testing and measuring the
// bruteforce engine: benign users who log in and sometimes mistype, background internet noise
// (bots that try a few passwords each and move on), other programs' lines, and attackers of each
// kind the engine reports — fast guessers, user enumerators, low-and-slow password sprayers of
// one account, guessers that then get in, and su guessers at a terminal — with the truth about
// who is who. It is deterministic for a seed. The lines imitate OpenSSH 7.4, 8.2, 8.9 and 9.2 and
// the other services' formats as the package's parser documents them; they are made up, not
// copied from any real log.
package gen

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// Flavor is the OpenSSH version and syslog format to imitate.
type Flavor string

const (
	OpenSSH74 Flavor = "7.4" // CentOS 7: no port on "Invalid user", RFC 3164
	OpenSSH82 Flavor = "8.2" // Ubuntu 20.04
	OpenSSH89 Flavor = "8.9" // Ubuntu 22.04
	OpenSSH92 Flavor = "9.2" // Debian 12: rsyslog's RFC 3339 timestamps
)

// Config says what to generate.
type Config struct {
	Lines  int    // exactly this many lines
	Seed   uint64 // same seed, same log
	Start  time.Time
	Flavor Flavor
	// SSHOnly limits the log to sshd plus other programs' noise (for comparing with sshd-only
	// tools); otherwise every service the parser knows appears.
	SSHOnly bool
}

// Kind is what an actor is.
type Kind string

const (
	Guesser    Kind = "guesser"    // one address, many passwords for one or two users
	Enumerator Kind = "enumerator" // one address, many users
	Sprayer    Kind = "sprayer"    // many addresses, one account, each a password or two
	Succeeder  Kind = "succeeder"  // a guesser that then logs in
	Local      Kind = "local"      // su guessing at a terminal
)

// Attacker is one labelled attacker.
type Attacker struct {
	Kind    Kind         `json:"kind"`
	Service string       `json:"service"`
	Sources []netip.Addr `json:"sources,omitempty"` // one, or a sprayer's many; none for Local
	User    string       `json:"user,omitempty"`    // the sprayed account; for Local "by@tty"
}

// Truth is who is who in a generated log.
type Truth struct {
	Attackers     []Attacker   `json:"attackers"`
	BenignSources []netip.Addr `json:"benign_sources"`
	BenignUsers   []string     `json:"benign_users"` // remote accounts of benign users and local sudo users ("by@tty")
	Bots          int          `json:"bots"`         // background addresses, neither attackers nor benign
	Start         time.Time    `json:"start"`
	End           time.Time    `json:"end"`
}

type item struct {
	t   int64 // Unix ms
	seq int32
	off int32
	n   int32
}

type g struct {
	cfg    Config
	rng    *rand.Rand
	arena  []byte
	items  []item
	used   map[netip.Addr]bool
	start  int64
	span   int64 // ms
	pid    int32
	truth  Truth
	budget int
}

// Generate writes cfg.Lines lines in time order to emit (the slice is reused: copy it to keep
// it) and returns the truth.
func Generate(cfg Config, emit func(line []byte)) Truth {
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Flavor == "" {
		cfg.Flavor = OpenSSH92
	}
	x := &g{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed)), used: map[netip.Addr]bool{},
		start: cfg.Start.UnixMilli(), pid: 1000, budget: cfg.Lines}
	x.span = max(int64(6*time.Hour/time.Millisecond), int64(cfg.Lines)*100) // ~10 lines/s
	x.arena = make([]byte, 0, cfg.Lines*72)
	x.items = make([]item, 0, cfg.Lines+1024)
	scale := max(float64(cfg.Lines)/1e6, 0.002)
	n := func(per1M int) int { return max(1, int(float64(per1M)*scale+0.5)) }

	x.benign(n(400))
	for range n(150) {
		x.guesser(false)
	}
	for range n(80) {
		x.enumerator()
	}
	for range n(12) {
		x.sprayer()
	}
	for range n(20) {
		x.guesser(true)
	}
	if !cfg.SSHOnly {
		for range n(10) {
			x.local()
		}
	}
	// Bots fill up to 70% of the lines (so that failures are most of an sshd log), noise the rest.
	for len(x.items) < cfg.Lines*70/100 {
		x.bot()
	}
	for len(x.items) < cfg.Lines {
		x.noise()
	}
	x.items = x.items[:cfg.Lines]
	slices.SortFunc(x.items, func(a, b item) int {
		if c := cmp.Compare(a.t, b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var buf []byte
	for _, it := range x.items {
		buf = x.header(buf[:0], it.t)
		buf = append(buf, x.arena[it.off:it.off+it.n]...)
		emit(buf)
	}
	x.truth.Start = cfg.Start
	x.truth.End = time.UnixMilli(x.start + x.span + int64(4*time.Hour/time.Millisecond)).UTC()
	return x.truth
}

func (x *g) header(b []byte, ms int64) []byte {
	t := time.UnixMilli(ms).UTC()
	if x.cfg.Flavor == OpenSSH92 {
		b = t.AppendFormat(b, "2006-01-02T15:04:05.000000-07:00")
	} else {
		b = t.AppendFormat(b, time.Stamp)
	}
	return append(b, " web-01 "...)
}

// add schedules one message (with its "prog[pid]: " already in it) at t.
func (x *g) add(t int64, format string, args ...any) {
	off := len(x.arena)
	x.arena = fmt.Appendf(x.arena, format, args...)
	x.items = append(x.items, item{t: t, seq: int32(len(x.items)), off: int32(off), n: int32(len(x.arena) - off)})
}

func (x *g) nextPID() int32 {
	x.pid++
	if x.pid > 4000000 {
		x.pid = 1000
	}
	return x.pid
}

func (x *g) ms(d time.Duration) int64 { return int64(d / time.Millisecond) }

func (x *g) between(lo, hi time.Duration) int64 {
	return x.ms(lo) + x.rng.Int64N(max(x.ms(hi)-x.ms(lo), 1))
}

// addr returns a fresh address: public-looking IPv4, or IPv6 one time in ten.
func (x *g) addr(v6share int) netip.Addr {
	for {
		var a netip.Addr
		if x.rng.IntN(100) < v6share {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			for i := 4; i < 16; i++ {
				b[i] = byte(x.rng.UintN(256))
			}
			a = netip.AddrFrom16(b)
		} else {
			b := [4]byte{byte(1 + x.rng.UintN(222)), byte(x.rng.UintN(256)), byte(x.rng.UintN(256)), byte(1 + x.rng.UintN(254))}
			if b[0] == 10 || b[0] == 127 || b[0] == 100 || b[0] == 172 || b[0] == 192 || b[0] == 169 {
				continue
			}
			a = netip.AddrFrom4(b)
		}
		if !x.used[a] {
			x.used[a] = true
			return a
		}
	}
}

func (x *g) port() int { return 1024 + x.rng.IntN(64000) }

func pick[T any](x *g, s []T) T { return s[x.rng.IntN(len(s))] }

var (
	botUsers = []string{"root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "ftpuser", "pi",
		"guest", "support", "administrator", "mysql", "hadoop", "jenkins", "www-data", "nagios", "minecraft", "ts3"}
	enumWords = []string{"alex", "backup", "bitrix", "centos", "dev", "docker", "elastic", "ftp", "gitlab", "info",
		"kafka", "mail", "odoo", "operator", "redis", "sales", "steam", "sysadmin", "tomcat", "vagrant", "web", "zabbix"}
	existing   = map[string]bool{"root": true, "postgres": true, "mysql": true, "www-data": true}
	otherSvcs  = []string{"vsftpd", "proftpd", "mysql", "postgresql", "dovecot", "postfix"}
	spraySvcs  = []string{"sshd", "sshd", "dovecot", "postfix"}
	firstNames = []string{"anna", "ben", "chloe", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jonas", "kofi",
		"lena", "marek", "nora", "oskar", "priya", "quentin", "rosa", "sven", "tomas", "uma", "vera", "wen", "yusuf", "zoe"}
)

// failAttempts writes one connection of k failed password attempts by user from src on svc at t
// and returns the time after it.
func (x *g) failAttempts(svc string, t int64, src netip.Addr, user string, invalid bool, k int) int64 {
	pid := x.nextPID()
	port := x.port()
	switch svc {
	case "sshd":
		return x.sshFail(t, pid, src, port, user, invalid, k)
	case "vsftpd":
		for range k {
			x.add(t, "vsftpd[%d]: [pid %d] CONNECT: Client \"%s\"", pid, pid+1, ftpClient(src))
			t += x.between(2*time.Second, 4*time.Second)
			x.add(t, "vsftpd[%d]: [pid %d] [%s] FAIL LOGIN: Client \"%s\"", pid, pid+1, user, ftpClient(src))
		}
	case "proftpd":
		for range k {
			if invalid {
				x.add(t, "proftpd[%d]: ftp.example.com (%s[%s]) - USER %s: no such user found from %s [%s] to 10.0.0.1:21", pid, src, src, user, src, src)
			} else {
				x.add(t, "proftpd[%d]: ftp.example.com (%s[%s]) - USER %s (Login failed): Incorrect password", pid, src, src, user)
			}
			t += x.between(time.Second, 3*time.Second)
		}
	case "mysql":
		for range k {
			x.add(t, "mysqld[%d]: %s 12 [Note] [MY-010926] [Server] Access denied for user '%s'@'%s' (using password: YES)",
				901, time.UnixMilli(t).UTC().Format("2006-01-02T15:04:05.000000Z"), user, src)
			t += x.between(200*time.Millisecond, 2*time.Second)
		}
	case "postgresql":
		for range k {
			p := x.nextPID()
			x.add(t, "postgres[%d]: [2-1] LOG:  connection received: host=%s port=%d", p, src, x.port())
			t += 20
			if invalid {
				x.add(t, "postgres[%d]: [3-1] FATAL:  role \"%s\" does not exist", p, user)
			} else {
				x.add(t, "postgres[%d]: [3-1] FATAL:  password authentication failed for user \"%s\"", p, user)
				x.add(t, "postgres[%d]: [3-2] DETAIL:  Connection matched pg_hba.conf line 99: \"host all all 0.0.0.0/0 scram-sha-256\"", p)
			}
			t += x.between(time.Second, 3*time.Second)
		}
	case "dovecot":
		t += x.between(2*time.Second, 6*time.Second) * int64(k)
		x.add(t, "dovecot: imap-login: Disconnected (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=10.0.0.1, TLS, session=<%08x>",
			k, 2*k, user, src, x.rng.Uint32())
	case "postfix":
		x.add(t, "postfix/submission/smtpd[%d]: connect from unknown[%s]", pid, src)
		for range k {
			t += x.between(time.Second, 3*time.Second)
			x.add(t, "postfix/submission/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: authentication failure, sasl_username=%s", pid, src, user)
		}
		x.add(t+50, "postfix/submission/smtpd[%d]: disconnect from unknown[%s] ehlo=1 auth=0/%d commands=1/%d", pid, src, k, k+1)
	}
	return t + 100
}

// sshFail writes one sshd connection with k failed passwords, as the flavor logs it.
func (x *g) sshFail(t int64, pid int32, src netip.Addr, port int, user string, invalid bool, k int) int64 {
	f := x.cfg.Flavor
	if invalid {
		if f == OpenSSH74 {
			x.add(t, "sshd[%d]: Invalid user %s from %s", pid, user, src)
			x.add(t, "sshd[%d]: input_userauth_request: invalid user %s [preauth]", pid, user)
		} else {
			x.add(t, "sshd[%d]: Invalid user %s from %s port %d", pid, user, src, port)
		}
	}
	inv := ""
	if invalid {
		inv = "invalid user "
	}
	for i := range k {
		t += x.between(300*time.Millisecond, 1500*time.Millisecond)
		if invalid {
			x.add(t, "sshd[%d]: pam_unix(sshd:auth): check pass; user unknown", pid)
			x.add(t, "sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s", pid, src)
		} else if i == 0 || f == OpenSSH74 {
			x.add(t, "sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", pid, src, user)
		}
		t += x.between(1500*time.Millisecond, 2500*time.Millisecond)
		x.add(t, "sshd[%d]: Failed password for %s%s from %s port %d ssh2", pid, inv, user, src, port)
	}
	t += 200
	switch {
	case k >= 6:
		x.add(t, "sshd[%d]: error: maximum authentication attempts exceeded for %s%s from %s port %d ssh2 [preauth]", pid, inv, user, src, port)
		if f == OpenSSH74 {
			x.add(t, "sshd[%d]: Disconnecting: Too many authentication failures for %s [preauth]", pid, user)
		} else {
			x.add(t, "sshd[%d]: Disconnecting %suser %s %s port %d: Too many authentication failures [preauth]", pid, authOrInvalid(invalid), user, src, port)
		}
	case f == OpenSSH74:
		x.add(t, "sshd[%d]: Received disconnect from %s port %d:11: Bye Bye [preauth]", pid, src, port)
		x.add(t, "sshd[%d]: Disconnected from %s port %d [preauth]", pid, src, port)
	case f == OpenSSH82 || x.rng.IntN(2) == 0:
		x.add(t, "sshd[%d]: Received disconnect from %s port %d:11: Bye Bye [preauth]", pid, src, port)
		x.add(t, "sshd[%d]: Disconnected from %suser %s %s port %d [preauth]", pid, authOrInvalid(invalid), user, src, port)
	default:
		x.add(t, "sshd[%d]: Connection closed by %suser %s %s port %d [preauth]", pid, authOrInvalid(invalid), user, src, port)
	}
	if k > 1 && !invalid {
		x.add(t, "sshd[%d]: PAM %d more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", pid, k-1, src, user)
	}
	return t + 100
}

// ftpClient is the client as vsftpd, listening on IPv6, writes it.
func ftpClient(a netip.Addr) string {
	if a.Is4() {
		return "::ffff:" + a.String()
	}
	return a.String()
}

func authOrInvalid(invalid bool) string {
	if invalid {
		return "invalid "
	}
	return "authenticating "
}

// success writes a successful login (and, for sshd, its session) and returns the time after it.
func (x *g) success(svc string, t int64, src netip.Addr, user string, typos int) int64 {
	pid := x.nextPID()
	port := x.port()
	switch svc {
	case "sshd":
		for i := range typos {
			t += x.between(2*time.Second, 5*time.Second)
			if i == 0 || x.cfg.Flavor == OpenSSH74 {
				x.add(t, "sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", pid, src, user)
			}
			t += 2000
			x.add(t, "sshd[%d]: Failed password for %s from %s port %d ssh2", pid, user, src, port)
		}
		t += x.between(time.Second, 4*time.Second)
		if typos == 0 && x.rng.IntN(2) == 0 {
			x.add(t, "sshd[%d]: Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%022x", pid, user, src, port, x.rng.Uint64())
		} else {
			x.add(t, "sshd[%d]: Accepted password for %s from %s port %d ssh2", pid, user, src, port)
		}
		x.add(t, "sshd[%d]: pam_unix(sshd:session): session opened for user %s(uid=1000) by (uid=0)", pid, user)
		end := t + x.between(time.Minute, 90*time.Minute)
		x.add(end, "sshd[%d]: Received disconnect from %s port %d:11: disconnected by user", pid, src, port)
		x.add(end, "sshd[%d]: Disconnected from user %s %s port %d", pid, user, src, port)
		x.add(end, "sshd[%d]: pam_unix(sshd:session): session closed for user %s", pid, user)
	case "vsftpd":
		for range typos {
			t += x.between(3*time.Second, 8*time.Second)
			x.add(t, "vsftpd[%d]: [pid %d] [%s] FAIL LOGIN: Client \"%s\"", pid, pid+1, user, ftpClient(src))
		}
		t += x.between(3*time.Second, 8*time.Second)
		x.add(t, "vsftpd[%d]: [pid %d] [%s] OK LOGIN: Client \"%s\"", pid, pid+1, user, ftpClient(src))
	case "proftpd":
		for range typos {
			t += x.between(3*time.Second, 8*time.Second)
			x.add(t, "proftpd[%d]: ftp.example.com (%s[%s]) - USER %s (Login failed): Incorrect password", pid, src, src, user)
		}
		t += x.between(3*time.Second, 8*time.Second)
		x.add(t, "proftpd[%d]: ftp.example.com (%s[%s]) - USER %s: Login successful.", pid, src, src, user)
	case "mysql":
		for range typos {
			t += x.between(3*time.Second, 8*time.Second)
			x.add(t, "mysqld[901]: %s 12 [Note] [MY-010926] [Server] Access denied for user '%s'@'%s' (using password: YES)",
				time.UnixMilli(t).UTC().Format("2006-01-02T15:04:05.000000Z"), user, src)
		}
		// MySQL does not log successful logins by default.
	case "postgresql":
		for range typos {
			t += x.between(3*time.Second, 8*time.Second)
			p := x.nextPID()
			x.add(t, "postgres[%d]: [2-1] LOG:  connection received: host=%s port=%d", p, src, x.port())
			x.add(t+10, "postgres[%d]: [3-1] FATAL:  password authentication failed for user \"%s\"", p, user)
		}
		t += x.between(3*time.Second, 8*time.Second)
		p := x.nextPID()
		x.add(t, "postgres[%d]: [2-1] LOG:  connection received: host=%s port=%d", p, src, x.port())
		x.add(t+10, "postgres[%d]: [3-1] LOG:  connection authorized: user=%s database=app application_name=psql", p, user)
	case "dovecot":
		if typos > 0 {
			t += x.between(3*time.Second, 8*time.Second)
			x.add(t, "dovecot: imap-login: Disconnected (auth failed, %d attempts in %d secs): user=<%s>, method=PLAIN, rip=%s, lip=10.0.0.1, TLS, session=<%08x>",
				typos, 3*typos, user, src, x.rng.Uint32())
		}
		t += x.between(3*time.Second, 8*time.Second)
		x.add(t, "dovecot: imap-login: Login: user=<%s>, method=PLAIN, rip=%s, lip=10.0.0.1, mpid=%d, TLS, session=<%08x>", user, src, pid, x.rng.Uint32())
	case "postfix":
		x.add(t, "postfix/submission/smtpd[%d]: connect from unknown[%s]", pid, src)
		for range typos {
			t += x.between(2*time.Second, 6*time.Second)
			x.add(t, "postfix/submission/smtpd[%d]: warning: unknown[%s]: SASL PLAIN authentication failed: authentication failure, sasl_username=%s", pid, src, user)
		}
		t += x.between(2*time.Second, 6*time.Second)
		x.add(t, "postfix/submission/smtpd[%d]: %010X: client=unknown[%s], sasl_method=PLAIN, sasl_username=%s", pid, x.rng.Uint64()&0xffffffffff, src, user)
	}
	return t + 100
}

func (x *g) service() string {
	if x.cfg.SSHOnly || x.rng.IntN(10) < 6 {
		return "sshd"
	}
	return pick(x, otherSvcs)
}

// benign writes n users who log in a few times a day from one or two addresses of their own,
// one login in eight after one or two typos, never more than that within an hour.
func (x *g) benign(n int) {
	for i := range n {
		user := fmt.Sprintf("%s.%s%d", pick(x, firstNames), string(rune('a'+x.rng.IntN(26))), i)
		svc := x.service()
		srcs := []netip.Addr{x.privateAddr()}
		if x.rng.IntN(3) == 0 {
			srcs = append(srcs, x.privateAddr())
		}
		x.truth.BenignUsers = append(x.truth.BenignUsers, user)
		x.truth.BenignSources = append(x.truth.BenignSources, srcs...)
		t := x.start + x.between(0, 2*time.Hour)
		for t < x.start+x.span {
			typos := 0
			if x.rng.IntN(8) == 0 {
				typos = 1 + x.rng.IntN(2)
			}
			x.success(svc, t, pick(x, srcs), user, typos)
			t += x.between(time.Hour, 6*time.Hour)
		}
	}
	if x.cfg.SSHOnly {
		return
	}
	// Local users who use sudo and sometimes mistype once.
	for i := range max(n/20, 1) {
		by, tty := fmt.Sprintf("%s%d", pick(x, firstNames), i), fmt.Sprintf("pts/%d", i)
		x.truth.BenignUsers = append(x.truth.BenignUsers, by+"@"+tty)
		for t := x.start + x.between(0, time.Hour); t < x.start+x.span; t += x.between(30*time.Minute, 4*time.Hour) {
			pid := x.nextPID()
			if x.rng.IntN(5) == 0 {
				x.add(t, "sudo[%d]: pam_unix(sudo:auth): authentication failure; logname=%s uid=1000 euid=0 tty=/dev/%s ruser=%s rhost=  user=%s", pid, by, tty, by, by)
				t += x.between(3*time.Second, 6*time.Second)
			}
			x.add(t, "sudo[%d]:   %s : TTY=%s ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx", pid, by, tty, by)
			x.add(t, "sudo[%d]: pam_unix(sudo:session): session opened for user root(uid=0) by %s(uid=1000)", pid, by)
		}
	}
}

func (x *g) privateAddr() netip.Addr {
	for {
		var a netip.Addr
		if x.rng.IntN(10) == 0 {
			a = netip.AddrFrom16([16]byte{0xfd, 0x00, 0xbe, 0xef, 14: byte(x.rng.UintN(256)), 15: byte(x.rng.UintN(256))})
		} else {
			a = netip.AddrFrom4([4]byte{10, byte(x.rng.UintN(256)), byte(x.rng.UintN(256)), byte(1 + x.rng.UintN(254))})
		}
		if !x.used[a] {
			x.used[a] = true
			return a
		}
	}
}

// guesser: 20-300 passwords for one or two users, several per connection on sshd; a succeeder
// then logs in.
func (x *g) guesser(succeed bool) {
	svc := x.service()
	src := x.addr(10)
	users := []string{pick(x, []string{"root", "admin", "postgres", "ubuntu"})}
	if x.rng.IntN(3) == 0 {
		users = append(users, "root")
	}
	total := 20 + x.rng.IntN(280)
	if succeed {
		total = 8 + x.rng.IntN(40)
	}
	t := x.start + x.between(0, time.Duration(x.span)*time.Millisecond-3*time.Hour)
	for done := 0; done < total; {
		k := 1
		if svc == "sshd" || svc == "dovecot" || svc == "postfix" {
			k = 1 + x.rng.IntN(6)
		}
		user := pick(x, users)
		t = x.failAttempts(svc, t, src, user, svc == "sshd" && !existing[user], k)
		t += x.between(500*time.Millisecond, 8*time.Second)
		done += k
	}
	kind := Guesser
	if succeed {
		kind = Succeeder
		user := users[0]
		if svc == "mysql" || !existing[user] && svc == "sshd" { // needs a login the service logs, for an account that exists
			svc, user = "sshd", "root"
		}
		x.success(svc, t+x.between(time.Minute, 20*time.Minute), src, user, 0)
	}
	x.truth.Attackers = append(x.truth.Attackers, Attacker{Kind: kind, Service: svc, Sources: []netip.Addr{src}})
}

// enumerator: 10-80 distinct users, one or two passwords each.
func (x *g) enumerator() {
	svc := x.service()
	src := x.addr(10)
	t := x.start + x.between(0, time.Duration(x.span)*time.Millisecond-3*time.Hour)
	n := 10 + x.rng.IntN(70)
	for i := range n {
		user := fmt.Sprintf("%s%d", pick(x, enumWords), i)
		t = x.failAttempts(svc, t, src, user, true, 1+x.rng.IntN(2))
		t += x.between(2*time.Second, 20*time.Second)
	}
	x.truth.Attackers = append(x.truth.Attackers, Attacker{Kind: Enumerator, Service: svc, Sources: []netip.Addr{src}})
}

// sprayer: 25-60 addresses, each one or two passwords (the second hours later) for one account
// over two to three hours, so that each hour sees at least 10 of them.
func (x *g) sprayer() {
	svc := pick(x, spraySvcs)
	if x.cfg.SSHOnly {
		svc = "sshd"
	}
	account := fmt.Sprintf("%s.%s", pick(x, firstNames), pick(x, []string{"ops", "backup", "finance", "hr", "it"}))
	n := 25 + x.rng.IntN(36)
	dur := x.between(2*time.Hour, 3*time.Hour)
	begin := x.start + x.between(0, time.Duration(x.span)*time.Millisecond-4*time.Hour)
	a := Attacker{Kind: Sprayer, Service: svc, User: account}
	for i := range n {
		src := x.addr(10)
		a.Sources = append(a.Sources, src)
		t := begin + dur*int64(i)/int64(n) + x.rng.Int64N(60000)
		x.failAttempts(svc, t, src, account, false, 1)
		if x.rng.IntN(4) == 0 {
			x.failAttempts(svc, t+x.between(90*time.Minute, 2*time.Hour), src, account, false, 1)
		}
	}
	x.truth.Attackers = append(x.truth.Attackers, Attacker{Kind: a.Kind, Service: a.Service, Sources: a.Sources, User: a.User})
}

// local: a user at a terminal trying su to root 6-15 times within minutes.
func (x *g) local() {
	by := fmt.Sprintf("intern%d", x.rng.IntN(1000))
	tty := fmt.Sprintf("pts/%d", 50+len(x.truth.Attackers)%40)
	t := x.start + x.between(0, time.Duration(x.span)*time.Millisecond-time.Hour)
	for range 6 + x.rng.IntN(10) {
		pid := x.nextPID()
		x.add(t, "su[%d]: pam_unix(su:auth): authentication failure; logname=%s uid=1003 euid=0 tty=/dev/%s ruser=%s rhost=  user=root", pid, by, tty, by)
		x.add(t+2500, "su[%d]: FAILED SU (to root) %s on %s", pid, by, tty)
		t += x.between(5*time.Second, 40*time.Second)
	}
	x.truth.Attackers = append(x.truth.Attackers, Attacker{Kind: Local, Service: "su", User: by + "@" + tty})
}

// bot: background noise from one address: a probe, or one to three passwords for common users,
// rarely more than one connection, all below every threshold.
func (x *g) bot() {
	src := x.addr(8)
	x.truth.Bots++
	t := x.start + x.between(0, time.Duration(x.span)*time.Millisecond)
	svc := "sshd"
	if !x.cfg.SSHOnly && x.rng.IntN(5) == 0 {
		svc = pick(x, otherSvcs)
	}
	if svc == "sshd" && x.rng.IntN(6) == 0 {
		pid, port := x.nextPID(), x.port()
		switch x.rng.IntN(3) {
		case 0:
			x.add(t, "sshd[%d]: Did not receive identification string from %s port %d", pid, src, port)
		case 1:
			x.add(t, "sshd[%d]: Unable to negotiate with %s port %d: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1,diffie-hellman-group14-sha1 [preauth]", pid, src, port)
		default:
			x.add(t, "sshd[%d]: Connection closed by %s port %d [preauth]", pid, src, port)
		}
		return
	}
	for c := range 1 + x.rng.IntN(2) {
		user := pick(x, botUsers)
		k := 1
		if c == 0 && x.rng.IntN(3) == 0 {
			k = 2
		}
		t = x.failAttempts(svc, t, src, user, !existing[user], k)
		t += x.between(5*time.Second, 40*time.Second)
	}
}

var noiseLines = []string{
	"CRON[%d]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
	"CRON[%d]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
	"CRON[%d]: pam_unix(cron:session): session closed for user root",
	"systemd[%d]: Started session-1234.scope - Session 1234 of User deploy.",
	"systemd-logind[%d]: New session 1234 of user deploy.",
	"systemd[%d]: logrotate.service: Deactivated successfully.",
	"kernel: [%d.123456] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=203.0.113.200 DST=10.0.0.1 LEN=44 TTL=241 ID=54321 PROTO=TCP SPT=45000 DPT=3389 WINDOW=1024 RES=0x00 SYN URGP=0",
	"postfix/qmgr[%d]: 4F2A1C0D2A: from=<root@web-01.example.com>, size=1234, nrcpt=1 (queue active)",
	"postfix/smtp[%d]: 4F2A1C0D2A: to=<ops@example.com>, relay=mx.example.com[198.51.100.25]:25, delay=0.4, delays=0.01/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
	"dovecot: imap(anna.k1)<%d><x9Yz1Q2R>: Logged out in=123 out=4567 deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
	"sshd[%d]: Server listening on 0.0.0.0 port 22.",
	"sshd[%d]: pam_unix(sshd:session): session closed for user deploy",
	"sshd[%d]: Received disconnect from 10.0.0.5 port 50022:11: disconnected by user",
	"named[%d]: client @0x7f8b2c0e1a00 10.0.0.9#53211 (example.com): query: example.com IN A +E(0)K (10.0.0.1)",
	"nginx[%d]: 2026/12/04 20:01:02 [error] 1234#1234: *5678 open() \"/var/www/html/wp-login.php\" failed (2: No such file or directory)",
}

func (x *g) noise() {
	t := x.start + x.between(0, time.Duration(x.span)*time.Millisecond)
	x.add(t, pick(x, noiseLines), 100+x.rng.IntN(30000))
}
