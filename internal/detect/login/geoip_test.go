package login

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// testNetworks are the networks of the test databases. 10.0.0.0/8 is in them on purpose:
// GeoIP must not look private addresses up even when a database has them.
var testNetworks = []struct {
	cidr  string
	place Place
}{
	{"198.51.100.0/24", Place{"DE", "Bavaria", "Munich"}},
	{"203.0.113.0/24", Place{"CN", "Guangdong", "Shenzhen"}},
	{"192.0.2.0/25", Place{"CN", "Guangdong", "Guangzhou"}},
	{"2001:db8::/32", Place{"US", "California", "San Jose"}},
	{"10.0.0.0/8", Place{"XX", "Nowhere", "Nothing"}},
}

// writeTestMMDB builds a small database of the given type ("GeoIP2-City", "GeoLite2-Country",
// ...) from testNetworks and returns its path. Country databases get the country only.
func writeTestMMDB(t testing.TB, dbType string) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Languages:               []string{"en"},
		RecordSize:              24,
		IncludeReservedNetworks: true, // the documentation ranges are reserved
		BuildEpoch:              time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	city := strings.Contains(dbType, "City")
	for _, n := range testNetworks {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country": mmdbtype.Map{
				"iso_code":   mmdbtype.String(n.place.Country),
				"geoname_id": mmdbtype.Uint32(1),
				"names":      mmdbtype.Map{"en": mmdbtype.String(n.place.Country + "-land"), "de": mmdbtype.String("x")},
			},
			"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		}
		if city {
			rec["subdivisions"] = mmdbtype.Slice{
				mmdbtype.Map{"iso_code": mmdbtype.String("XX"), "names": mmdbtype.Map{"en": mmdbtype.String(n.place.Province)}},
				mmdbtype.Map{"iso_code": mmdbtype.String("YY"), "names": mmdbtype.Map{"en": mmdbtype.String("Second level")}},
			}
			rec["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(n.place.City), "zh-CN": mmdbtype.String("城市")}}
			rec["location"] = mmdbtype.Map{"latitude": mmdbtype.Float64(1.5), "longitude": mmdbtype.Float64(2.5)}
		}
		if err := w.Insert(ipnet, rec); err != nil {
			t.Fatalf("insert %s: %v", n.cidr, err)
		}
	}
	// A network with no country (as for some satellite and anycast ranges).
	_, anon, _ := net.ParseCIDR("192.0.2.128/25")
	if err := w.Insert(anon, mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), dbType+".mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openTestGeoIP(t testing.TB, dbType string) *GeoIP {
	t.Helper()
	g, err := OpenGeoIP(writeTestMMDB(t, dbType))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func TestGeoIPLocateCity(t *testing.T) {
	for _, typ := range []string{"GeoIP2-City", "GeoLite2-City"} {
		t.Run(typ, func(t *testing.T) {
			g := openTestGeoIP(t, typ)
			if g.DatabaseType() != typ {
				t.Errorf("DatabaseType = %q", g.DatabaseType())
			}
			for _, c := range []struct {
				addr string
				want Place
				ok   bool
			}{
				{"198.51.100.7", Place{"DE", "Bavaria", "Munich"}, true},
				{"198.51.100.255", Place{"DE", "Bavaria", "Munich"}, true},
				{"::ffff:198.51.100.7", Place{"DE", "Bavaria", "Munich"}, true},
				{"203.0.113.200", Place{"CN", "Guangdong", "Shenzhen"}, true},
				{"192.0.2.1", Place{"CN", "Guangdong", "Guangzhou"}, true},
				{"2001:db8::1", Place{"US", "California", "San Jose"}, true},
				{"2001:db8:ffff::1%eth0", Place{"US", "California", "San Jose"}, true},
				{"192.0.2.200", Place{}, false}, // in the database, but without a country
				{"198.18.0.1", Place{}, false},  // not in the database
				{"2001:db9::1", Place{}, false},
				{"10.1.2.3", Place{}, false}, // private: never looked up, though the database has it
				{"127.0.0.1", Place{}, false},
				{"::1", Place{}, false},
				{"fe80::1", Place{}, false},
				{"fd00::1", Place{}, false},
				{"100.64.1.1", Place{}, false},
				{"224.0.0.1", Place{}, false},
				{"0.0.0.0", Place{}, false},
			} {
				got, ok := g.Locate(netip.MustParseAddr(c.addr))
				if got != c.want || ok != c.ok {
					t.Errorf("Locate(%s) = %+v, %v; want %+v, %v", c.addr, got, ok, c.want, c.ok)
				}
			}
			if _, ok := g.Locate(netip.Addr{}); ok {
				t.Error("Locate(invalid) = true")
			}
		})
	}
}

