package login

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// benchLogins are logins from 1,000 accounts on the test database's networks (placed in DE,
// CN and US, plus private and unplaced addresses), spread over two weeks so that every rule
// fires on some of them.
func benchLogins(n int) []Login {
	nets := []string{"198.51.100.%d", "203.0.113.%d", "192.0.2.%d", "2001:db8::%x", "10.0.0.%d", "198.18.0.%d"}
	logins := make([]Login, n)
	t0 := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	for i := range logins {
		user := fmt.Sprintf("user%d", i%1000)
		if i%50 == 0 {
			user = "root"
		}
		logins[i] = Login{
			Time:    t0.Add(time.Duration(i) * 17 * time.Second),
			User:    user,
			Source:  netip.MustParseAddr(fmt.Sprintf(nets[i%len(nets)], 1+i%250)),
			Service: "sshd",
			Method:  "publickey",
			TTY:     "ssh",
		}
	}
	return logins
}

func benchConfig() Config {
	cfg := DefaultConfig()
	cfg.AllowedSources = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("10.0.0.0/8")}
	cfg.HomeRegions = []Place{{Country: "DE"}, {Country: "US", Province: "California"}}
	cfg.AllowedHours = MustParseHourRange("Mon-Fri 08:00-19:00 Europe/Berlin")
	cfg.LearningPeriod = 24 * time.Hour
	cfg.Allow = []Allow{
		{Users: []string{"user7", "user8"}, Sources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		{Places: []Place{{"CN", "Guangdong", "Guangzhou"}}, Hours: MustParseHourRange("22:00-06:00 Asia/Shanghai")},
	}
	return cfg
}

// BenchmarkObserve measures logins per second through the whole engine, with a GeoIP look-up
// in a City database for every login from a public address. "mixed" fires rules on most
// logins (so it includes building findings); "quiet" is everyday traffic from the home
// network that yields none.
func BenchmarkObserve(b *testing.B) {
	g := openTestGeoIP(b, "GeoIP2-City")
	quiet := benchLogins(1 << 16)
	for i := range quiet {
		quiet[i].User = fmt.Sprintf("user%d", i%1000)
		quiet[i].Source = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%250)})
	}
	for _, c := range []struct {
		name   string
		cfg    Config
		logins []Login
	}{
		{"mixed", benchConfig(), benchLogins(1 << 16)},
		{"quiet", Config{Rules: AllRules, HomeRegions: []Place{{Country: "DE"}}, AllowedSources: benchConfig().AllowedSources}, quiet},
	} {
		b.Run(c.name, func(b *testing.B) {
			d, err := NewDetector(c.cfg, g)
			if err != nil {
				b.Fatal(err)
			}
			findings, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				findings += len(d.Observe(c.logins[i%len(c.logins)]))
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "logins/s")
			b.ReportMetric(float64(findings)/float64(i), "findings/login")
		})
	}
}

// BenchmarkGeoIPLocate is the look-up alone.
func BenchmarkGeoIPLocate(b *testing.B) {
	g := openTestGeoIP(b, "GeoIP2-City")
	addrs := []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::1")}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := g.Locate(addrs[i%len(addrs)]); !ok {
			b.Fatal("not found")
		}
		i++
	}
}
