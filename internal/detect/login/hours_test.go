package login

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseHourRange(t *testing.T) {
	for _, c := range []struct {
		in         string
		start, end int
		days       Weekdays
		zone       string
		canonical  string
	}{
		{"08:00-19:00", 8 * 60, 19 * 60, 0, "UTC", "08:00-19:00"},
		{"8:00-19:30", 8 * 60, 19*60 + 30, 0, "UTC", "08:00-19:30"},
		{"  Mon-Fri   08:00-19:00  Europe/Berlin ", 8 * 60, 19 * 60, 0b0111110, "Europe/Berlin", "Mon-Fri 08:00-19:00 Europe/Berlin"},
		{"Europe/Berlin 08:00-19:00 mon-fri", 8 * 60, 19 * 60, 0b0111110, "Europe/Berlin", "Mon-Fri 08:00-19:00 Europe/Berlin"},
		{"Monday-Friday 08:00-19:00 UTC", 8 * 60, 19 * 60, 0b0111110, "UTC", "Mon-Fri 08:00-19:00"},
		{"22:00-06:00", 22 * 60, 6 * 60, 0, "UTC", "22:00-06:00"},
		{"Sat,Sun 10:00-24:00 Asia/Shanghai", 10 * 60, 24 * 60, 0b1000001, "Asia/Shanghai", "Sat-Sun 10:00-24:00 Asia/Shanghai"},
		{"Fri-Mon 09:00-17:00", 9 * 60, 17 * 60, 0b1100011, "UTC", "Mon,Fri-Sun 09:00-17:00"},
		{"Mon,Wed,Fri 00:00-12:00 America/New_York", 0, 12 * 60, 0b0101010, "America/New_York", "Mon,Wed,Fri 00:00-12:00 America/New_York"},
		{"Mon-Sun 09:00-17:00", 9 * 60, 17 * 60, 0, "UTC", "09:00-17:00"},
		{"09:00-17:00 Etc/GMT-8", 9 * 60, 17 * 60, 0, "Etc/GMT-8", "09:00-17:00 Etc/GMT-8"},
	} {
		h, err := ParseHourRange(c.in)
		if err != nil {
			t.Errorf("ParseHourRange(%q): %v", c.in, err)
			continue
		}
		if h.Start != c.start || h.End != c.end || h.Days != c.days || h.loc().String() != c.zone {
			t.Errorf("ParseHourRange(%q) = %+v (zone %s)", c.in, h, h.loc())
		}
		if got := h.String(); got != c.canonical {
			t.Errorf("ParseHourRange(%q).String() = %q, want %q", c.in, got, c.canonical)
		}
	}
}

func TestParseHourRangeErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "empty hour range",
		"   ":                              "empty hour range",
		"8-19":                             "wants HH:MM-HH:MM",
		"08:00":                            "wants HH:MM-HH:MM",
		"08:00-":                           "not a time of day",
		"8am-7pm":                          "wants HH:MM-HH:MM",
		"25:00-26:00":                      "hours must be 00-23",
		"24:00-06:00":                      "24:00 only as an end",
		"08:60-09:00":                      "minutes must be 00-59",
		"08:0-09:00":                       "not a time of day",
		"08:00-08:00":                      "whole day or nothing",
		"00:00-24:00":                      "whole day or nothing",
		"Mon-Fry 08:00-19:00":              `unknown weekday "Fry"`,
		"Mon":                              "no time window",
		"08:00-19:00 Europe/Berln":         `unknown time zone "Europe/Berln"`,
		"08:00-19:00 Local":                `"Local" means each host's own zone`,
		"08:00-19:00 ../../etc/passwd":     "unknown time zone",
		"08:00-19:00 Europe":               "unknown time zone",
		"08:00-12:00 13:00-19:00":          "two time windows",
		"08:00-19:00 UTC Europe/Berlin":    "two time zones",
		"Mon-Wed Fri 08:00-19:00":          "two sets of weekdays",
		"Mon-Fri 08:00-19:00 Mars/Olympus": "unknown time zone",
	} {
		_, err := ParseHourRange(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHourRange(%q) error = %v; want it to contain %q", in, err, want)
		}
	}
}

