package login

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	// Zone names in hour ranges must resolve on every host, including minimal containers
	// without /usr/share/zoneinfo; the embedded copy is only used when the system has none.
	_ "time/tzdata"
)

// Weekdays is a set of days of the week: bit i is time.Weekday(i). The zero value means every day.
type Weekdays uint8

// AllWeekdays is the set of all seven days.
const AllWeekdays Weekdays = 1<<7 - 1

// Has reports whether d is in the set; the empty set has every day.
func (w Weekdays) Has(d time.Weekday) bool {
	return w == 0 || w&(1<<uint(d)) != 0
}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// String renders the set Monday first with runs folded, e.g. "Mon-Fri", "Mon,Wed,Sat-Sun";
// every day (and the zero value) is "".
func (w Weekdays) String() string {
	if w&AllWeekdays == 0 || w&AllWeekdays == AllWeekdays {
		return ""
	}
	// Monday-first order: Mon..Sat are 1..6, Sunday is 7.
	in := func(i int) bool { return w&(1<<uint(i%7)) != 0 }
	var parts []string
	for i := 1; i <= 7; {
		if !in(i) {
			i++
			continue
		}
		j := i
		for j+1 <= 7 && in(j+1) {
			j++
		}
		if j == i {
			parts = append(parts, dayNames[i%7])
		} else {
			parts = append(parts, dayNames[i%7]+"-"+dayNames[j%7])
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// parseDay reads a day name: its first three letters or the whole English name, any case.
func parseDay(s string) (time.Weekday, bool) {
	if len(s) < 3 {
		return 0, false
	}
	for i, n := range dayNames {
		if !strings.EqualFold(s[:3], n) {
			continue
		}
		full := time.Weekday(i).String()
		if len(s) == 3 || strings.EqualFold(s, full) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// ParseWeekdays reads a set of days such as "Mon-Fri", "Sat,Sun", "Mon-Wed,Fri" or
// "Fri-Mon" (a range may wrap over the week's end). Day names are their first three
// letters or the whole English name, in any case.
func ParseWeekdays(s string) (Weekdays, error) {
	if strings.TrimSpace(s) == "" {
		return 0, errors.New("empty set of weekdays")
	}
	var w Weekdays
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		from, to, isRange := strings.Cut(part, "-")
		a, ok := parseDay(strings.TrimSpace(from))
		if !ok {
			return 0, fmt.Errorf("unknown weekday %q in %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", from, s)
		}
		if !isRange {
			w |= 1 << uint(a)
			continue
		}
		b, ok := parseDay(strings.TrimSpace(to))
		if !ok {
			return 0, fmt.Errorf("unknown weekday %q in %q (want Mon, Tue, Wed, Thu, Fri, Sat or Sun)", to, s)
		}
		for d := a; ; d = (d + 1) % 7 {
			w |= 1 << uint(d)
			if d == b {
				break
			}
		}
	}
	if w == AllWeekdays {
		w = 0
	}
	return w, nil
}

// HourRange is a daily time window in a time zone, optionally on some weekdays only: the
// working hours during which logins are expected.
//
// Its text form, used in YAML and JSON, is "[DAYS ]HH:MM-HH:MM[ ZONE]", for example
// "08:00-19:00", "Mon-Fri 08:00-19:00 Europe/Berlin" or "22:00-06:00 Asia/Shanghai".
// A window whose end is not after its start runs overnight: "22:00-06:00" is 22:00 to
// midnight and midnight to 06:00. The end may be "24:00". Without a zone the window is in UTC.
//
// Times are compared as wall-clock times in the zone, so a window keeps its local meaning
// across daylight-saving changes. The weekdays are those on which the window starts: with
// "Fri 22:00-06:00" a login at 02:00 on Saturday is inside.
type HourRange struct {
	Start int // minutes after midnight, 0-1439
	End   int // minutes after midnight, 0-1440; exclusive; End <= Start means overnight
	// Days are the days on which the window opens; the zero value is every day.
	Days Weekdays
	// Location is the window's time zone; nil means UTC.
	Location *time.Location
}

// ParseHourRange reads the text form of an HourRange; see HourRange.
func ParseHourRange(s string) (HourRange, error) {
	var h HourRange
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return h, errors.New(`empty hour range (want e.g. "Mon-Fri 08:00-19:00 Europe/Berlin")`)
	}
	var sawDays, sawTimes, sawZone bool
	for _, f := range fields {
		switch {
		case strings.Contains(f, ":"):
			if sawTimes {
				return HourRange{}, fmt.Errorf("hour range %q has two time windows", s)
			}
			sawTimes = true
			from, to, ok := strings.Cut(f, "-")
			if !ok {
				return HourRange{}, fmt.Errorf("hour range %q: time window %q wants HH:MM-HH:MM, e.g. 08:00-19:00", s, f)
			}
			var err error
			if h.Start, err = parseClock(from, false); err != nil {
				return HourRange{}, fmt.Errorf("hour range %q: start: %w", s, err)
			}
			if h.End, err = parseClock(to, true); err != nil {
				return HourRange{}, fmt.Errorf("hour range %q: end: %w", s, err)
			}
		case f[0] >= '0' && f[0] <= '9':
			return HourRange{}, fmt.Errorf("hour range %q: time window %q wants HH:MM-HH:MM, e.g. 08:00-19:00", s, f)
		default:
			if w, err := ParseWeekdays(f); err == nil {
				if sawDays {
					return HourRange{}, fmt.Errorf("hour range %q has two sets of weekdays (write them as one, e.g. Mon-Wed,Fri)", s)
				}
				sawDays = true
				h.Days = w
				continue
			} else if !strings.Contains(f, "/") && strings.ContainsAny(f, ",-") {
				return HourRange{}, fmt.Errorf("hour range %q: %w", s, err)
			}
			if sawZone {
				return HourRange{}, fmt.Errorf("hour range %q has two time zones", s)
			}
			sawZone = true
			loc, err := loadZone(f)
			if err != nil {
				return HourRange{}, fmt.Errorf("hour range %q: %q is neither weekdays (e.g. Mon-Fri) nor a known time zone (e.g. Europe/Berlin): %w", s, f, err)
			}
			h.Location = loc
		}
	}
	if !sawTimes {
		return HourRange{}, fmt.Errorf("hour range %q has no time window (want HH:MM-HH:MM, e.g. 08:00-19:00)", s)
	}
	if err := h.Validate(); err != nil {
		return HourRange{}, fmt.Errorf("hour range %q: %w", s, err)
	}
	return h, nil
}

// MustParseHourRange is ParseHourRange for constants in code and tests; it panics on error.
func MustParseHourRange(s string) *HourRange {
	h, err := ParseHourRange(s)
	if err != nil {
		panic(err)
	}
	return &h
}

// parseClock reads "H:MM" or "HH:MM"; "24:00" only as an end.
func parseClock(s string, end bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !digits(hh) || !digits(mm) {
		return 0, fmt.Errorf("%q is not a time of day (want HH:MM, e.g. 08:00)", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	switch {
	case m > 59:
		return 0, fmt.Errorf("%q: minutes must be 00-59", s)
	case h == 24 && m == 0 && end:
		return 24 * 60, nil
	case h > 23:
		return 0, fmt.Errorf("%q: hours must be 00-23 (24:00 only as an end)", s)
	}
	return h*60 + m, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// loadZone loads an IANA zone name. "Local" is refused: the same configuration must mean the
// same hours on every host, whatever each one's local zone is.
func loadZone(name string) (*time.Location, error) {
	if strings.EqualFold(name, "Local") {
		return nil, errors.New(`time zone "Local" means each host's own zone; name the zone, e.g. Europe/Berlin or UTC`)
	}
	if strings.EqualFold(name, "UTC") {
		return time.UTC, nil
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+-", r)) {
			return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Berlin)", name)
		}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Berlin)", name)
	}
	return loc, nil
}

// Validate checks the fields of an HourRange built in code.
func (h HourRange) Validate() error {
	switch {
	case h.Start < 0 || h.Start >= 24*60:
		return fmt.Errorf("start %d is not a minute of the day (0-1439)", h.Start)
	case h.End < 0 || h.End > 24*60:
		return fmt.Errorf("end %d is not a minute of the day (0-1440)", h.End)
	case h.Start == h.End || h.Start == 0 && h.End == 24*60:
		return errors.New("the window covers the whole day or nothing: leave the hours unset for any time")
	case h.Days&^AllWeekdays != 0:
		return fmt.Errorf("weekday set %#x has bits beyond Saturday", uint8(h.Days))
	}
	return nil
}

func (h HourRange) loc() *time.Location {
	if h.Location == nil {
		return time.UTC
	}
	return h.Location
}

// Contains reports whether t falls inside the window, read as wall-clock time in its zone.
func (h HourRange) Contains(t time.Time) bool {
	lt := t.In(h.loc())
	m := lt.Hour()*60 + lt.Minute()
	day := lt.Weekday()
	if h.Start < h.End {
		return m >= h.Start && m < h.End && h.Days.Has(day)
	}
	if m >= h.Start { // evening part: the window opened today
		return h.Days.Has(day)
	}
	if m < h.End { // morning part: the window opened yesterday
		return h.Days.Has((day + 6) % 7)
	}
	return false
}

// String returns the text form that ParseHourRange reads.
func (h HourRange) String() string {
	var b strings.Builder
	if d := h.Days.String(); d != "" {
		b.WriteString(d)
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%02d:%02d-%02d:%02d", h.Start/60, h.Start%60, h.End/60, h.End%60)
	if l := h.loc(); l != time.UTC && l.String() != "UTC" {
		b.WriteByte(' ')
		b.WriteString(l.String())
	}
	return b.String()
}

// MarshalText implements encoding.TextMarshaler (YAML and JSON strings).
func (h HourRange) MarshalText() ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	return []byte(h.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HourRange) UnmarshalText(b []byte) error {
	v, err := ParseHourRange(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}
