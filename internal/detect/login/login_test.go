package login

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// fakeLocator places addresses by prefix, like a GeoIP database would, without a file.
type fakeLocator map[string]Place

func (f fakeLocator) Locate(a netip.Addr) (Place, bool) {
	for cidr, p := range f {
		if netip.MustParsePrefix(cidr).Contains(a.Unmap()) {
			return p, true
		}
	}
	return Place{}, false
}

var testLoc = fakeLocator{
	"198.51.100.0/24": {"DE", "Bavaria", "Munich"},
	"198.51.101.0/24": {"DE", "Berlin", "Berlin"},
	"203.0.113.0/24":  {"CN", "Guangdong", "Shenzhen"},
	"192.0.2.0/24":    {"CN", "Guangdong", "Guangzhou"},
	"2001:db8::/32":   {"US", "California", "San Jose"},
}

var (
	monday10  = date("2026-05-04T10:00:00Z") // inside 08:00-19:00 UTC, Mon-Fri
	monday03  = date("2026-05-04T03:00:00Z") // outside
	saturday3 = date("2026-05-09T03:00:00Z")
)

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func ssh(user, src string, at time.Time) Login {
	return Login{Time: at, User: user, Source: addr(src), Service: "sshd", Method: "publickey", TTY: "ssh"}
}

func console(user string, at time.Time) Login {
	return Login{Time: at, User: user, Service: "login", Method: "password", TTY: "tty1"}
}