func TestWeekdays(t *testing.T) {
	for in, want := range map[string]string{
		"Mon-Fri":         "Mon-Fri",
		"sun":             "Sun",
		"Sat,Sun":         "Sat-Sun",
		"Sun-Sat":         "",
		"Tue,Thu":         "Tue,Thu",
		"Thu-Tue":         "Mon-Tue,Thu-Sun",
		"Mon-Wed,Fri,Sun": "Mon-Wed,Fri,Sun",
		"Wed-Wed":         "Wed",
	} {
		w, err := ParseWeekdays(in)
		if err != nil {
			t.Errorf("ParseWeekdays(%q): %v", in, err)
			continue
		}
		if got := w.String(); got != want {
			t.Errorf("ParseWeekdays(%q).String() = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"", "Mo", "Mon-", "Monday-Fr", "Mon,,Tue", "Mondays"} {
		if _, err := ParseWeekdays(in); err == nil {
			t.Errorf("ParseWeekdays(%q) succeeded", in)
		}
	}
	var every Weekdays
	for d := time.Sunday; d <= time.Saturday; d++ {
		if !every.Has(d) {
			t.Errorf("zero Weekdays lacks %s", d)
		}
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestHourRangeContains(t *testing.T) {
	for _, c := range []struct {
		hr   string
		at   string
		want bool
	}{
		{"08:00-19:00", "2026-05-04T08:00:00Z", true}, // start is inside
		{"08:00-19:00", "2026-05-04T07:59:59Z", false},
		{"08:00-19:00", "2026-05-04T18:59:59Z", true},
		{"08:00-19:00", "2026-05-04T19:00:00Z", false}, // end is outside
		{"08:00-19:00", "2026-05-04T10:00:00+02:00", true},
		{"08:00-19:00", "2026-05-04T20:00:00+02:00", true},     // 18:00 UTC
		{"Mon-Fri 08:00-19:00", "2026-05-04T10:00:00Z", true},  // a Monday
		{"Mon-Fri 08:00-19:00", "2026-05-09T10:00:00Z", false}, // a Saturday
		{"10:00-24:00", "2026-05-04T23:59:59Z", true},
		{"10:00-24:00", "2026-05-05T00:00:00Z", false},
		// Overnight.
		{"22:00-06:00", "2026-05-04T22:00:00Z", true},
		{"22:00-06:00", "2026-05-04T23:30:00Z", true},
		{"22:00-06:00", "2026-05-05T00:00:00Z", true},
		{"22:00-06:00", "2026-05-05T05:59:00Z", true},
		{"22:00-06:00", "2026-05-05T06:00:00Z", false},
		{"22:00-06:00", "2026-05-05T12:00:00Z", false},
		{"22:00-06:00", "2026-05-05T21:59:00Z", false},
		// Overnight with weekdays: the window belongs to the day it opens.
		{"Fri 22:00-06:00", "2026-05-08T23:00:00Z", true},      // Friday night
		{"Fri 22:00-06:00", "2026-05-09T02:00:00Z", true},      // early Saturday: Friday's window
		{"Fri 22:00-06:00", "2026-05-09T23:00:00Z", false},     // Saturday night
		{"Fri 22:00-06:00", "2026-05-08T02:00:00Z", false},     // early Friday: Thursday's window
		{"Mon-Fri 22:00-06:00", "2026-05-04T02:00:00Z", false}, // early Monday: Sunday's window
		{"Mon-Fri 22:00-06:00", "2026-05-09T02:00:00Z", true},  // early Saturday: Friday's window
		{"Sun 22:00-06:00", "2026-05-04T02:00:00Z", true},      // week wraps: Sunday's window on Monday
		// Zones.
		{"09:00-18:00 Asia/Shanghai", "2026-05-04T01:00:00Z", true}, // 09:00 CST
		{"09:00-18:00 Asia/Shanghai", "2026-05-04T10:00:00Z", false},
	} {
		h, err := ParseHourRange(c.hr)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Contains(date(c.at)); got != c.want {
			t.Errorf("%q.Contains(%s) = %v, want %v", c.hr, c.at, got, c.want)
		}
	}
}

// Windows are wall-clock times in their zone: across Europe/Berlin's DST changes (2026-03-29
// 02:00 CET -> 03:00 CEST, 2026-10-25 03:00 CEST -> 02:00 CET) the UTC edges move by an hour.
func TestHourRangeDSTBerlin(t *testing.T) {
	day := MustParseHourRange("08:00-19:00 Europe/Berlin")
	night := MustParseHourRange("22:00-06:00 Europe/Berlin")
	for _, c := range []struct {
		h    *HourRange
		at   string
		want bool
	}{
		{day, "2026-03-28T06:30:00Z", false}, // 07:30 CET
		{day, "2026-03-28T07:30:00Z", true},  // 08:30 CET
		{day, "2026-03-28T17:30:00Z", true},  // 18:30 CET
		{day, "2026-03-29T06:30:00Z", true},  // 08:30 CEST, same UTC time as a day before
		{day, "2026-03-29T17:30:00Z", false}, // 19:30 CEST
		{day, "2026-03-29T16:59:59Z", true},  // 18:59:59 CEST
		{day, "2026-10-24T06:30:00Z", true},  // 08:30 CEST
		{day, "2026-10-25T06:30:00Z", false}, // 07:30 CET
		{day, "2026-10-25T17:30:00Z", true},  // 18:30 CET
		// The night window across the spring-forward gap.
		{night, "2026-03-28T20:59:00Z", false}, // 21:59 CET
		{night, "2026-03-28T21:00:00Z", true},  // 22:00 CET
		{night, "2026-03-29T00:59:00Z", true},  // 01:59 CET
		{night, "2026-03-29T01:00:00Z", true},  // 03:00 CEST
		{night, "2026-03-29T03:59:00Z", true},  // 05:59 CEST
		{night, "2026-03-29T04:00:00Z", false}, // 06:00 CEST
		{night, "2026-03-28T04:30:00Z", true},  // 05:30 CET the day before
		// And across fall-back: 02:30 happens twice, inside both times.
		{night, "2026-10-25T00:30:00Z", true}, // 02:30 CEST
		{night, "2026-10-25T01:30:00Z", true}, // 02:30 CET
		{night, "2026-10-25T04:59:00Z", true}, // 05:59 CET
		{night, "2026-10-25T05:00:00Z", false},
	} {
		if got := c.h.Contains(date(c.at)); got != c.want {
			t.Errorf("%s.Contains(%s) = %v, want %v", c.h, c.at, got, c.want)
		}
	}
}

func TestHourRangeValidate(t *testing.T) {
	for _, h := range []HourRange{
		{Start: -1, End: 10},
		{Start: 1440, End: 10},
		{Start: 0, End: 1441},
		{Start: 60, End: 60},
		{Start: 0, End: 1440},
		{Start: 0, End: 60, Days: 0x80},
	} {
		if h.Validate() == nil {
			t.Errorf("%+v validated", h)
		}
		if _, err := h.MarshalText(); err == nil {
			t.Errorf("%+v marshalled", h)
		}
	}
}

// Hour ranges, places and prefixes are strings in YAML and JSON configuration.
func TestConfigText(t *testing.T) {
	const doc = `
rules:
  source_not_allowed: true
  region_not_allowed: true
  outside_hours: false
  new_source: true
  root_login: true
allowed_sources: [198.51.100.0/24, "2001:db8::/32"]
home_regions:
  - DE
  - CN/Guangdong/Shenzhen
  - {country: us, province: California}
allowed_hours: Mon-Fri 08:00-19:00 Europe/Berlin
learning_period: 72h
allow:
  - users: [deploy]
    sources: [203.0.113.0/24]
    hours: 22:00-06:00 UTC
    scope: {groups: [web]}
    comment: nightly deploys
`
	cfg := DefaultConfig()
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Rules.OutsideHours || !cfg.Rules.NewSource || cfg.MaxUsers != DefaultMaxUsers {
		t.Errorf("rules or defaults lost: %+v", cfg)
	}
	if cfg.AllowedHours.String() != "Mon-Fri 08:00-19:00 Europe/Berlin" || cfg.LearningPeriod != 72*time.Hour {
		t.Errorf("hours %v learning %v", cfg.AllowedHours, cfg.LearningPeriod)
	}
	wantPlaces := []Place{{Country: "DE"}, {"CN", "Guangdong", "Shenzhen"}, {Country: "us", Province: "California"}}
	if len(cfg.HomeRegions) != 3 {
		t.Fatalf("home regions %+v", cfg.HomeRegions)
	}
	for i, p := range wantPlaces {
		if cfg.HomeRegions[i] != p {
			t.Errorf("home region %d = %+v, want %+v", i, cfg.HomeRegions[i], p)
		}
	}
	if len(cfg.Allow) != 1 || cfg.Allow[0].Hours.String() != "22:00-06:00" || cfg.Allow[0].Scope.Groups[0] != "web" || cfg.Allow[0].Sources[0].String() != "203.0.113.0/24" {
		t.Errorf("allow = %+v", cfg.Allow)
	}
	if _, err := NewDetector(cfg, nil); err != nil {
		t.Fatal(err)
	}
	// Back out as JSON and in again.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"allowed_hours":"Mon-Fri 08:00-19:00 Europe/Berlin"`) || !strings.Contains(string(b), `"CN/Guangdong/Shenzhen"`) {
		t.Errorf("JSON = %s", b)
	}
	var again Config
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if again.AllowedHours.String() != cfg.AllowedHours.String() || again.HomeRegions[2] != (Place{Country: "US", Province: "California"}) {
		t.Errorf("JSON round trip: %+v", again)
	}
	// Objects are accepted in JSON too, and errors are clear.
	var p Place
	if err := json.Unmarshal([]byte(`{"country":"cn","province":"Guangdong"}`), &p); err != nil || p != (Place{Country: "CN", Province: "Guangdong"}) {
		t.Errorf("place from object = %+v, %v", p, err)
	}
	for in, want := range map[string]string{
		`"Germany"`:                        "not an ISO 3166-1 alpha-2 code",
		`"DE//Munich"`:                     "needs its province",
		`"DE/a/b/c"`:                       "want COUNTRY[/PROVINCE[/CITY]]",
		`{"city":"Munich"}`:                "not an ISO 3166-1 alpha-2 code",
		`{"country":"DE","city":"Munich"}`: "needs its province",
	} {
		if err := json.Unmarshal([]byte(in), &p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("place %s: error %v, want %q", in, err, want)
		}
	}
	var h HourRange
	if err := yaml.Unmarshal([]byte(`08:00-25:00`), &h); err == nil || !strings.Contains(err.Error(), "hours must be 00-23") {
		t.Errorf("bad YAML hours: %v", err)
	}
}
