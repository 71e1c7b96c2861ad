package bruteforce_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bf "github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

var t0 = time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)

// at returns a syslog line at t0+d.
func at(d time.Duration, format string, args ...any) string {
	return t0.Add(d).Format(time.Stamp) + " web-01 " + fmt.Sprintf(format, args...)
}

func parse(t testing.TB, line string) bf.Event {
	t.Helper()
	e, ok := bf.ParseLine([]byte(line), 2026, time.UTC)
	if !ok {
		t.Fatalf("rejected %q", line)
	}
	return e
}

// failed is one "Failed password" attempt of user from src.
func failed(d time.Duration, src, user string, port int) bf.Event {
	return bf.Event{Time: t0.Add(d), Service: bf.ServiceSSHD, Outcome: bf.Failure, User: user,
		Source: netip.MustParseAddr(src), Port: uint16(port), Method: "password", Kind: bf.KindAttempt, Attempts: 1,
		Line: fmt.Sprintf("Failed password for %s from %s port %d ssh2", user, src, port)}
}

func accepted(d time.Duration, src, user string) bf.Event {
	return bf.Event{Time: t0.Add(d), Service: bf.ServiceSSHD, Outcome: bf.Success, User: user,
		Source: netip.MustParseAddr(src), Port: 4000, Method: "password",
		Line: fmt.Sprintf("Accepted password for %s from %s port 4000 ssh2", user, src)}
}

func newDetector(t testing.TB, mutate func(*bf.Config)) *bf.Detector {
	t.Helper()
	cfg := bf.DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	d, err := bf.NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// feed observes evs and returns every finding, each checked to validate once the agent has
// given it an ID.
func feed(t testing.TB, d *bf.Detector, evs ...bf.Event) []finding.Finding {
	t.Helper()
	var out []finding.Finding
	for _, e := range evs {
		for _, f := range d.Observe(e) {
			g := f
			g.ID = finding.NewID()
			if err := g.Validate(); err != nil {
				t.Fatalf("finding %+v does not validate: %v", f, err)
			}
			out = append(out, f)
		}
	}
	return out
}

func ruleKeys(fs []finding.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.RuleID+"|"+f.DedupKey)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	def := bf.DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if def.FailuresPerSource.Count != 5 || def.FailuresPerSource.Window != 10*time.Minute ||
		def.EnumerationUsers.Count != 5 || def.DistributedSources.Count != 10 || def.DistributedSources.Window != time.Hour ||
		def.SuccessLookback.Window != time.Hour || !slices.Equal(def.LocalServices, []string{"su", "sudo"}) {
		t.Errorf("defaults changed: %+v", def)
	}
	var zero bf.Config
	if err := zero.Validate(); err == nil || !strings.Contains(err.Error(), "DefaultConfig") {
		t.Errorf("zero config: %v", err)
	}
	for _, c := range []struct {
		name   string
		mutate func(*bf.Config)
		want   string
	}{
		{"failures 0", func(c *bf.Config) { c.FailuresPerSource.Count = 0 }, "FailuresPerSource.Count"},
		{"failures huge", func(c *bf.Config) { c.FailuresPerSource.Count = 1001 }, "FailuresPerSource.Count"},
		{"enumeration 1", func(c *bf.Config) { c.EnumerationUsers.Count = 1 }, "EnumerationUsers.Count"},
		{"distributed window", func(c *bf.Config) { c.DistributedSources.Window = 0 }, "DistributedSources.Window"},
		{"window too long", func(c *bf.Config) { c.LocalFailures.Window = 8 * 24 * time.Hour }, "LocalFailures.Window"},
		{"lookback", func(c *bf.Config) { c.SuccessLookback.Window = time.Millisecond }, "SuccessLookback.Window"},
		{"max tracked", func(c *bf.Config) { c.MaxTracked = 1 }, "MaxTracked"},
		{"local service", func(c *bf.Config) { c.LocalServices = []string{""} }, "LocalServices"},
		{"ignore", func(c *bf.Config) { c.Ignore = []netip.Prefix{{}} }, "Ignore"},
	} {
		cfg := bf.DefaultConfig()
		c.mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want error about %s", c.name, err, c.want)
		}
		if _, err := bf.NewDetector(cfg); err == nil {
			t.Errorf("%s: NewDetector accepted it", c.name)
		}
	}
}