func newTestDetector(t testing.TB, cfg Config, loc Locator) *Detector {
	t.Helper()
	d, err := NewDetector(cfg, loc)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// observeOne observes l and returns its finding, or nil; more than one is a failure.
func observeOne(t testing.TB, d *Detector, l Login) *finding.Finding {
	t.Helper()
	fs := d.Observe(l)
	switch len(fs) {
	case 0:
		return nil
	case 1:
		f := fs[0]
		f.ID = finding.NewID()
		if err := f.Validate(); err != nil {
			t.Fatalf("invalid finding %+v: %v", f, err)
		}
		return &f
	}
	t.Fatalf("%d findings for one login", len(fs))
	return nil
}

func reasonsOf(f *finding.Finding) string {
	if f == nil {
		return ""
	}
	return f.Evidence.Fields["reasons"]
}

func TestRules(t *testing.T) {
	noLearning := func(c *Config) { c.LearningPeriod = -1 }
	sources := func(c *Config) {
		c.AllowedSources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	}
	home := func(ps ...Place) func(*Config) { return func(c *Config) { c.HomeRegions = ps } }
	hours := func(c *Config) { c.AllowedHours = MustParseHourRange("Mon-Fri 08:00-19:00") }
	off := func(f func(*RuleSwitches)) func(*Config) { return func(c *Config) { f(&c.Rules) } }
	intel := func(c *Config) { c.HighRiskIPs = func(a netip.Addr) bool { return a == addr("198.51.100.66") } }

	for _, c := range []struct {
		name   string
		cfg    []func(*Config)
		before []Login // learned first; their findings are ignored
		login  Login
		want   string // reasons, comma-separated; "" for no finding
		risk   string
	}{
		// login.source-not-allowed
		{name: "source outside list", cfg: []func(*Config){sources}, login: ssh("alice", "203.0.113.5", monday10), want: RuleSourceNotAllowed, risk: RiskSuspicious},
		{name: "source inside list", cfg: []func(*Config){sources}, login: ssh("alice", "198.51.100.9", monday10)},
		{name: "source inside list, IPv6", cfg: []func(*Config){sources}, login: ssh("alice", "2001:db8:1:2::9", monday10)},
		{name: "source outside list, IPv6", cfg: []func(*Config){sources}, login: ssh("alice", "2001:db8:2::9", monday10), want: RuleSourceNotAllowed, risk: RiskSuspicious},
		{name: "source inside list, IPv4-mapped", cfg: []func(*Config){sources}, login: ssh("alice", "::ffff:198.51.100.9", monday10)},
		{name: "source list unset", login: ssh("alice", "203.0.113.5", monday10)},
		{name: "source rule: console login", cfg: []func(*Config){sources}, login: console("alice", monday10)},
		{name: "source rule off", cfg: []func(*Config){sources, off(func(r *RuleSwitches) { r.SourceNotAllowed = false })}, login: ssh("alice", "203.0.113.5", monday10)},

		// login.region-not-allowed
		{name: "region: other country", cfg: []func(*Config){home(Place{Country: "DE"})}, login: ssh("alice", "203.0.113.5", monday10), want: RuleRegionNotAllowed, risk: RiskHigh},
		{name: "region: home country", cfg: []func(*Config){home(Place{Country: "DE"})}, login: ssh("alice", "198.51.101.5", monday10)},
		{name: "region: home country, lower case", cfg: []func(*Config){home(Place{Country: "de"})}, login: ssh("alice", "198.51.101.5", monday10)},
		{name: "region: other province", cfg: []func(*Config){home(Place{Country: "DE", Province: "Bavaria"})}, login: ssh("alice", "198.51.101.5", monday10), want: RuleRegionNotAllowed, risk: RiskHigh},
		{name: "region: home province", cfg: []func(*Config){home(Place{Country: "DE", Province: "bavaria"})}, login: ssh("alice", "198.51.100.5", monday10)},
		{name: "region: other city", cfg: []func(*Config){home(Place{"CN", "Guangdong", "Shenzhen"})}, login: ssh("alice", "192.0.2.5", monday10), want: RuleRegionNotAllowed, risk: RiskHigh},
		{name: "region: home city", cfg: []func(*Config){home(Place{"CN", "Guangdong", "Shenzhen"})}, login: ssh("alice", "203.0.113.5", monday10)},
		{name: "region: one of several", cfg: []func(*Config){home(Place{Country: "DE"}, Place{Country: "US"})}, login: ssh("alice", "2001:db8::5", monday10)},
		{name: "region: not placed", cfg: []func(*Config){home(Place{Country: "DE"})}, login: ssh("alice", "10.1.2.3", monday10)},
		{name: "region: console login", cfg: []func(*Config){home(Place{Country: "DE"})}, login: console("alice", monday10)},
		{name: "region rule off", cfg: []func(*Config){home(Place{Country: "DE"}), off(func(r *RuleSwitches) { r.RegionNotAllowed = false })}, login: ssh("alice", "203.0.113.5", monday10)},
		{name: "region rule off: still high risk", cfg: []func(*Config){home(Place{Country: "DE"}), off(func(r *RuleSwitches) { r.RegionNotAllowed = false })}, login: ssh("root", "203.0.113.5", monday10), want: RuleRoot, risk: RiskHigh},

		// login.outside-hours
		{name: "hours: at night", cfg: []func(*Config){hours}, login: ssh("alice", "198.51.100.5", monday03), want: RuleOutsideHours, risk: RiskSuspicious},
		{name: "hours: on Saturday", cfg: []func(*Config){hours}, login: ssh("alice", "198.51.100.5", saturday3.Add(7*time.Hour)), want: RuleOutsideHours, risk: RiskSuspicious},
		{name: "hours: inside", cfg: []func(*Config){hours}, login: ssh("alice", "198.51.100.5", monday10)},
		{name: "hours: console login at night", cfg: []func(*Config){hours}, login: console("alice", monday03), want: RuleOutsideHours, risk: RiskSuspicious},
		{name: "hours unset", login: ssh("alice", "198.51.100.5", monday03)},
		{name: "hours rule off", cfg: []func(*Config){hours, off(func(r *RuleSwitches) { r.OutsideHours = false })}, login: ssh("alice", "198.51.100.5", monday03)},

		// login.new-source
		{name: "new source", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "198.51.100.5", monday03)}, login: ssh("alice", "203.0.113.5", monday10), want: RuleNewSource, risk: RiskSuspicious},
		{name: "known /24", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "198.51.100.5", monday03)}, login: ssh("alice", "198.51.100.250", monday10)},
		{name: "known /64", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "2001:db8:0:1::5", monday03)}, login: ssh("alice", "2001:db8:0:1:ffff::1", monday10)},
		{name: "new /64", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "2001:db8:0:1::5", monday03)}, login: ssh("alice", "2001:db8:0:2::5", monday10), want: RuleNewSource, risk: RiskSuspicious},
		{name: "IPv4-mapped is the same source", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "198.51.100.5", monday03)}, login: ssh("alice", "::ffff:198.51.100.6", monday10)},
		{name: "another user's source", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "198.51.100.5", monday03), ssh("bob", "203.0.113.5", monday03)}, login: ssh("alice", "203.0.113.5", monday10), want: RuleNewSource, risk: RiskSuspicious},
		{name: "same user on another host", cfg: []func(*Config){noLearning}, before: []Login{{Time: monday03, User: "alice", Source: addr("198.51.100.5"), Host: "h1"}, {Time: monday03, User: "alice", Source: addr("203.0.113.5"), Host: "h2"}}, login: Login{Time: monday10, User: "alice", Source: addr("198.51.100.5"), Host: "h2"}, want: RuleNewSource, risk: RiskSuspicious},
		{name: "new source: console login", cfg: []func(*Config){noLearning}, before: []Login{ssh("alice", "198.51.100.5", monday03)}, login: console("alice", monday10)},
		{name: "new source rule off", cfg: []func(*Config){noLearning, off(func(r *RuleSwitches) { r.NewSource = false })}, before: []Login{ssh("alice", "198.51.100.5", monday03)}, login: ssh("alice", "203.0.113.5", monday10)},

		// login.root
		{name: "root over ssh", login: ssh("root", "198.51.100.5", monday10), want: RuleRoot, risk: RiskSuspicious},
		{name: "root over ssh from loopback", login: ssh("root", "127.0.0.1", monday10), want: RuleRoot, risk: RiskSuspicious},
		{name: "root on the console", login: console("root", monday10)},
		{name: "not root", login: ssh("rooty", "198.51.100.5", monday10)},
		{name: "root rule off", cfg: []func(*Config){off(func(r *RuleSwitches) { r.RootLogin = false })}, login: ssh("root", "198.51.100.5", monday10)},

		// Risk and several reasons.
		{name: "threat intel raises risk", cfg: []func(*Config){intel}, login: ssh("root", "198.51.100.66", monday10), want: RuleRoot, risk: RiskHigh},
		{name: "threat intel alone is not a finding", cfg: []func(*Config){intel}, login: ssh("alice", "198.51.100.66", monday10)},
		{
			name:   "everything at once",
			cfg:    []func(*Config){noLearning, sources, hours, home(Place{Country: "DE"})},
			before: []Login{ssh("root", "198.51.100.5", monday10)},
			login:  ssh("root", "203.0.113.5", monday03),
			want:   strings.Join([]string{RuleRegionNotAllowed, RuleSourceNotAllowed, RuleNewSource, RuleRoot, RuleOutsideHours}, ","),
			risk:   RiskHigh,
		},
		{
			name:  "source and hours: medium",
			cfg:   []func(*Config){sources, hours},
			login: ssh("alice", "203.0.113.5", monday03),
			want:  RuleSourceNotAllowed + "," + RuleOutsideHours,
			risk:  RiskSuspicious,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			for _, f := range c.cfg {
				f(&cfg)
			}
			d := newTestDetector(t, cfg, testLoc)
			for _, l := range c.before {
				d.Observe(l)
			}
			f := observeOne(t, d, c.login)
			if got := reasonsOf(f); got != c.want {
				t.Fatalf("reasons = %q, want %q", got, c.want)
			}
			if f == nil {
				return
			}
			if want := strings.Split(c.want, ",")[0]; f.RuleID != want {
				t.Errorf("rule = %s, want %s", f.RuleID, want)
			}
			if f.Evidence.Fields["risk"] != c.risk {
				t.Errorf("risk = %s, want %s", f.Evidence.Fields["risk"], c.risk)
			}
			wantSev := finding.SeverityMedium
			if c.risk == RiskHigh {
				wantSev = finding.SeverityHigh
			}
			if f.Severity != wantSev {
				t.Errorf("severity = %s, want %s", f.Severity, wantSev)
			}
		})
	}
}

