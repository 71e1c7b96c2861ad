package bruteforce_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

var services = []string{bf.ServiceSSHD, bf.ServiceVsftpd, bf.ServiceProFTPD, bf.ServiceMySQL, bf.ServicePostgreSQL,
	bf.ServiceDovecot, bf.ServicePostfix, bf.ServiceSu, bf.ServiceSudo}

// FuzzParseLine: ParseLine never panics, and what it accepts is consistent: a known service and
// outcome, an address exactly when the service is remote (never an IPv4-mapped one), a user
// name taken from the line itself, at least one attempt per failure.
func FuzzParseLine(f *testing.F) {
	for _, c := range seedLines(f) {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in := string(line)
		e, ok := bf.ParseLine(line, 2026, time.UTC)
		var p bf.Parser
		p.ParseLine(line)
		if i := strings.Index(in, ": "); i > 0 && i < 80 {
			bf.ParseMessage(in[:i], in[i+2:], time.Unix(0, 0))
		}
		if !ok {
			return
		}
		if !slices.Contains(services, e.Service) {
			t.Fatalf("service %q", e.Service)
		}
		if e.Outcome < bf.Failure || e.Outcome > bf.Blocked || e.Kind > bf.KindSummary {
			t.Fatalf("outcome %v kind %v", e.Outcome, e.Kind)
		}
		local := e.Service == bf.ServiceSu || e.Service == bf.ServiceSudo
		if local == e.Source.IsValid() {
			t.Fatalf("service %s with source %v", e.Service, e.Source)
		}
		if e.Source.Is4In6() || e.Source.Zone() != "" {
			t.Fatalf("source %v not unmapped", e.Source)
		}
		if e.User != "" && !strings.Contains(in, e.User) && e.User != "root" {
			t.Fatalf("user %q is not in the line", e.User)
		}
		for _, s := range []string{e.By, e.TTY} {
			if !strings.Contains(in, s) {
				t.Fatalf("%q is not in the line", s)
			}
		}
		if e.Outcome != bf.Success && e.Attempts < 1 {
			t.Fatalf("failure with %d attempts", e.Attempts)
		}
		if !strings.HasPrefix(in, e.Line) || strings.TrimRight(in, "\r\n") != e.Line {
			t.Fatalf("Line %q of %q", e.Line, in)
		}
	})
}