func TestGuessing(t *testing.T) {
	d := newDetector(t, nil)
	var evs []bf.Event
	for i := range 4 {
		evs = append(evs, failed(time.Duration(i)*time.Minute, "203.0.113.7", "root", 40000+i))
	}
	if fs := feed(t, d, evs...); len(fs) != 0 {
		t.Fatalf("4 failures: %v", ruleKeys(fs))
	}
	fs := feed(t, d, failed(4*time.Minute, "203.0.113.7", "admin", 40004))
	if len(fs) != 1 {
		t.Fatalf("5th failure: %v", ruleKeys(fs))
	}
	f := fs[0]
	if f.RuleID != bf.RuleGuessing || f.DedupKey != "203.0.113.7" || f.Severity != finding.SeverityHigh ||
		f.Category != finding.CategoryBruteForce || !slices.Equal(f.MITRE, []string{"T1110.001"}) ||
		!f.Time.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("finding = %+v", f)
	}
	ev := f.Evidence
	if ev.SourceIP != "203.0.113.7" || ev.Count != 5 || !slices.Equal(ev.Users, []string{"root", "admin"}) || len(ev.Lines) != 5 ||
		ev.Fields["service"] != "sshd" || ev.Fields["first_seen"] != "2026-12-04T20:00:00Z" ||
		ev.Fields["last_seen"] != "2026-12-04T20:04:00Z" || ev.Fields["distinct_users"] != "2" {
		t.Errorf("evidence = %+v", ev)
	}
	if !strings.Contains(f.Title, "203.0.113.7") || !strings.Contains(f.Action, "Block 203.0.113.7") {
		t.Errorf("title %q action %q", f.Title, f.Action)
	}
	// Within the window: folded, no new finding.
	if fs := feed(t, d, failed(5*time.Minute, "203.0.113.7", "root", 40005), failed(13*time.Minute, "203.0.113.7", "root", 40006)); len(fs) != 0 {
		t.Errorf("repeat within the window: %v", ruleKeys(fs))
	}
	// A window after the first finding: again, with the updated count.
	fs = feed(t, d, failed(14*time.Minute, "203.0.113.7", "root", 40007))
	if len(fs) != 1 || fs[0].Evidence.Count != 8 || fs[0].DedupKey != "203.0.113.7" {
		t.Errorf("re-fire: %v %+v", ruleKeys(fs), fs)
	}
	// Quiet for more than a window: the attack is over; a new one needs the threshold again.
	evs = evs[:0]
	for i := range 4 {
		evs = append(evs, failed(30*time.Minute+time.Duration(i)*time.Second, "203.0.113.7", "root", 41000+i))
	}
	if fs := feed(t, d, evs...); len(fs) != 0 {
		t.Errorf("after a quiet window, 4 failures: %v", ruleKeys(fs))
	}
	if fs := feed(t, d, failed(31*time.Minute, "203.0.113.7", "root", 41005)); len(fs) != 1 || fs[0].Evidence.Count != 5 {
		t.Errorf("new attack: %v", fs)
	}
}

func TestGuessingWindowBoundary(t *testing.T) {
	for _, c := range []struct {
		name string
		last time.Duration
		want int
	}{
		{"exactly the window", 10 * time.Minute, 1},
		{"a millisecond more", 10*time.Minute + time.Millisecond, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDetector(t, nil)
			evs := []bf.Event{failed(0, "198.51.100.1", "root", 1)}
			for i := 1; i < 4; i++ {
				evs = append(evs, failed(time.Duration(i)*time.Minute, "198.51.100.1", "root", 1+i))
			}
			evs = append(evs, failed(c.last, "198.51.100.1", "root", 9))
			if fs := feed(t, d, evs...); len(fs) != c.want {
				t.Errorf("findings %v, want %d", ruleKeys(fs), c.want)
			}
		})
	}
}

func TestGuessingWindowSlides(t *testing.T) {
	d := newDetector(t, nil)
	// 0, 3, 6, 9, 12 min: never 5 within 10 minutes...
	var evs []bf.Event
	for i := range 5 {
		evs = append(evs, failed(time.Duration(3*i)*time.Minute, "198.51.100.2", "root", 100+i))
	}
	if fs := feed(t, d, evs...); len(fs) != 0 {
		t.Fatalf("%v", ruleKeys(fs))
	}
	// ...until 13 min: 3, 6, 9, 12, 13.
	if fs := feed(t, d, failed(13*time.Minute, "198.51.100.2", "root", 200)); len(fs) != 1 || fs[0].Evidence.Fields["first_seen"] != "2026-12-04T20:03:00Z" {
		t.Errorf("%+v", fs)
	}
}