func TestFindingShape(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HomeRegions = []Place{{Country: "DE"}}
	cfg.AllowedHours = MustParseHourRange("08:00-19:00")
	cfg.HighRiskIPs = func(a netip.Addr) bool { return a == addr("203.0.113.66") }
	d := newTestDetector(t, cfg, testLoc)

	l := Login{Time: monday03, User: "root", Source: addr("::ffff:203.0.113.66"), Service: "sshd", Method: "password", TTY: "ssh", Host: "h-42"}
	f := observeOne(t, d, l)
	if f == nil {
		t.Fatal("no finding")
	}
	if f.Category != finding.CategoryLogin || f.RuleID != RuleRegionNotAllowed || f.Severity != finding.SeverityHigh {
		t.Errorf("rule %s category %s severity %s", f.RuleID, f.Category, f.Severity)
	}
	if !f.Time.Equal(monday03) || f.Host != "h-42" {
		t.Errorf("time %v host %q", f.Time, f.Host)
	}
	if f.DedupKey != "root|203.0.113.66" {
		t.Errorf("dedup key %q", f.DedupKey)
	}
	if !slices.Equal(f.MITRE, []string{"T1078", "T1021.004"}) {
		t.Errorf("MITRE %v", f.MITRE)
	}
	if f.Evidence.SourceIP != "203.0.113.66" || !slices.Equal(f.Evidence.Users, []string{"root"}) {
		t.Errorf("evidence %+v", f.Evidence)
	}
	want := map[string]string{
		"service": "sshd", "method": "password", "tty": "ssh",
		"country": "CN", "province": "Guangdong", "city": "Shenzhen",
		"risk": RiskHigh, "reasons": "login.region-not-allowed,login.root,login.outside-hours",
		"threat_intel": "true", "source_net": "203.0.113.0/24",
	}
	if fmt.Sprint(f.Evidence.Fields) != fmt.Sprint(want) {
		t.Errorf("fields\n got %v\nwant %v", f.Evidence.Fields, want)
	}
	if wantTitle := "Abnormal login by root from 203.0.113.66 (CN, Guangdong, Shenzhen): outside home regions, direct root login, outside allowed hours"; f.Title != wantTitle {
		t.Errorf("title %q", f.Title)
	}
	if !strings.Contains(f.Action, "treat the account as compromised") || !strings.Contains(f.Action, "block 203.0.113.66") {
		t.Errorf("action %q", f.Action)
	}

	// A console login: no source, no SSH technique, its own dedup key.
	f = observeOne(t, d, Login{Time: monday03, User: "alice", Service: "login", TTY: "tty1"})
	if f == nil {
		t.Fatal("no finding for a console login at night")
	}
	if f.DedupKey != "alice|console" || !slices.Equal(f.MITRE, []string{"T1078"}) || f.Evidence.SourceIP != "" || f.Severity != finding.SeverityMedium {
		t.Errorf("console finding %+v", f)
	}
	if f.Title != "Abnormal login by alice from the console (tty1): outside allowed hours" {
		t.Errorf("title %q", f.Title)
	}
	if _, ok := f.Evidence.Fields["country"]; ok {
		t.Errorf("console finding has a country: %v", f.Evidence.Fields)
	}
	if strings.Contains(f.Action, "treat the account as compromised") || strings.Contains(f.Action, "block") {
		t.Errorf("action %q", f.Action)
	}

	// Hostile strings from logs come out printable, bounded and valid.
	nasty := strings.Repeat("é", 300) + "\x00\x1b[31m\xff"
	f = observeOne(t, d, Login{Time: monday03, User: nasty, Source: addr("198.51.100.1"), Service: nasty, TTY: nasty, Method: "\x00"})
	if f == nil {
		t.Fatal("no finding")
	}
	for k, v := range f.Evidence.Fields {
		if len(v) > maxFieldLen || strings.ContainsAny(v, "\x00\x1b") {
			t.Errorf("field %s = %q", k, v)
		}
	}
	if m := f.Evidence.Fields["method"]; m != "?" {
		t.Errorf("method of only a NUL = %q, want ?", m)
	}
	if len(f.Evidence.Users[0]) > maxFieldLen || !strings.HasPrefix(f.Title, "Abnormal login by éé") || len(f.Title) > 200 {
		t.Errorf("user %q title %q", f.Evidence.Users[0], f.Title)
	}
}

