package login

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// FuzzParseHourRange: parsing never panics, and what parses prints to a form that parses to
// the same window.
func FuzzParseHourRange(f *testing.F) {
	for _, s := range []string{
		"08:00-19:00", "Mon-Fri 08:00-19:00 Europe/Berlin", "22:00-06:00", "Fri-Mon 00:00-24:00 UTC",
		"Sat,Sun 10:00-12:00 Asia/Shanghai", "8-19", "25:00-01:00", "Mon-Fry 08:00-19:00",
		"08:00-19:00 Local", "08:00-19:00 ../etc", "monday 9:30-17:45 America/New_York", "09:00-17:00 Etc/GMT+5",
	} {
		f.Add(s, int64(1777888800))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		h, err := ParseHourRange(s)
		if err != nil {
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("ParseHourRange(%q) = %+v, which does not validate: %v", s, h, err)
		}
		text, err := h.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%+v): %v", h, err)
		}
		var h2 HourRange
		if err := h2.UnmarshalText(text); err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, text, err)
		}
		if h2.Start != h.Start || h2.End != h.End || h2.Days != h.Days || h2.loc().String() != h.loc().String() {
			t.Fatalf("%q -> %+v -> %q -> %+v", s, h, text, h2)
		}
		if h2.String() != string(text) {
			t.Fatalf("%q is not canonical: prints as %q", text, h2.String())
		}
		at := time.Unix(unix%(1<<40), 0)
		if h.Contains(at) != h2.Contains(at) {
			t.Fatalf("%q and %q disagree at %v", s, text, at)
		}
	})
}

// FuzzObserve: fuzzed logins never panic, and every finding is one the console accepts.
func FuzzObserve(f *testing.F) {
	f.Add(int64(1777888800), int64(0), 0, "root", []byte{203, 0, 113, 5}, "", "sshd", "password", "ssh", "", int64(3600), "alice")
	f.Add(int64(1777888800), int64(5), 7200, "alice", []byte{198, 51, 100, 5}, "", "sshd", "publickey", "", "h-1", int64(8*86400), "alice")
	f.Add(int64(-62135596800), int64(0), -3600, "", []byte{}, "", "login", "", "tty1", "", int64(0), "root")
	f.Add(int64(253402300799), int64(999999999), 50400, "\x00é\xff", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "eth0", "\x00", "\xff", "\x1b", "\x00", int64(-86400), "")
	f.Add(int64(1777888800), int64(0), 0, "bob", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}, "", "sshd", "", "", "", int64(1), "bob")

	g := openTestGeoIP(f, "GeoIP2-City")
	cfg := DefaultConfig()
	cfg.AllowedSources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	cfg.HomeRegions = []Place{{Country: "DE"}, {"CN", "Guangdong", "Shenzhen"}}
	cfg.AllowedHours = MustParseHourRange("Mon-Fri 22:00-06:00 Europe/Berlin")
	cfg.LearningPeriod = time.Hour
	cfg.MaxUsers, cfg.MaxSourcesPerUser = 64, 4
	cfg.HighRiskIPs = func(a netip.Addr) bool { return a.Is4() && a.As4()[3] == 66 }
	cfg.Host, cfg.Group = "h-1", "web"
	cfg.GroupOf = func(h string) string { return h + "-group" }
	cfg.Allow = []Allow{
		{Users: []string{"deploy"}, Sources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}},
		{Places: []Place{{"US", "California", ""}}, Hours: MustParseHourRange("Sat-Sun 10:00-12:00 America/Los_Angeles")},
		{Scope: Scope{Groups: []string{"x-group"}}},
	}
	d, err := NewDetector(cfg, g)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int, user string, ip []byte, zone, service, method, tty, host string, later int64, user2 string) {
		var src netip.Addr
		switch len(ip) {
		case 4:
			src = netip.AddrFrom4([4]byte(ip))
		case 16:
			src = netip.AddrFrom16([16]byte(ip))
			if zone != "" {
				src = src.WithZone(zone)
			}
		}
		at := time.Unix(sec, nsec).In(time.FixedZone("fuzz", offset%(30*3600)))
		logins := []Login{
			{Time: at, User: user, Source: src, Service: service, Method: method, TTY: tty, Host: host},
			{Time: at.Add(time.Duration(later)), User: user2, Source: src, Service: service, Host: host},
		}
		for _, l := range logins {
			fs := d.Observe(l)
			if len(fs) > 1 {
				t.Fatalf("%d findings for one login", len(fs))
			}
			for _, fd := range fs {
				fd.ID = finding.NewID()
				if err := fd.Validate(); err != nil {
					t.Fatalf("invalid finding for %+v: %v\n%+v", l, err, fd)
				}
				if _, err := json.Marshal(fd); err != nil {
					t.Fatalf("finding does not marshal: %v", err)
				}
				if !d.Covered(Allow{Users: fd.Evidence.Users, Sources: []netip.Prefix{netip.PrefixFrom(normAddr(src), normAddr(src).BitLen())}}, fd) && fd.Evidence.SourceIP != "" && len(fd.Evidence.Users) == 1 && fd.Evidence.Users[0] == user {
					t.Fatalf("an entry for its own user and source does not cover %+v", fd)
				}
			}
		}
		snap, err := d.Snapshot()
		if err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		d2, _ := NewDetector(cfg, nil)
		if err := d2.Restore(snap); err != nil {
			t.Fatalf("Restore of our own snapshot: %v", err)
		}
	})
}
