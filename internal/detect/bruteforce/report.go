package bruteforce

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// printable returns s for a title, a dedup key or an action: as it is when it is short, valid
// UTF-8 and printable, otherwise quoted (which escapes NUL and control bytes) and cut to n bytes.
func printable(s string, n int) string {
	ok := utf8.ValidString(s) && len(s) <= n
	if ok {
		for _, r := range s {
			if !unicode.IsPrint(r) {
				ok = false
				break
			}
		}
	}
	if ok && s != "" {
		return s
	}
	q := strconv.QuoteToASCII(s)
	if len(q) > n {
		q = q[:n-4] + `..."`
	}
	return q
}

// Bounds on what the detector keeps: a user name, and a line of evidence.
const (
	maxUserLen  = 128
	maxKeptLine = 512
)

// cut returns at most n bytes of s, as a copy when it cuts so that the rest of s is not kept.
func cut(s string, n int) string {
	if len(s) > n {
		return strings.Clone(s[:n])
	}
	return s
}

func stamp3339(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

func span3339(from, to int64) string {
	d := time.Duration(max(to-from, 0)) * time.Millisecond
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// usersOf lists the actor's users in the order they first failed, at most maxEvidence, and how
// many of all those it keeps do not exist.
func (a *actor) usersOf() (names []string, invalid int) {
	us := slices.Clone(a.users)
	slices.SortFunc(us, func(x, y seenUser) int { return cmp.Compare(x.seq, y.seq) })
	for _, u := range us {
		if u.invalid {
			invalid++
		}
	}
	if len(us) > maxEvidence {
		us = us[len(us)-maxEvidence:]
	}
	for _, u := range us {
		names = append(names, cut(u.name, maxUserLen))
	}
	return names, invalid
}

func quotedList(names []string, n int) string {
	var b strings.Builder
	for i, s := range names {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(names)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(printable(s, 32))
	}
	return b.String()
}

func (d *Detector) base(rule string, sev finding.Severity, t int64, key string, mitre ...string) finding.Finding {
	return finding.Finding{
		RuleID:   rule,
		Category: finding.CategoryBruteForce,
		Severity: sev,
		Time:     time.UnixMilli(t).UTC(),
		DedupKey: key,
		MITRE:    mitre,
	}
}

func (d *Detector) guessingFinding(a *actor, e *Event, t int64) finding.Finding {
	ip := a.addr.String()
	ep := &a.guess
	users, invalid := a.usersOf()
	svc := serviceList(a.services)
	f := d.base(RuleGuessing, finding.SeverityHigh, t, ip, "T1110.001")
	f.Title = fmt.Sprintf("Password guessing on %s from %s: %d failures in %s", svc, ip, ep.count, span3339(ep.first, ep.last))
	if len(users) > 0 {
		f.Title += " for " + quotedList(users, 3)
	}
	f.Action = fmt.Sprintf("Block %s at the firewall; check that no login from it succeeded (last -i, auth log, rule %s) "+
		"and that the accounts it tried use keys or strong passwords.", ip, RuleSucceeded)
	f.Evidence = finding.Evidence{
		SourceIP: ip, Users: users, Count: min(ep.count, finding.MaxCount), Lines: a.lines.slice(),
		Fields: map[string]string{
			"service": svc, "first_seen": stamp3339(ep.first), "last_seen": stamp3339(ep.last),
			"distinct_users": strconv.Itoa(len(a.users)), "invalid_users": strconv.Itoa(invalid),
			"threshold": fmt.Sprintf("%d in %v", d.cfg.FailuresPerSource.Count, d.cfg.FailuresPerSource.Window),
		},
	}
	return f
}

func (d *Detector) enumerationFinding(a *actor, e *Event, t int64) finding.Finding {
	ip := a.addr.String()
	ep := &a.enum
	users, invalid := a.usersOf()
	svc := serviceList(a.services)
	f := d.base(RuleEnumeration, finding.SeverityHigh, t, ip, "T1110.001")
	f.Title = fmt.Sprintf("User enumeration on %s from %s: %d users tried in %s (%s)", svc, ip, ep.distinct,
		span3339(ep.first, ep.last), quotedList(users, 3))
	f.Action = fmt.Sprintf("Block %s at the firewall; of the users it tried, make sure none that exists has a weak "+
		"password, and turn off password logins where keys will do.", ip)
	f.Evidence = finding.Evidence{
		SourceIP: ip, Users: users, Count: min(ep.count, finding.MaxCount), Lines: a.lines.slice(),
		Fields: map[string]string{
			"service": svc, "first_seen": stamp3339(ep.first), "last_seen": stamp3339(ep.last),
			"distinct_users": strconv.Itoa(ep.distinct), "invalid_users": strconv.Itoa(invalid),
			"threshold": fmt.Sprintf("%d users in %v", d.cfg.EnumerationUsers.Count, d.cfg.EnumerationUsers.Window),
		},
	}
	return f
}

func (d *Detector) distributedFinding(acc *account, e *Event, t int64) finding.Finding {
	ep := &acc.ep
	user := printable(e.User, 200)
	svc := serviceList(acc.services)
	f := d.base(RuleDistributed, finding.SeverityHigh, t, user, "T1110.003")
	f.Title = fmt.Sprintf("Password spraying against %s on %s: %d sources in %s, each below the per-source threshold",
		printable(e.User, 64), svc, ep.distinct, span3339(ep.first, ep.last))
	var srcs []string
	w := d.cfg.DistributedSources.Window.Milliseconds()
	for _, s := range acc.srcs {
		if t-s.last <= w && !s.ok && len(srcs) < 20 {
			srcs = append(srcs, s.addr.String())
		}
	}
	f.Action = fmt.Sprintf("Account %s is being guessed from many addresses, so blocking them one by one will not stop it: "+
		"require keys or a second factor for it, restrict where it may log in from (AllowUsers, pg_hba.conf), or lock it "+
		"if unused; check rule %s for this account.", printable(e.User, 64), RuleSucceeded)
	f.Evidence = finding.Evidence{
		Users: []string{cut(e.User, maxUserLen)}, Count: min(ep.count, finding.MaxCount), Lines: acc.lines.slice(),
		Fields: map[string]string{
			"service": svc, "first_seen": stamp3339(ep.first), "last_seen": stamp3339(ep.last),
			"distinct_sources": strconv.Itoa(ep.distinct), "sources": strings.Join(srcs, ","),
			"threshold": fmt.Sprintf("%d sources in %v", d.cfg.DistributedSources.Count, d.cfg.DistributedSources.Window),
		},
	}
	return f
}

func (d *Detector) succeededFinding(a *actor, e *Event, t int64) finding.Finding {
	ep := a.guess
	if a.enum.active && a.enum.last >= ep.last || ep.count == 0 {
		ep = a.enum
	}
	user := printable(e.User, 64)
	var f finding.Finding
	lines := append(a.lines.slice(), cut(e.Line, finding.MaxLineLen))
	if len(lines) > maxEvidence {
		lines = lines[len(lines)-maxEvidence:]
	}
	fields := map[string]string{
		"service": e.Service, "user": cut(e.User, maxUserLen), "method": cut(e.Method, 64), "failures_before": strconv.Itoa(ep.count),
		"first_seen": stamp3339(ep.first), "last_seen": stamp3339(t),
	}
	if a.isLocal {
		key := printable(a.local.by+"@"+a.local.tty, 200)
		f = d.base(RuleSucceeded, finding.SeverityCritical, t, key, "T1110.001", "T1078")
		f.Title = fmt.Sprintf("%s by %s succeeded after %d failed password attempts at %s", e.Service,
			printable(a.local.by, 64), ep.count, printable(a.local.tty, 32))
		f.Action = fmt.Sprintf("Find out who is at %s as %s: if it is not that person, treat %s and the account it "+
			"switched to as compromised, end the session and change both passwords.",
			printable(a.local.tty, 32), printable(a.local.by, 64), printable(a.local.by, 64))
		fields["by"], fields["tty"] = cut(a.local.by, maxUserLen), cut(a.local.tty, 64)
		f.Evidence = finding.Evidence{Users: []string{cut(e.User, maxUserLen)}, Count: min(ep.count, finding.MaxCount), Lines: lines, Fields: fields}
		return f
	}
	ip := a.addr.String()
	f = d.base(RuleSucceeded, finding.SeverityCritical, t, ip, "T1110.001", "T1078")
	f.Title = fmt.Sprintf("Login as %s on %s accepted from %s after %d failed attempts", user, e.Service, ip, ep.count)
	f.Action = fmt.Sprintf("Treat account %s as compromised: end its sessions from %s, change its password or keys, "+
		"look for persistence (authorized_keys, cron, new users, services), and block %s.", user, ip, ip)
	f.Evidence = finding.Evidence{SourceIP: ip, Users: []string{cut(e.User, maxUserLen)}, Count: min(ep.count, finding.MaxCount), Lines: lines, Fields: fields}
	return f
}

func (d *Detector) localFinding(a *actor, e *Event, t int64) finding.Finding {
	ep := &a.guess
	users, _ := a.usersOf()
	key := printable(a.local.by+"@"+a.local.tty, 200)
	svc := serviceList(a.services)
	f := d.base(RuleLocalAuth, finding.SeverityHigh, t, key, "T1110.001")
	f.Title = fmt.Sprintf("%s password guessing by %s at %s: %d failures in %s", svc, printable(a.local.by, 64),
		printable(a.local.tty, 32), ep.count, span3339(ep.first, ep.last))
	if len(users) > 0 {
		f.Title += " for " + quotedList(users, 3)
	}
	f.Action = fmt.Sprintf("Ask the person behind %s whether this was them; if not, the account %s is in someone "+
		"else's hands: lock it, end its sessions and look at what it ran.", printable(a.local.by, 64), printable(a.local.by, 64))
	f.Evidence = finding.Evidence{
		Users: users, Count: min(ep.count, finding.MaxCount), Lines: a.lines.slice(),
		Fields: map[string]string{
			"service": svc, "by": cut(a.local.by, maxUserLen), "tty": cut(a.local.tty, 64),
			"first_seen": stamp3339(ep.first), "last_seen": stamp3339(ep.last),
			"threshold": fmt.Sprintf("%d in %v", d.cfg.LocalFailures.Count, d.cfg.LocalFailures.Window),
		},
	}
	return f
}