func TestLearningPeriod(t *testing.T) {
	d := newTestDetector(t, DefaultConfig(), testLoc) // 7 days
	t0 := monday10
	day := 24 * time.Hour
	steps := []struct {
		l    Login
		want bool
	}{
		{ssh("alice", "198.51.100.5", t0), false},           // first login: learned
		{ssh("alice", "203.0.113.5", t0.Add(1*day)), false}, // new, but learning
		{ssh("alice", "192.0.2.5", t0.Add(7*day-time.Second)), false},
		{ssh("alice", "2001:db8::5", t0.Add(7*day)), true},   // exactly the period: reported
		{ssh("alice", "2001:db8::6", t0.Add(8*day)), false},  // the same /64
		{ssh("alice", "203.0.113.77", t0.Add(9*day)), false}, // learned during the period
		{ssh("alice", "198.18.0.1", t0.Add(9*day)), true},
		{ssh("bob", "198.18.0.1", t0.Add(9*day)), false},   // bob's first login
		{ssh("bob", "203.0.113.5", t0.Add(10*day)), false}, // bob is still learning
		{ssh("bob", "192.0.2.5", t0.Add(16*day)), true},
		{console("carol", t0), false},                         // console logins are not learned...
		{ssh("carol", "198.51.100.5", t0.Add(30*day)), false}, // ...so this is carol's first
		{ssh("carol", "198.51.101.5", t0.Add(31*day)), false},
		{ssh("dave", "198.51.100.5", t0.Add(30*day)), false},
		{ssh("dave", "198.51.101.5", t0.Add(-30*day)), false}, // an older login moves the clock back
		{ssh("dave", "203.0.113.5", t0.Add(30*day)), true},
	}
	for i, s := range steps {
		f := observeOne(t, d, s.l)
		got := f != nil && strings.Contains(reasonsOf(f), RuleNewSource)
		if got != s.want {
			t.Errorf("step %d (%s from %v at +%v): new-source = %v, want %v", i, s.l.User, s.l.Source, s.l.Time.Sub(t0), got, s.want)
		}
	}

	cfg := DefaultConfig()
	cfg.LearningPeriod = time.Hour
	d = newTestDetector(t, cfg, nil)
	d.Observe(ssh("alice", "198.51.100.5", t0))
	if f := observeOne(t, d, ssh("alice", "203.0.113.5", t0.Add(59*time.Minute))); f != nil {
		t.Errorf("finding within a 1 h learning period: %+v", f)
	}
	if f := observeOne(t, d, ssh("alice", "192.0.2.5", t0.Add(time.Hour))); f == nil {
		t.Error("no finding after a 1 h learning period")
	}

	cfg.LearningPeriod = -1 // none: even the first login is a new source
	d = newTestDetector(t, cfg, nil)
	if f := observeOne(t, d, ssh("alice", "198.51.100.5", t0)); f != nil {
		t.Errorf("first login without learning: %+v", f)
	}
}