func TestGeoIPLocateCountry(t *testing.T) {
	g := openTestGeoIP(t, "GeoLite2-Country")
	for addr, want := range map[string]Place{
		"198.51.100.7":  {Country: "DE"},
		"203.0.113.9":   {Country: "CN"},
		"2001:db8::abc": {Country: "US"},
	} {
		if got, ok := g.Locate(netip.MustParseAddr(addr)); !ok || got != want {
			t.Errorf("Locate(%s) = %+v, %v; want %+v", addr, got, ok, want)
		}
	}
}

func TestOpenGeoIPErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a MaxMind database"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ path, want string }{
		"missing":  {filepath.Join(dir, "nope.mmdb"), "no such file"},
		"garbage":  {garbage, "open GeoIP database"},
		"empty":    {empty, "open GeoIP database"},
		"ASN type": {writeTestMMDB(t, "GeoLite2-ASN"), `type "GeoLite2-ASN"`},
	} {
		g, err := OpenGeoIP(c.path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: OpenGeoIP = %v, %v; want error containing %q", name, g, err, c.want)
		}
	}
}

func TestGeoIPClose(t *testing.T) {
	g, err := OpenGeoIP(writeTestMMDB(t, "GeoIP2-City"))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("198.51.100.7")
	if _, ok := g.Locate(a); !ok {
		t.Fatal("Locate before Close failed")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if p, ok := g.Locate(a); ok {
		t.Errorf("Locate after Close = %+v, true", p)
	}
	var nilG *GeoIP
	if _, ok := nilG.Locate(a); ok || nilG.Close() != nil || nilG.DatabaseType() != "" {
		t.Error("nil *GeoIP is not inert")
	}
	// A typed nil passed as the Locator is no database at all.
	cfg := DefaultConfig()
	cfg.HomeRegions = []Place{{Country: "DE"}}
	d, err := NewDetector(cfg, nilG)
	if err != nil {
		t.Fatal(err)
	}
	if w := d.Stats().Warnings; len(w) != 1 || w[0] != NoGeoIPWarning {
		t.Errorf("warnings with a nil *GeoIP = %q", w)
	}
}

// The engine over a real database: the region rule, the evidence fields and an allowlist
// entry by place.
func TestDetectorWithGeoIP(t *testing.T) {
	g := openTestGeoIP(t, "GeoIP2-City")
	cfg := DefaultConfig()
	cfg.HomeRegions = []Place{{Country: "DE"}, {Country: "US", Province: "California"}}
	cfg.Allow = []Allow{{Places: []Place{{Country: "CN", Province: "Guangdong", City: "Guangzhou"}}, Comment: "branch office"}}
	d, err := NewDetector(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		src    string
		reason string
	}{
		{"198.51.100.7", ""},
		{"2001:db8::7", ""},
		{"203.0.113.5", RuleRegionNotAllowed},
		{"192.0.2.5", ""}, // Guangzhou: allowlisted
		{"10.0.0.5", ""},  // private: not placed, so not outside
	} {
		fs := d.Observe(Login{Time: at, User: "alice", Source: netip.MustParseAddr(c.src), Service: "sshd", Method: "publickey"})
		if c.reason == "" {
			if len(fs) != 0 {
				t.Errorf("%s: unexpected finding %+v", c.src, fs[0])
			}
			continue
		}
		if len(fs) != 1 {
			t.Fatalf("%s: %d findings, want 1", c.src, len(fs))
		}
		f := fs[0]
		if f.RuleID != c.reason || f.Evidence.Fields["risk"] != RiskHigh {
			t.Errorf("%s: rule %s risk %s", c.src, f.RuleID, f.Evidence.Fields["risk"])
		}
		for k, v := range map[string]string{"country": "CN", "province": "Guangdong", "city": "Shenzhen"} {
			if f.Evidence.Fields[k] != v {
				t.Errorf("%s: field %s = %q, want %q", c.src, k, f.Evidence.Fields[k], v)
			}
		}
	}
	if s := d.Stats(); s.Suppressed != 1 || s.Findings != 1 || len(s.Warnings) != 0 {
		t.Errorf("stats = %+v", s)
	}
}