// TestConnectionsCountOnce feeds OpenSSH's lines about unknown-user attempts: five lines per
// attempt, counted as one, where a line-counting tool would reach 5 on the first connection.
func TestConnectionsCountOnce(t *testing.T) {
	attempt := func(i int) []bf.Event {
		port := 50000 + i
		d := time.Duration(i) * 30 * time.Second
		var evs []bf.Event
		for _, l := range []string{
			at(d, "sshd[%d]: Invalid user u%d from 203.0.113.9 port %d", 100+i, i%2, port),
			at(d, "sshd[%d]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9", 100+i),
			at(d+2*time.Second, "sshd[%d]: Failed password for invalid user u%d from 203.0.113.9 port %d ssh2", 100+i, i%2, port),
			at(d+2*time.Second, "sshd[%d]: Received disconnect from 203.0.113.9 port %d:11: Bye Bye [preauth]", 100+i, port),
			at(d+2*time.Second, "sshd[%d]: Disconnected from invalid user u%d 203.0.113.9 port %d [preauth]", 100+i, i%2, port),
		} {
			evs = append(evs, parse(t, l))
		}
		return evs
	}
	d := newDetector(t, nil)
	for i := range 4 {
		if fs := feed(t, d, attempt(i)...); len(fs) != 0 {
			t.Fatalf("attempt %d: %v", i, ruleKeys(fs))
		}
	}
	if s := d.Stats(); s.Failures != 4 || s.Events != 20 {
		t.Errorf("stats after 4 attempts = %+v", s)
	}
	fs := feed(t, d, attempt(4)...)
	if len(fs) != 1 || fs[0].RuleID != bf.RuleGuessing || fs[0].Evidence.Count != 5 {
		t.Errorf("5th attempt: %+v", fs)
	}
	// Three passwords in one connection are three attempts; the lines around them add none.
	d = newDetector(t, nil)
	var evs []bf.Event
	for i := range 3 {
		evs = append(evs,
			parse(t, at(time.Duration(i)*time.Second, "sshd[9]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.9  user=root")),
			parse(t, at(time.Duration(i)*time.Second, "sshd[9]: Failed password for root from 198.51.100.9 port 6000 ssh2")))
	}
	evs = append(evs,
		parse(t, at(4*time.Second, "sshd[9]: error: maximum authentication attempts exceeded for root from 198.51.100.9 port 6000 ssh2 [preauth]")),
		parse(t, at(4*time.Second, "sshd[9]: Disconnecting authenticating user root 198.51.100.9 port 6000: Too many authentication failures [preauth]")),
		parse(t, at(4*time.Second, "sshd[9]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.9  user=root")))
	feed(t, d, evs...)
	if s := d.Stats(); s.Failures != 3 {
		t.Errorf("one connection, three passwords: %d failures counted", s.Failures)
	}
	// A summary counts the attempts it reports that no other line did.
	d = newDetector(t, nil)
	feed(t, d,
		parse(t, at(0, "dovecot: auth-worker(1): pam(alice,198.51.100.10,<a>): pam_authenticate() failed: Authentication failure (password mismatch?)")),
		parse(t, at(time.Second, "dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<alice>, method=PLAIN, rip=198.51.100.10, lip=10.0.0.1, session=<a>")),
		parse(t, at(time.Minute, "dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<alice>, method=PLAIN, rip=198.51.100.10, lip=10.0.0.1, session=<b>")))
	if s := d.Stats(); s.Failures != 4 {
		t.Errorf("dovecot: %d failures counted, want 4", s.Failures)
	}
}