func TestAllowlist(t *testing.T) {
	// The base configuration flags the login below on every rule.
	base := func() Config {
		cfg := DefaultConfig()
		cfg.AllowedSources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		cfg.HomeRegions = []Place{{Country: "DE"}}
		cfg.AllowedHours = MustParseHourRange("Mon-Fri 08:00-19:00 Europe/Berlin")
		cfg.Host, cfg.Group = "h-agent", "db"
		cfg.GroupOf = func(h string) string { return map[string]string{"h-web-1": "web", "h-web-2": "web", "h-db-1": "db"}[h] }
		return cfg
	}
	login := ssh("root", "203.0.113.5", date("2026-05-04T23:30:00+02:00")) // Monday 23:30 in Berlin
	onHost := func(h string) Login { l := login; l.Host = h; return l }
	pfx := func(s ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, x := range s {
			ps = append(ps, netip.MustParsePrefix(x))
		}
		return ps
	}

	for _, c := range []struct {
		name       string
		allow      Allow
		login      Login
		suppressed bool
	}{
		{"user", Allow{Users: []string{"root"}}, login, true},
		{"other user", Allow{Users: []string{"alice"}}, login, false},
		{"CIDR", Allow{Sources: pfx("203.0.113.0/24")}, login, true},
		{"host address", Allow{Sources: pfx("203.0.113.5/32")}, login, true},
		{"other CIDR", Allow{Sources: pfx("203.0.114.0/24")}, login, false},
		{"IPv4-mapped CIDR", Allow{Sources: pfx("::ffff:203.0.113.0/120")}, login, true},
		{"CIDR, console login", Allow{Sources: pfx("0.0.0.0/0")}, console("root", login.Time), false},
		{"country", Allow{Places: []Place{{Country: "CN"}}}, login, true},
		{"country, lower case", Allow{Places: []Place{{Country: "cn"}}}, login, true},
		{"other country", Allow{Places: []Place{{Country: "US"}}}, login, false},
		{"province and city", Allow{Places: []Place{{"CN", "Guangdong", "Shenzhen"}}}, login, true},
		{"province, other city", Allow{Places: []Place{{"CN", "Guangdong", "Guangzhou"}}}, login, false},
		{"place, unplaced source", Allow{Places: []Place{{Country: "CN"}}}, ssh("root", "10.0.0.1", login.Time), false},
		{"time window", Allow{Hours: MustParseHourRange("23:00-24:00 Europe/Berlin")}, login, true},
		{"time window, other zone", Allow{Hours: MustParseHourRange("23:00-24:00 UTC")}, login, false},
		{"time window missed", Allow{Hours: MustParseHourRange("08:00-19:00 Europe/Berlin")}, login, false},
		{"overnight window", Allow{Hours: MustParseHourRange("Mon-Fri 22:00-06:00 Europe/Berlin")}, login, true},
		{"overnight window, wrong day", Allow{Hours: MustParseHourRange("Tue-Fri 22:00-06:00 Europe/Berlin")}, login, false},
		{"user and CIDR", Allow{Users: []string{"root"}, Sources: pfx("203.0.113.0/24")}, login, true},
		{"user and CIDR, one misses", Allow{Users: []string{"root"}, Sources: pfx("192.0.2.0/24")}, login, false},
		{"all fields", Allow{Users: []string{"alice", "root"}, Sources: pfx("203.0.113.0/24"), Places: []Place{{Country: "CN"}}, Hours: MustParseHourRange("22:00-06:00 Europe/Berlin"), Scope: Scope{Hosts: []string{"h-agent"}}}, login, true},
		{"scope host, agent", Allow{Users: []string{"root"}, Scope: Scope{Hosts: []string{"h-agent"}}}, login, true},
		{"scope other host, agent", Allow{Users: []string{"root"}, Scope: Scope{Hosts: []string{"h-web-1"}}}, login, false},
		{"scope host, console side", Allow{Users: []string{"root"}, Scope: Scope{Hosts: []string{"h-web-1"}}}, onHost("h-web-1"), true},
		{"scope other host, console side", Allow{Users: []string{"root"}, Scope: Scope{Hosts: []string{"h-web-1"}}}, onHost("h-web-2"), false},
		{"scope group, agent", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"db"}}}, login, true},
		{"scope other group, agent", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"web"}}}, login, false},
		{"scope group, console side", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"web"}}}, onHost("h-web-2"), true},
		{"scope other group, console side", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"web"}}}, onHost("h-db-1"), false},
		{"scope group, unknown host", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"web"}}}, onHost("h-unknown"), false},
		{"scope hosts or groups", Allow{Scope: Scope{Hosts: []string{"h-db-1"}, Groups: []string{"web"}}}, onHost("h-db-1"), true},
		{"scope host only", Allow{Scope: Scope{Hosts: []string{"h-web-1"}}, Comment: "bastion"}, onHost("h-web-1"), true},
		{"scope fleet", Allow{Users: []string{"root"}, Scope: Scope{Fleet: true}}, onHost("h-db-1"), true},
		{"scope fleet, agent", Allow{Users: []string{"root"}, Scope: Scope{Fleet: true}}, login, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			cfg.Allow = []Allow{{Users: []string{"nobody"}}, c.allow}
			d := newTestDetector(t, cfg, testLoc)
			f := observeOne(t, d, c.login)
			if (f == nil) != c.suppressed {
				t.Fatalf("suppressed = %v, want %v (finding %+v)", f == nil, c.suppressed, f)
			}
			if s := d.Stats(); c.suppressed && s.Suppressed != 1 || !c.suppressed && s.Findings != 1 {
				t.Errorf("stats %+v", s)
			}
			// Without the entry, the login is a finding.
			cfg.Allow = nil
			if observeOne(t, newTestDetector(t, cfg, testLoc), c.login) == nil {
				t.Error("the login is not a finding without the allowlist")
			}
		})
	}

	// Without a scope resolver, a group scope matches only the agent's own group.
	cfg := base()
	cfg.GroupOf = nil
	cfg.Allow = []Allow{{Scope: Scope{Groups: []string{"web"}}}}
	if observeOne(t, newTestDetector(t, cfg, testLoc), onHost("h-web-1")) == nil {
		t.Error("group scope matched a host of unknown group")
	}
}

