package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Place is where a source address is, as a GeoIP database places it.
//
// Its text form is "CC[/Province[/City]]", e.g. "DE", "CN/Guangdong" or "DE/Bavaria/Munich";
// in YAML and JSON a place may also be written as an object {country, province, city}.
type Place struct {
	Country  string `json:"country" yaml:"country"`                       // ISO 3166-1 alpha-2 code, e.g. "DE"
	Province string `json:"province,omitempty" yaml:"province,omitempty"` // first-level subdivision, English name
	City     string `json:"city,omitempty" yaml:"city,omitempty"`         // English name
}

// ParsePlace reads the text form of a place.
func ParsePlace(s string) (Place, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) > 3 {
		return Place{}, fmt.Errorf("place %q: want COUNTRY[/PROVINCE[/CITY]], e.g. DE/Bavaria/Munich", s)
	}
	var p Place
	p.Country = strings.TrimSpace(parts[0])
	if len(parts) > 1 {
		p.Province = strings.TrimSpace(parts[1])
	}
	if len(parts) > 2 {
		p.City = strings.TrimSpace(parts[2])
	}
	if err := p.validate(); err != nil {
		return Place{}, fmt.Errorf("place %q: %w", s, err)
	}
	p.Country = strings.ToUpper(p.Country)
	return p, nil
}