// seedLines gathers lines from the parser tests and the sample logs.
func seedLines(tb testing.TB) []string {
	var out []string
	files, _ := filepath.Glob(filepath.Join("testdata", "*.log"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
	}
	return append(out,
		h3164+`vsftpd[1201]: [alice] FAIL LOGIN: Client "::ffff:198.51.100.23"`,
		`Sat Dec  4 20:01:02 2026 [pid 1202] [bob] FAIL LOGIN: Client "::ffff:198.51.100.23"`,
		h3164+"proftpd[3310]: ftp.example.com (198.51.100.23[198.51.100.23]) - USER alice (Login failed): Incorrect password",
		"2026-12-04 20:01:02,123 ftp proftpd[3310] ftp.example.com (198.51.100.23[198.51.100.23]): USER admin (Login failed): Incorrect password",
		"2026-12-04T20:01:02.123456Z 12 [Note] [MY-010926] [Server] Access denied for user 'root'@'198.51.100.23' (using password: YES)",
		"2026-12-04 20:01:02 12 [Warning] Access denied for user 'root'@'198.51.100.23' (using password: YES)",
		"2026-12-04 20:01:02.123 UTC [12345] bob@app FATAL:  no pg_hba.conf entry for host \"198.51.100.23\", user \"bob\", database \"app\", SSL off",
		"2026-12-04 20:01:02.120 UTC [12345] [unknown]@[unknown] LOG:  connection received: host=198.51.100.23 port=51234",
		h3164+"dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<alice>, method=PLAIN, rip=198.51.100.23, lip=10.0.0.1, TLS, session=<x>",
		h3164+"dovecot: auth-worker(4321): pam(alice,198.51.100.23,<x>): pam_authenticate() failed: Authentication failure (password mismatch?)",
		h3164+"postfix/smtpd[5511]: warning: unknown[198.51.100.23]: SASL LOGIN authentication failed: UGFzc3dvcmQ6",
		h3164+"postfix/smtps/smtpd[5511]: 4F2A1C0D2A: client=unknown[10.0.0.6], sasl_method=PLAIN, sasl_username=alice@example.com",
		h3164+"su[4100]: FAILED SU (to root) alice on pts/0",
		h3164+"su[4101]: FAILED su for root by alice",
		h3164+"sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
		"<38>1 2026-12-04T20:01:04.345Z db-01 sshd 2211 - - Failed password for root from 198.51.100.23 port 51234 ssh2",
		`<38>1 2026-12-04T20:01:04.345Z db-01 sshd 2211 ID47 [x@1 a="\]"] Failed password for root from 198.51.100.23 port 51234 ssh2`,
		h3164+"sshd[1]: Failed password for invalid user x from 6.6.6.6 port 22 ssh2 from 203.0.113.9 port 2222 ssh2",
		h3164+"sshd[1]: Received disconnect from 2001:db8::1: 11: Bye Bye [preauth]",
		h3164+"sshd[1]: ROOT LOGIN REFUSED FROM 198.51.100.23",
	)
}

// FuzzDetector: any sequence of events, however odd, never panics, keeps every table within
// MaxTracked, and gives only findings that validate.
func FuzzDetector(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x00\x01\x02\x03\x04\x05\x06\x07"))
	f.Add(bytes.Repeat([]byte{1, 0, 0, 1, 0, 0, 1, 0}, 40))
	f.Add(bytes.Repeat([]byte{7, 3, 2, 1, 0, 9, 1, 255}, 64))
	addrs := []netip.Addr{{}, netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("::ffff:203.0.113.7"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("0.0.0.0")}
	users := []string{"", "root", "admin", "a\x00b", "\xff", strings.Repeat("u", 5000), "x from 1.2.3.4", "ok"}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := bf.DefaultConfig()
		cfg.MaxTracked = 16
		cfg.FailuresPerSource.Count = 3
		cfg.EnumerationUsers.Count = 2
		cfg.DistributedSources.Count = 2
		d, err := bf.NewDetector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
		for len(data) >= 8 {
			b := data[:8]
			data = data[8:]
			switch b[0] % 4 {
			case 0:
				at = at.Add(time.Duration(b[1]) * time.Second)
			case 1:
				at = at.Add(time.Duration(b[1]) * time.Minute)
			case 2:
				at = at.Add(-time.Duration(b[1]) * time.Second)
			case 3:
				at = at.Add(time.Duration(b[1]) * time.Hour)
			}
			src := addrs[int(b[2])%len(addrs)]
			if b[2] >= 128 { // many distinct sources, for eviction
				src = netip.AddrFrom4([4]byte{198, 18, b[3], b[2]})
			}
			e := bf.Event{
				Time:     at,
				Service:  services[int(b[4])%len(services)],
				Outcome:  bf.Outcome(b[5] % 6),
				User:     users[int(b[6])%len(users)],
				Source:   src,
				Port:     binary.BigEndian.Uint16(b[6:8]) % 8,
				Kind:     bf.Kind(b[7] % 4),
				Attempts: uint16(b[3]),
				By:       users[int(b[3])%len(users)],
				TTY:      fmt.Sprintf("pts/%d", b[7]%3),
				Line:     users[int(b[6])%len(users)],
			}
			for _, fd := range d.Observe(e) {
				fd.ID = finding.NewID()
				if err := fd.Validate(); err != nil {
					t.Fatalf("finding %+v: %v", fd, err)
				}
			}
			if s := d.Stats(); s.Sources > 16 || s.Accounts > 16 || s.Locals > 16 {
				t.Fatalf("tables over MaxTracked: %+v", s)
			}
		}
	})
}