func TestAllowValidate(t *testing.T) {
	for name, c := range map[string]struct {
		a    Allow
		want string
	}{
		"empty":             {Allow{Comment: "everything"}, "matches every login"},
		"fleet only":        {Allow{Scope: Scope{Fleet: true}}, "matches every login"},
		"fleet and hosts":   {Allow{Scope: Scope{Fleet: true, Hosts: []string{"h"}}}, "fleet together with hosts"},
		"empty user":        {Allow{Users: []string{""}}, "empty user name"},
		"empty host":        {Allow{Scope: Scope{Hosts: []string{""}}}, "empty host ID"},
		"empty group":       {Allow{Scope: Scope{Groups: []string{""}}}, "empty group name"},
		"invalid prefix":    {Allow{Sources: []netip.Prefix{{}}}, "invalid prefix"},
		"country name":      {Allow{Places: []Place{{Country: "Germany"}}}, "ISO 3166-1"},
		"no country":        {Allow{Places: []Place{{Province: "Bavaria"}}}, "ISO 3166-1"},
		"city, no province": {Allow{Places: []Place{{Country: "DE", City: "Munich"}}}, "needs its province"},
		"bad hours":         {Allow{Hours: &HourRange{Start: 60, End: 60}}, "whole day or nothing"},
	} {
		_, err := c.a.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want %q", name, err, c.want)
		}
		cfg := DefaultConfig()
		cfg.Allow = []Allow{c.a}
		if _, err := NewDetector(cfg, nil); err == nil || !strings.Contains(err.Error(), "allow[0]") {
			t.Errorf("%s: NewDetector = %v", name, err)
		}
	}
	a, err := Allow{Sources: []netip.Prefix{netip.MustParsePrefix("203.0.113.77/24")}, Places: []Place{{Country: "de"}}}.Validate()
	if err != nil || a.Sources[0].String() != "203.0.113.0/24" || a.Places[0].Country != "DE" {
		t.Errorf("normalised = %+v, %v", a, err)
	}
}

func TestNewDetectorErrors(t *testing.T) {
	for name, c := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"negative users":   {func(c *Config) { c.MaxUsers = -1 }, "max_users"},
		"negative sources": {func(c *Config) { c.MaxSourcesPerUser = -1 }, "max_sources_per_user"},
		"bad region":       {func(c *Config) { c.HomeRegions = []Place{{Country: "Deutschland"}} }, "home_regions"},
		"bad source":       {func(c *Config) { c.AllowedSources = []netip.Prefix{{}} }, "allowed_sources"},
		"bad hours":        {func(c *Config) { c.AllowedHours = &HourRange{Start: 0, End: 1440} }, "allowed_hours"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if _, err := NewDetector(cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: NewDetector = %v, want %q", name, err, c.want)
		}
	}
	d := newTestDetector(t, Config{}, nil)
	if w := d.Stats().Warnings; len(w) != 1 || !strings.Contains(w[0], "switched off") {
		t.Errorf("all rules off: warnings %q", w)
	}
	if f := observeOne(t, d, ssh("root", "203.0.113.5", monday03)); f != nil {
		t.Errorf("finding with all rules off: %+v", f)
	}
}

func TestNoGeoIP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HomeRegions = []Place{{Country: "DE"}}
	cfg.AllowedSources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	d := newTestDetector(t, cfg, nil)
	for i := range 10 {
		f := observeOne(t, d, ssh("alice", fmt.Sprintf("203.0.113.%d", i), monday10))
		if reasonsOf(f) != RuleSourceNotAllowed || f.Evidence.Fields["risk"] != RiskSuspicious {
			t.Fatalf("login %d: %+v", i, f)
		}
	}
	s := d.Stats()
	if !slices.Equal(s.Warnings, []string{NoGeoIPWarning}) || s.RegionSkipped != 10 {
		t.Errorf("stats %+v", s)
	}
	// No region in the configuration: no database needed, no warning.
	if w := newTestDetector(t, DefaultConfig(), nil).Stats().Warnings; len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	// Places in the allowlist need it too, and match nothing without it.
	cfg = DefaultConfig()
	cfg.Allow = []Allow{{Places: []Place{{Country: "CN"}}}}
	d = newTestDetector(t, cfg, nil)
	if w := d.Stats().Warnings; !slices.Equal(w, []string{NoGeoIPWarning}) {
		t.Errorf("warnings %q", w)
	}
	if observeOne(t, d, ssh("root", "203.0.113.5", monday10)) == nil {
		t.Error("a place allowlist entry matched without a database")
	}
}