// validate checks a place used in configuration: an ISO country code is required, the
// narrowing names are optional, and a city needs its province (city names repeat across
// provinces).
func (p Place) validate() error {
	if len(p.Country) != 2 || !isLetter(p.Country[0]) || !isLetter(p.Country[1]) {
		return fmt.Errorf("country %q is not an ISO 3166-1 alpha-2 code such as DE or CN", p.Country)
	}
	if p.City != "" && p.Province == "" {
		return fmt.Errorf("city %q needs its province too (e.g. DE/Bavaria/Munich)", p.City)
	}
	if strings.Contains(p.Province, "/") || strings.Contains(p.City, "/") {
		return errors.New(`names may not contain "/"`)
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// String returns the text form.
func (p Place) String() string {
	s := p.Country
	if p.Province != "" || p.City != "" {
		s += "/" + p.Province
	}
	if p.City != "" {
		s += "/" + p.City
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (p Place) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Place) UnmarshalText(b []byte) error {
	v, err := ParsePlace(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalJSON accepts the text form or an object {country, province, city}.
func (p *Place) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return p.UnmarshalText([]byte(s))
	}
	type plain Place
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	q := Place(v)
	if err := q.validate(); err != nil {
		return fmt.Errorf("place %s: %w", b, err)
	}
	q.Country = strings.ToUpper(q.Country)
	*p = q
	return nil
}

// covers reports whether the configured place p includes the located place q: the same
// country, and the same province and city where p names them. A name the database did not
// give cannot be confirmed, so it does not match.
func (p Place) covers(q Place) bool {
	return strings.EqualFold(p.Country, q.Country) &&
		(p.Province == "" || strings.EqualFold(p.Province, q.Province)) &&
		(p.City == "" || strings.EqualFold(p.City, q.City))
}

func anyPlaceCovers(ps []Place, q Place) bool {
	for _, p := range ps {
		if p.covers(q) {
			return true
		}
	}
	return false
}

// Scope limits an allowlist entry to some hosts. Hosts and Groups may be combined (a host
// matches if it is listed or is in a listed group); Fleet, and the zero Scope, mean every host.
type Scope struct {
	Hosts  []string `json:"hosts,omitempty" yaml:"hosts,omitempty"`   // host IDs
	Groups []string `json:"groups,omitempty" yaml:"groups,omitempty"` // host groups
	Fleet  bool     `json:"fleet,omitempty" yaml:"fleet,omitempty"`
}

func (s Scope) any() bool { return len(s.Hosts) == 0 && len(s.Groups) == 0 }

// Applies reports whether the scope covers the host with this ID in this group.
func (s Scope) Applies(host, group string) bool { return s.matches(host, group) }

func (s Scope) matches(host, group string) bool {
	if s.any() {
		return true
	}
	return host != "" && slices.Contains(s.Hosts, host) || group != "" && slices.Contains(s.Groups, group)
}

// Allow is one allowlist entry. Every field that is set must match a login for the entry to
// cover it; an empty field matches anything. An entry must set at least one of Users, Sources,
// Places, Hours, or a host or group scope: an entry that matches every login would silence the
// engine.
//
// A login without a source address (a console login) never matches an entry that sets Sources
// or Places, and a source the GeoIP database cannot place never matches Places.
type Allow struct {
	Users   []string       `json:"users,omitempty" yaml:"users,omitempty"`     // exact account names
	Sources []netip.Prefix `json:"sources,omitempty" yaml:"sources,omitempty"` // CIDRs; a bare address is a /32 or /128
	Places  []Place        `json:"places,omitempty" yaml:"places,omitempty"`   // Country required; Province and City narrow
	Hours   *HourRange     `json:"hours,omitempty" yaml:"hours,omitempty"`
	Scope   Scope          `json:"scope,omitzero" yaml:"scope,omitempty"`
	Comment string         `json:"comment,omitempty" yaml:"comment,omitempty"`
}

// Validate checks an entry and returns it normalised (prefixes masked, country codes upper-case).
func (a Allow) Validate() (Allow, error) {
	var errs []error
	if len(a.Users) == 0 && len(a.Sources) == 0 && len(a.Places) == 0 && a.Hours == nil && a.Scope.any() {
		errs = append(errs, errors.New("the entry matches every login on every host: set users, sources, places, hours or a host or group scope"))
	}
	if a.Scope.Fleet && !a.Scope.any() {
		errs = append(errs, errors.New("scope: fleet together with hosts or groups; choose one"))
	}
	for _, u := range a.Users {
		if u == "" {
			errs = append(errs, errors.New("users: empty user name"))
		}
	}
	for _, h := range a.Scope.Hosts {
		if h == "" {
			errs = append(errs, errors.New("scope: empty host ID"))
		}
	}
	for _, g := range a.Scope.Groups {
		if g == "" {
			errs = append(errs, errors.New("scope: empty group name"))
		}
	}
	out := a
	out.Sources = make([]netip.Prefix, 0, len(a.Sources))
	for _, p := range a.Sources {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("sources: invalid prefix %v", p))
			continue
		}
		out.Sources = append(out.Sources, normPrefix(p))
	}
	out.Places = make([]Place, 0, len(a.Places))
	for _, p := range a.Places {
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("places: %w", err))
			continue
		}
		p.Country = strings.ToUpper(p.Country)
		out.Places = append(out.Places, p)
	}
	if a.Hours != nil {
		if err := a.Hours.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hours: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Allow{}, err
	}
	return out, nil
}

// normPrefix masks a prefix and unmaps an IPv4-mapped IPv6 one, so that it compares with
// unmapped source addresses.
func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}

func anyPrefixContains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// subject is what an allowlist entry is matched against: a login as the engine saw it, or as
// a past finding recorded it.
type subject struct {
	user    string
	source  netip.Addr // unmapped, no zone; invalid for console logins
	place   Place
	located bool
	host    string
	group   string
	at      time.Time
}

// matches reports whether the (validated) entry covers s.
func (a *Allow) matches(s *subject) bool {
	if len(a.Users) > 0 && !slices.Contains(a.Users, s.user) {
		return false
	}
	if len(a.Sources) > 0 && (!s.source.IsValid() || !anyPrefixContains(a.Sources, s.source)) {
		return false
	}
	if len(a.Places) > 0 && (!s.located || !anyPlaceCovers(a.Places, s.place)) {
		return false
	}
	if a.Hours != nil && !a.Hours.Contains(s.at) {
		return false
	}
	return a.Scope.matches(s.host, s.group)
}