func TestEnumeration(t *testing.T) {
	t.Run("five users", func(t *testing.T) {
		d := newDetector(t, nil)
		var fs []finding.Finding
		for i, u := range []string{"admin", "test", "oracle", "pi", "ubuntu"} {
			e := failed(time.Duration(i)*time.Minute, "192.0.2.66", u, 3000+i)
			e.Outcome = bf.InvalidUser
			fs = append(fs, feed(t, d, e)...)
		}
		if len(fs) != 1 || fs[0].RuleID != bf.RuleEnumeration || fs[0].DedupKey != "192.0.2.66" {
			t.Fatalf("%v", ruleKeys(fs))
		}
		ev := fs[0].Evidence
		if !slices.Equal(ev.Users, []string{"admin", "test", "oracle", "pi", "ubuntu"}) || ev.Fields["distinct_users"] != "5" ||
			ev.Fields["invalid_users"] != "5" || ev.Count != 5 {
			t.Errorf("evidence %+v", ev)
		}
		// More users later in the attack: the guessing threshold is crossed too, but the
		// enumeration finding covers it.
		for i := range 20 {
			fs = feed(t, d, failed(5*time.Minute+time.Duration(i)*time.Second, "192.0.2.66", fmt.Sprintf("user%d", i), 4000+i))
			if len(fs) != 0 {
				t.Fatalf("during the attack: %v", ruleKeys(fs))
			}
		}
		fs = feed(t, d, failed(14*time.Minute, "192.0.2.66", "late", 5000))
		if len(fs) != 1 || fs[0].RuleID != bf.RuleEnumeration || fs[0].Evidence.Fields["distinct_users"] != "26" || fs[0].Evidence.Count != 26 {
			t.Errorf("re-fire: %+v", fs)
		}
	})
	t.Run("four users", func(t *testing.T) {
		d := newDetector(t, func(c *bf.Config) { c.FailuresPerSource.Count = 100 })
		var fs []finding.Finding
		for i, u := range []string{"admin", "test", "oracle", "pi", "admin", "test", "admin"} {
			fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Minute, "192.0.2.67", u, 3000+i))...)
		}
		if len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("five users over more than the window", func(t *testing.T) {
		d := newDetector(t, nil)
		var fs []finding.Finding
		for i, u := range []string{"admin", "test", "oracle", "pi", "ubuntu"} {
			fs = append(fs, feed(t, d, failed(time.Duration(i)*150*time.Second+time.Duration(i)*time.Millisecond, "192.0.2.68", u, 3000+i))...)
		}
		if len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
}

func TestDistributed(t *testing.T) {
	spray := func(d *bf.Detector, n int, user string, every time.Duration) []finding.Finding {
		var fs []finding.Finding
		for i := range n {
			fs = append(fs, feed(t, d, failed(time.Duration(i)*every, fmt.Sprintf("198.18.%d.%d", i/200, i%200+1), user, 1000+i))...)
		}
		return fs
	}
	t.Run("ten sources", func(t *testing.T) {
		d := newDetector(t, nil)
		fs := spray(d, 10, "svc-backup", 6*time.Minute)
		if len(fs) != 1 || fs[0].RuleID != bf.RuleDistributed || fs[0].DedupKey != "svc-backup" {
			t.Fatalf("%v", ruleKeys(fs))
		}
		f := fs[0]
		if f.Severity != finding.SeverityHigh || !slices.Equal(f.MITRE, []string{"T1110.003"}) || f.Evidence.Count != 10 ||
			f.Evidence.Fields["distinct_sources"] != "10" || !strings.HasPrefix(f.Evidence.Fields["sources"], "198.18.0.1,198.18.0.2") ||
			!slices.Equal(f.Evidence.Users, []string{"svc-backup"}) || f.Evidence.SourceIP != "" {
			t.Errorf("finding %+v", f)
		}
	})
	t.Run("nine sources", func(t *testing.T) {
		if fs := spray(newDetector(t, nil), 9, "svc-backup", 6*time.Minute); len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("ten sources over more than the window", func(t *testing.T) {
		if fs := spray(newDetector(t, nil), 10, "svc-backup", 7*time.Minute); len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("sources over the per-source threshold do not count", func(t *testing.T) {
		d := newDetector(t, nil)
		var fs []finding.Finding
		for i := range 5 {
			fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Second, "203.0.113.50", "svc-backup", 100+i))...)
		}
		if len(fs) != 1 || fs[0].RuleID != bf.RuleGuessing {
			t.Fatalf("%v", ruleKeys(fs))
		}
		if fs := spray(d, 9, "svc-backup", time.Minute); len(fs) != 0 {
			t.Errorf("9 sources and a guesser: %v", ruleKeys(fs))
		}
	})
	t.Run("unknown users are enumeration's", func(t *testing.T) {
		d := newDetector(t, nil)
		for i := range 20 {
			e := failed(time.Duration(i)*time.Minute, fmt.Sprintf("198.18.0.%d", i+1), "nosuchuser", 100+i)
			e.Outcome = bf.InvalidUser
			if fs := feed(t, d, e); len(fs) != 0 {
				t.Fatalf("%v", ruleKeys(fs))
			}
		}
	})
	t.Run("a source that logged in as the user does not count", func(t *testing.T) {
		d := newDetector(t, nil)
		feed(t, d, failed(0, "10.1.1.1", "alice", 1), accepted(time.Second, "10.1.1.1", "alice"))
		var fs []finding.Finding
		for i := range 9 {
			fs = append(fs, feed(t, d, failed(time.Minute+time.Duration(i)*time.Minute, fmt.Sprintf("198.18.1.%d", i+1), "alice", 100+i))...)
		}
		if len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
		if fs := feed(t, d, failed(20*time.Minute, "198.18.1.99", "alice", 999)); len(fs) != 1 || fs[0].Evidence.Fields["distinct_sources"] != "10" {
			t.Errorf("10th sprayer: %+v", fs)
		}
	})
}

func TestSucceeded(t *testing.T) {
	guess := func(d *bf.Detector, src string) {
		t.Helper()
		var evs []bf.Event
		for i := range 6 {
			evs = append(evs, failed(time.Duration(i)*time.Second, src, "root", 100+i))
		}
		if fs := feed(t, d, evs...); len(fs) != 1 || fs[0].RuleID != bf.RuleGuessing {
			t.Fatalf("%v", ruleKeys(fs))
		}
	}
	t.Run("after guessing", func(t *testing.T) {
		d := newDetector(t, nil)
		guess(d, "203.0.113.77")
		fs := feed(t, d, accepted(30*time.Minute, "203.0.113.77", "root"))
		if len(fs) != 1 {
			t.Fatalf("%v", ruleKeys(fs))
		}
		f := fs[0]
		if f.RuleID != bf.RuleSucceeded || f.Severity != finding.SeverityCritical || f.DedupKey != "203.0.113.77" ||
			!slices.Contains(f.MITRE, "T1078") || f.Evidence.Fields["failures_before"] != "6" || f.Evidence.Fields["user"] != "root" ||
			!strings.Contains(f.Evidence.Lines[len(f.Evidence.Lines)-1], "Accepted password for root") {
			t.Errorf("%+v", f)
		}
		// once per lookback for the same user
		if fs := feed(t, d, accepted(31*time.Minute, "203.0.113.77", "root")); len(fs) != 0 {
			t.Errorf("second login: %v", ruleKeys(fs))
		}
	})
	t.Run("after the lookback", func(t *testing.T) {
		d := newDetector(t, nil)
		guess(d, "203.0.113.78")
		if fs := feed(t, d, accepted(time.Hour+6*time.Second, "203.0.113.78", "root")); len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("at the lookback", func(t *testing.T) {
		d := newDetector(t, nil)
		guess(d, "203.0.113.79")
		if fs := feed(t, d, accepted(time.Hour+5*time.Second, "203.0.113.79", "root")); len(fs) != 1 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("after enumeration", func(t *testing.T) {
		d := newDetector(t, nil)
		for i, u := range []string{"a", "b", "c", "d", "e"} {
			feed(t, d, failed(time.Duration(i)*time.Second, "203.0.113.80", u, 100+i))
		}
		if fs := feed(t, d, accepted(time.Minute, "203.0.113.80", "e")); len(fs) != 1 || fs[0].RuleID != bf.RuleSucceeded {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("a user who mistyped", func(t *testing.T) {
		d := newDetector(t, nil)
		var fs []finding.Finding
		for round := range 3 {
			base := time.Duration(round) * 2 * time.Minute
			fs = append(fs, feed(t, d,
				failed(base, "10.0.0.6", "alice", 100+round),
				failed(base+5*time.Second, "10.0.0.6", "alice", 100+round),
				accepted(base+10*time.Second, "10.0.0.6", "alice"))...)
		}
		if len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("a login does not forgive other users' failures", func(t *testing.T) {
		d := newDetector(t, nil)
		var evs []bf.Event
		for i := range 4 {
			evs = append(evs, failed(time.Duration(i)*time.Second, "198.51.100.70", "root", 100+i))
		}
		evs = append(evs, bf.Event{Time: t0.Add(5 * time.Second), Service: bf.ServiceVsftpd, Outcome: bf.Success, User: "ftp",
			Source: netip.MustParseAddr("198.51.100.70"), Line: "OK LOGIN"})
		evs = append(evs, failed(6*time.Second, "198.51.100.70", "root", 200))
		if fs := feed(t, d, evs...); len(fs) != 1 || fs[0].RuleID != bf.RuleGuessing {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
	t.Run("disabled", func(t *testing.T) {
		d := newDetector(t, func(c *bf.Config) { c.SuccessLookback.Enabled = false })
		guess(d, "203.0.113.81")
		if fs := feed(t, d, accepted(time.Minute, "203.0.113.81", "root")); len(fs) != 0 {
			t.Errorf("%v", ruleKeys(fs))
		}
	})
}

func TestLocalAuth(t *testing.T) {
	su := func(d time.Duration, by, tty string) []bf.Event {
		return []bf.Event{
			parse(t, at(d, "su[4100]: pam_unix(su:auth): authentication failure; logname=%s uid=1000 euid=0 tty=/dev/%s ruser=%s rhost=  user=root", by, tty, by)),
			parse(t, at(d+2*time.Second, "su[4100]: FAILED SU (to root) %s on %s", by, tty)),
		}
	}
	d := newDetector(t, nil)
	var fs []finding.Finding
	for i := range 4 {
		fs = append(fs, feed(t, d, su(time.Duration(i)*time.Minute, "alice", "pts/0")...)...)
		fs = append(fs, feed(t, d, su(time.Duration(i)*time.Minute, "alice", "pts/1")[:1]...)...)
	}
	if len(fs) != 0 || d.Stats().Failures != 8 {
		t.Fatalf("%v, stats %+v", ruleKeys(fs), d.Stats())
	}
	fs = feed(t, d, su(5*time.Minute, "alice", "pts/0")...)
	if len(fs) != 1 || fs[0].RuleID != bf.RuleLocalAuth || fs[0].DedupKey != "alice@pts/0" || fs[0].Evidence.Count != 5 ||
		fs[0].Evidence.SourceIP != "" || !slices.Equal(fs[0].Evidence.Users, []string{"root"}) || fs[0].Evidence.Fields["tty"] != "pts/0" {
		t.Fatalf("%+v", fs)
	}
	fs = feed(t, d, parse(t, at(6*time.Minute, "su[4101]: (to root) alice on pts/0")))
	if len(fs) != 1 || fs[0].RuleID != bf.RuleSucceeded || fs[0].DedupKey != "alice@pts/0" || fs[0].Severity != finding.SeverityCritical {
		t.Errorf("success after local guessing: %+v", fs)
	}
	// sudo: the per-attempt PAM lines and the summary are the same three attempts.
	d = newDetector(t, nil)
	line := "sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/2 ruser=bob rhost=  user=bob"
	feed(t, d, parse(t, at(0, "%s", line)), parse(t, at(3*time.Second, "%s", line)), parse(t, at(6*time.Second, "%s", line)),
		parse(t, at(7*time.Second, "sudo:      bob : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash")))
	if s := d.Stats(); s.Failures != 3 || s.Locals != 1 || s.Sources != 0 {
		t.Errorf("sudo stats %+v", s)
	}
	// disabled
	d = newDetector(t, func(c *bf.Config) { c.LocalFailures.Enabled = false })
	for i := range 10 {
		if fs := feed(t, d, su(time.Duration(i)*time.Second*10, "eve", "pts/9")...); len(fs) != 0 {
			t.Fatalf("disabled: %v", ruleKeys(fs))
		}
	}
}

func TestRulesDisabled(t *testing.T) {
	d := newDetector(t, func(c *bf.Config) {
		c.FailuresPerSource.Enabled = false
		c.EnumerationUsers.Enabled = false
		c.DistributedSources.Enabled = false
	})
	var fs []finding.Finding
	for i := range 50 {
		fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Second, "203.0.113.7", fmt.Sprintf("u%d", i), i+1))...)
		fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Second, fmt.Sprintf("198.18.0.%d", i+1), "root", i+1))...)
	}
	if len(fs) != 0 {
		t.Errorf("%v", ruleKeys(fs))
	}
}

func TestEvictionAndExpiry(t *testing.T) {
	d := newDetector(t, func(c *bf.Config) {
		c.MaxTracked = 16
		c.DistributedSources.Count = 1000
	})
	for i := range 100 {
		feed(t, d, failed(time.Duration(i)*time.Millisecond, fmt.Sprintf("198.18.0.%d", i+1), fmt.Sprintf("u%d", i), 1))
	}
	s := d.Stats()
	if s.Sources != 16 || s.Accounts != 16 || s.Evicted != 2*84 {
		t.Errorf("stats %+v", s)
	}
	// An evicted source starts again from nothing: 4 + 4 failures with an eviction in between
	// do not make 5.
	for i := range 4 {
		feed(t, d, failed(time.Second+time.Duration(i)*time.Millisecond, "203.0.113.1", "root", 10+i))
	}
	for i := range 16 {
		feed(t, d, failed(2*time.Second, fmt.Sprintf("198.18.1.%d", i+1), "x", 1))
	}
	for i := range 4 {
		if fs := feed(t, d, failed(3*time.Second+time.Duration(i)*time.Millisecond, "203.0.113.1", "root", 20+i)); len(fs) != 0 {
			t.Fatalf("evicted source fired: %v", ruleKeys(fs))
		}
	}
	// Everything expires once quiet for longer than every window.
	feed(t, d, failed(3*time.Hour, "203.0.113.2", "root", 1), failed(3*time.Hour, "203.0.113.3", "root", 1),
		failed(3*time.Hour, "203.0.113.4", "root", 1), failed(3*time.Hour, "203.0.113.5", "root", 1),
		failed(3*time.Hour, "203.0.113.6", "root", 1), failed(3*time.Hour, "203.0.113.8", "root", 1))
	if s := d.Stats(); s.Sources != 6 || s.Accounts != 1 || s.Expired == 0 {
		t.Errorf("after 3 h: %+v", s)
	}
}

func TestIgnoredAndUnattributed(t *testing.T) {
	d := newDetector(t, func(c *bf.Config) { c.Ignore = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	var fs []finding.Finding
	for i := range 10 {
		fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Second, "10.9.9.9", "root", i+1))...)
		fs = append(fs, feed(t, d, bf.Event{Time: t0, Service: bf.ServiceMySQL, Outcome: bf.Failure, User: "root", Line: "x"})...)
		fs = append(fs, feed(t, d, bf.Event{Time: t0, Service: bf.ServiceSSHD, User: "root", Source: netip.MustParseAddr("1.2.3.4")})...)
	}
	// IPv4-mapped addresses are the same source.
	e := failed(0, "::ffff:10.1.2.3", "root", 1)
	fs = append(fs, feed(t, d, e)...)
	if s := d.Stats(); len(fs) != 0 || s.Ignored != 11 || s.Unattributed != 20 || s.Sources != 0 {
		t.Errorf("findings %v stats %+v", ruleKeys(fs), s)
	}
}

// TestFindingsSurviveHostileUsers: a user name with NUL, newlines, invalid UTF-8 or 10 KB still
// gives findings the console accepts.
func TestFindingsSurviveHostileUsers(t *testing.T) {
	d := newDetector(t, nil)
	users := []string{"a\x00b", "line\nbreak", "\xff\xfe\xfd", strings.Repeat("x", 10000), "", "ok"}
	var fs []finding.Finding
	for i, u := range users {
		e := failed(time.Duration(i)*time.Second, "203.0.113.99", u, i+1)
		e.Line = strings.Repeat(u, 2)
		fs = append(fs, feed(t, d, e)...)
	}
	for i := range 12 {
		fs = append(fs, feed(t, d, failed(time.Duration(i)*time.Second, fmt.Sprintf("198.18.3.%d", i+1), "a\x00b", 1))...)
	}
	fs = append(fs, feed(t, d, accepted(time.Minute, "203.0.113.99", "\x00"))...)
	got := ruleKeys(fs)
	for _, r := range []string{bf.RuleEnumeration, bf.RuleDistributed, bf.RuleSucceeded} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, r+"|") }) {
			t.Errorf("no %s in %q", r, got)
		}
	}
}

func TestDeterministic(t *testing.T) {
	var evs []bf.Event
	for i := range 3000 {
		src := fmt.Sprintf("198.18.%d.%d", i%7, i%13+1)
		user := []string{"root", "admin", "alice", "svc", "test"}[i%5]
		evs = append(evs, failed(time.Duration(i)*7*time.Second, src, user, i%60000+1))
		if i%97 == 0 {
			evs = append(evs, accepted(time.Duration(i)*7*time.Second, src, user))
		}
	}
	a := feed(t, newDetector(t, nil), evs...)
	b := feed(t, newDetector(t, nil), evs...)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Errorf("runs differ or found nothing: %d vs %d findings", len(a), len(b))
	}
}