func TestInvalidTime(t *testing.T) {
	d := newTestDetector(t, DefaultConfig(), testLoc)
	for _, at := range []time.Time{{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 12, 31, 23, 0, 0, 0, time.UTC)} {
		if fs := d.Observe(ssh("root", "203.0.113.5", at)); fs != nil {
			t.Errorf("finding for time %v: %+v", at, fs)
		}
	}
	if s := d.Stats(); s.Invalid != 3 || s.Logins != 3 || s.Users != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestMemoryBounds(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LearningPeriod = -1
	cfg.MaxUsers = 3
	cfg.MaxSourcesPerUser = 2
	cfg.Rules.RootLogin = false
	d := newTestDetector(t, cfg, nil)
	at := monday10
	next := func() time.Time { at = at.Add(time.Minute); return at }

	for i := range 5 {
		d.Observe(ssh(fmt.Sprintf("u%d", i), "198.51.100.1", next()))
	}
	if s := d.Stats(); s.Users != 3 || s.UsersEvicted != 2 || s.Sources != 3 {
		t.Errorf("after 5 users: %+v", s)
	}
	// u0 was forgotten: it starts afresh (its first login is learned, not reported).
	if f := observeOne(t, d, ssh("u0", "203.0.113.1", next())); f != nil {
		t.Errorf("forgotten user reported: %+v", f)
	}
	// u4 is still known: a new network is reported. Touching it keeps it from eviction.
	if f := observeOne(t, d, ssh("u4", "203.0.113.1", next())); f == nil {
		t.Error("known user's new network not reported")
	}
	d.Observe(ssh("u9", "198.51.100.1", next())) // evicts u3, the least recently seen
	if f := observeOne(t, d, ssh("u4", "192.0.2.1", next())); f == nil {
		t.Error("u4 was evicted though recently seen")
	}
	// u4 now has 198.51.100, 203.0.113 and 192.0.2 with a bound of 2: 198.51.100 was dropped.
	if s := d.Stats(); s.Users != 3 || s.SourcesEvicted != 1 {
		t.Errorf("stats %+v", s)
	}
	if f := observeOne(t, d, ssh("u4", "192.0.2.99", next())); f != nil {
		t.Errorf("kept network reported: %+v", f)
	}
	if f := observeOne(t, d, ssh("u4", "198.51.100.1", next())); f == nil {
		t.Error("evicted network not reported again")
	}

	// Many users, many networks: the bound holds.
	cfg.MaxUsers, cfg.MaxSourcesPerUser = 100, 4
	d = newTestDetector(t, cfg, nil)
	for i := range 2000 {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i % 7), 1})
		d.Observe(ssh(fmt.Sprintf("user-%d", i%300), src.String(), next()))
	}
	if s := d.Stats(); s.Users != 100 || s.Sources > 400 {
		t.Errorf("bounded stats %+v", s)
	}
}

func TestSnapshotRestore(t *testing.T) {
	cfg := DefaultConfig()
	t0 := monday10
	d := newTestDetector(t, cfg, testLoc)
	d.Observe(ssh("alice", "198.51.100.5", t0))
	d.Observe(ssh("alice", "2001:db8:0:1::5", t0.Add(time.Hour)))
	d.Observe(Login{Time: t0, User: "bob", Source: addr("203.0.113.5"), Host: "h-1"})
	d.Observe(ssh("carol", "192.0.2.1", t0.Add(2*time.Hour)))
	snap, err := d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	d2 := newTestDetector(t, cfg, testLoc)
	if err := d2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	snap2, err := d2.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if string(snap) != string(snap2) {
		t.Errorf("round trip differs:\n%s\n%s", snap, snap2)
	}
	if s := d2.Stats(); s.Users != 3 || s.Sources != 4 {
		t.Errorf("restored stats %+v", s)
	}
	// The learning clock survived: eight days on, alice's known networks are quiet and a new one is reported.
	later := t0.Add(8 * 24 * time.Hour)
	if f := observeOne(t, d2, ssh("alice", "198.51.100.99", later)); f != nil {
		t.Errorf("known network after restore: %+v", f)
	}
	if f := observeOne(t, d2, ssh("alice", "2001:db8:0:1::99", later)); f != nil {
		t.Errorf("known IPv6 network after restore: %+v", f)
	}
	if f := observeOne(t, d2, ssh("alice", "203.0.113.9", later)); reasonsOf(f) != RuleNewSource {
		t.Errorf("new network after restore: %+v", f)
	}
	if f := observeOne(t, d2, Login{Time: later, User: "bob", Source: addr("192.0.2.9"), Host: "h-1"}); reasonsOf(f) != RuleNewSource {
		t.Errorf("host-keyed user after restore: %+v", f)
	}

	// Restoring into smaller bounds keeps the most recent.
	small := cfg
	small.MaxUsers, small.MaxSourcesPerUser = 2, 1
	d3 := newTestDetector(t, small, testLoc)
	if err := d3.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if s := d3.Stats(); s.Users != 2 || s.Sources != 2 || s.UsersEvicted != 1 || s.SourcesEvicted != 1 {
		t.Errorf("bounded restore %+v", s)
	}
	// alice kept her latest network (the IPv6 one), and carol is the most recent user.
	if f := observeOne(t, d3, ssh("alice", "2001:db8:0:1::1", later)); f != nil {
		t.Errorf("alice's latest network lost: %+v", f)
	}

	// Bad snapshots are refused and leave the history as it was.
	for name, b := range map[string]string{
		"not JSON":      `{`,
		"version":       `{"version":2,"users":[]}`,
		"no time":       `{"version":1,"users":[{"user":"a","last_seen":"2026-01-01T00:00:00Z"}]}`,
		"duplicate":     `{"version":1,"users":[{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z"},{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z"}]}`,
		"wide network":  `{"version":1,"users":[{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z","sources":[{"net":"198.51.0.0/16"}]}]}`,
		"unmasked":      `{"version":1,"users":[{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z","sources":[{"net":"198.51.100.7/24"}]}]}`,
		"bad network":   `{"version":1,"users":[{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z","sources":[{"net":"nope"}]}]}`,
		"twice the net": `{"version":1,"users":[{"user":"a","first_seen":"2026-01-01T00:00:00Z","last_seen":"2026-01-01T00:00:00Z","sources":[{"net":"198.51.100.0/24"},{"net":"198.51.100.0/24"}]}]}`,
	} {
		if err := d2.Restore([]byte(b)); err == nil {
			t.Errorf("%s: restored", name)
		}
	}
	if s := d2.Stats(); s.Users != 3 {
		t.Errorf("history changed by a failed restore: %+v", s)
	}
	// An empty history restores to an empty engine.
	empty, _ := newTestDetector(t, cfg, nil).Snapshot()
	if err := d2.Restore(empty); err != nil || d2.Stats().Users != 0 {
		t.Errorf("empty restore: %v %+v", err, d2.Stats())
	}
}

