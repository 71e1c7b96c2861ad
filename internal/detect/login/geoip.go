package login

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Locator places a source address. The engine takes this interface so that tests can fake it;
// GeoIP is the implementation over a MaxMind database. A Locator shared by goroutines that
// call Observe must be safe for concurrent use.
type Locator interface {
	// Locate returns where a is, or false when it cannot say (no database entry, or an
	// address that is not on the public internet).
	Locate(a netip.Addr) (Place, bool)
}

// GeoIP is a Locator over a GeoIP2 or GeoLite2 City or Country database (.mmdb), which the
// operator supplies. A Country database places addresses by country only. It is safe for
// concurrent use.
type GeoIP struct {
	mu  sync.RWMutex
	r   *maxminddb.Reader
	typ string
}

// OpenGeoIP opens a GeoIP2/GeoLite2 City or Country database. It refuses other MaxMind
// database types (ASN, ISP, Anonymous IP...), which have no location in them.
func OpenGeoIP(path string) (*GeoIP, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open GeoIP database %s: %w", path, err)
	}
	typ := r.Metadata.DatabaseType
	if !strings.Contains(typ, "City") && !strings.Contains(typ, "Country") && !strings.Contains(typ, "Enterprise") {
		_ = r.Close()
		return nil, fmt.Errorf("GeoIP database %s is of type %q: want a GeoIP2 or GeoLite2 City or Country database", path, typ)
	}
	return &GeoIP{r: r, typ: typ}, nil
}

// DatabaseType is the type named in the database's metadata, e.g. "GeoLite2-City".
func (g *GeoIP) DatabaseType() string {
	if g == nil {
		return ""
	}
	return g.typ
}

// geoRecord is the part of a GeoIP2 City/Country record the engine uses; the decoder skips
// the rest (other languages, geoname IDs, coordinates...).
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City struct {
		Names struct {
			EN string `maxminddb:"en"`
		} `maxminddb:"names"`
	} `maxminddb:"city"`
}

// Locate implements Locator. Private, loopback, link-local, shared (CGNAT), multicast and
// unspecified addresses are not looked up and return false, as do addresses the database has
// no country for. After Close it returns false.
func (g *GeoIP) Locate(a netip.Addr) (Place, bool) {
	if g == nil {
		return Place{}, false
	}
	a = a.Unmap().WithZone("")
	if !publicAddr(a) {
		return Place{}, false
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.r == nil {
		return Place{}, false
	}
	var rec geoRecord
	if err := g.r.Lookup(a).Decode(&rec); err != nil || rec.Country.ISOCode == "" {
		return Place{}, false
	}
	p := Place{Country: strings.ToUpper(rec.Country.ISOCode), City: rec.City.Names.EN}
	if len(rec.Subdivisions) > 0 {
		p.Province = rec.Subdivisions[0].Names.EN
	}
	return p, true
}

// Close releases the database. Locate returns false afterwards.
func (g *GeoIP) Close() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return nil
	}
	err := g.r.Close()
	g.r = nil
	return err
}

var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598 carrier-grade NAT

// publicAddr reports whether a may be on the public internet, so that a GeoIP look-up means
// something. Documentation ranges count as public: they are not routed, but tests use them.
func publicAddr(a netip.Addr) bool {
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !sharedAddressSpace.Contains(a)
}