func TestCovered(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HomeRegions = []Place{{Country: "DE"}}
	cfg.Host, cfg.Group = "h-agent", "db"
	cfg.GroupOf = func(h string) string { return map[string]string{"h-web-1": "web"}[h] }
	d := newTestDetector(t, cfg, testLoc)
	at := date("2026-05-04T23:30:00+02:00")
	f := observeOne(t, d, Login{Time: at, User: "root", Source: addr("203.0.113.5"), Service: "sshd", Host: "h-web-1"})
	if f == nil {
		t.Fatal("no finding")
	}
	local := observeOne(t, d, console("root", at))
	if local != nil {
		t.Fatalf("console root login is a finding: %+v", local)
	}
	pfx := netip.MustParsePrefix
	for _, c := range []struct {
		name string
		a    Allow
		want bool
	}{
		{"user", Allow{Users: []string{"root"}}, true},
		{"other user", Allow{Users: []string{"alice"}}, false},
		{"CIDR", Allow{Sources: []netip.Prefix{pfx("203.0.113.0/24")}}, true},
		{"other CIDR", Allow{Sources: []netip.Prefix{pfx("192.0.2.0/24")}}, false},
		{"country", Allow{Places: []Place{{Country: "CN"}}}, true},
		{"city", Allow{Places: []Place{{"CN", "Guangdong", "Shenzhen"}}}, true},
		{"other city", Allow{Places: []Place{{"CN", "Guangdong", "Guangzhou"}}}, false},
		{"hours", Allow{Hours: MustParseHourRange("22:00-06:00 Europe/Berlin")}, true},
		{"other hours", Allow{Hours: MustParseHourRange("08:00-19:00 Europe/Berlin")}, false},
		{"host", Allow{Scope: Scope{Hosts: []string{"h-web-1"}}}, true},
		{"other host", Allow{Scope: Scope{Hosts: []string{"h-agent"}}}, false},
		{"group", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"web"}}}, true},
		{"other group", Allow{Users: []string{"root"}, Scope: Scope{Groups: []string{"db"}}}, false},
		{"fleet", Allow{Users: []string{"root"}, Scope: Scope{Fleet: true}}, true},
		{"invalid entry", Allow{}, false},
	} {
		if got := d.Covered(c.a, *f); got != c.want {
			t.Errorf("%s: Covered = %v, want %v", c.name, got, c.want)
		}
	}
	// A finding stored without place fields is placed again when the entry needs it.
	g := *f
	g.Evidence.Fields = map[string]string{}
	if !d.Covered(Allow{Places: []Place{{Country: "CN"}}}, g) {
		t.Error("finding without place fields not placed again")
	}
	// Other engines' findings, and findings with a broken source, are never covered.
	other := *f
	other.RuleID = "bruteforce.ssh-password-guessing"
	if d.Covered(Allow{Users: []string{"root"}}, other) {
		t.Error("covered another engine's finding")
	}
	broken := *f
	broken.Evidence.SourceIP = "not an address"
	if d.Covered(Allow{Users: []string{"root"}}, broken) {
		t.Error("covered a finding with a broken source")
	}
	// Covered agrees with Observe: an entry covers a finding exactly when it would have
	// suppressed the login.
	cfg.Allow = []Allow{{Sources: []netip.Prefix{pfx("203.0.113.0/24")}, Scope: Scope{Groups: []string{"web"}}}}
	d2 := newTestDetector(t, cfg, testLoc)
	if fs := d2.Observe(Login{Time: at, User: "root", Source: addr("203.0.113.5"), Service: "sshd", Host: "h-web-1"}); len(fs) != 0 || !d.Covered(cfg.Allow[0], *f) {
		t.Error("Covered and Observe disagree")
	}
}

func TestConcurrentObserve(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LearningPeriod = -1
	cfg.MaxUsers = 50
	d := newTestDetector(t, cfg, testLoc)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				d.Observe(ssh(fmt.Sprintf("u%d", (w*500+i)%80), fmt.Sprintf("198.51.%d.1", i%50), monday10.Add(time.Duration(i)*time.Second)))
				if i%100 == 0 {
					if _, err := d.Snapshot(); err != nil {
						t.Error(err)
					}
					d.Stats()
				}
			}
		})
	}
	wg.Wait()
	if s := d.Stats(); s.Logins != 2000 || s.Users > 50 {
		t.Errorf("stats %+v", s)
	}
}
