package behavior

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Allow suppresses findings of known-good activity on a group of hosts. An entry applies to a
// finding when every criterion it sets holds (fields it leaves empty are not checked), and a
// criterion holds when any of its values does. The entry is checked against the event that
// completed the match: for a sequence, its last step.
type Allow struct {
	// Rules are rule IDs or globs over them ("behavior.miner-*", "sigma.*"); empty means all.
	Rules []string `json:"rules,omitempty"`
	// Exe are globs over the process's executable ("/opt/backup/bin/*"). In globs "*" matches
	// any run of characters, "/" included, and "?" one character.
	Exe []string `json:"exe,omitempty"`
	// Paths are globs over the changed file of file events ("/etc/cron.d/certbot").
	Paths []string `json:"paths,omitempty"`
	// Cmdline are regular expressions (RE2) searched in the process's command line.
	Cmdline []string `json:"cmdline,omitempty"`
	// Users are numeric uids or user names, matched against the process's real uid and its
	// login uid (auid). Names are resolved on each host with Config.LookupUser; on a host
	// without the user the entry does not match.
	Users []string `json:"users,omitempty"`
	// Parents are the parent process's executable globs (with a "/") or base names ("ansible").
	Parents []string `json:"parents,omitempty"`
	// Comment says why the activity is allowed; required, so that every exception explains itself.
	Comment string `json:"comment"`
}

// userName is what useradd accepts (with the trailing $ of machine accounts).
var userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}\$?$`)

var ruleIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$`)

type allowEntry struct {
	rules   []glob
	exe     []glob
	paths   []glob
	cmdline []*regexp.Regexp
	uids    []uint32
	users   bool // a users criterion is set, even if no name resolved on this host
	pexe    []glob
	pnames  []string
}

// Validate reports every problem of the entry, naming the field and value.
func (a *Allow) Validate() error {
	_, err := a.compile(nil)
	return err
}

func (a *Allow) compile(lookup func(string) (uint32, bool)) (allowEntry, error) {
	var errs []error
	var x allowEntry
	if strings.TrimSpace(a.Comment) == "" {
		errs = append(errs, errors.New("comment is missing: say why this activity is allowed"))
	}
	if len(a.Exe)+len(a.Paths)+len(a.Cmdline)+len(a.Users)+len(a.Parents)+len(a.Rules) == 0 {
		errs = append(errs, errors.New("no criteria: an entry needs rules, exe, paths, cmdline, users or parents"))
	}
	for _, r := range a.Rules {
		if r == "" || strings.ContainsAny(r, " \t") {
			errs = append(errs, fmt.Errorf("rules: %q is not a rule ID or glob", r))
		}
		x.rules = append(x.rules, compileGlob(r))
	}
	for _, p := range a.Exe {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			errs = append(errs, fmt.Errorf("exe: %q must be an absolute path glob (start with / or *)", p))
		}
		x.exe = append(x.exe, compileGlob(p))
	}
	for _, p := range a.Paths {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			errs = append(errs, fmt.Errorf("paths: %q must be an absolute path glob (start with / or *)", p))
		}
		x.paths = append(x.paths, compileGlob(p))
	}
	for _, c := range a.Cmdline {
		re, err := regexp.Compile(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("cmdline: %q: %v", c, err))
			continue
		}
		x.cmdline = append(x.cmdline, re)
	}
	for _, u := range a.Users {
		if n, err := strconv.ParseUint(u, 10, 32); err == nil {
			x.uids = append(x.uids, uint32(n))
			continue
		}
		if u == "root" {
			x.uids = append(x.uids, 0)
			continue
		}
		if !userName.MatchString(u) {
			errs = append(errs, fmt.Errorf("users: %q is neither a uid nor a user name", u))
			continue
		}
		// A name is resolved on each host; where it does not exist the entry cannot match
		// (x.users stays set, so an unresolved criterion never widens the entry).
		x.users = true
		if lookup == nil {
			continue
		}
		if uid, ok := lookup(u); ok {
			x.uids = append(x.uids, uid)
		}
	}
	if len(x.uids) > 0 {
		x.users = true
	}
	for _, p := range a.Parents {
		switch {
		case p == "":
			errs = append(errs, errors.New("parents: empty name"))
		case strings.Contains(p, "/"):
			x.pexe = append(x.pexe, compileGlob(p))
		default:
			x.pnames = append(x.pnames, p)
		}
	}
	return x, errors.Join(errs...)
}

func compileAllow(list []Allow, lookup func(string) (uint32, bool)) ([]allowEntry, error) {
	var errs []error
	var out []allowEntry
	for i := range list {
		x, err := list[i].compile(lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("allow[%d] (%s): %w", i, list[i].Comment, err))
			continue
		}
		out = append(out, x)
	}
	return out, errors.Join(errs...)
}

func (e *Engine) allowed(r *Rule, c *evalCtx) bool {
	for i := range e.allow {
		if e.allow[i].applies(r, c) {
			return true
		}
	}
	return false
}

func anyGlob(gs []glob, s string) bool {
	for i := range gs {
		if gs[i].match(s) {
			return true
		}
	}
	return false
}

func (x *allowEntry) applies(r *Rule, c *evalCtx) bool {
	ev := c.ev
	if len(x.rules) > 0 && !anyGlob(x.rules, r.ID) {
		return false
	}
	if len(x.exe) > 0 && !anyGlob(x.exe, ev.Proc.Exe) {
		return false
	}
	if len(x.paths) > 0 && (ev.File == nil || !anyGlob(x.paths, ev.File.Path)) {
		return false
	}
	if len(x.cmdline) > 0 {
		cmd, ok := c.procCmdline(), false
		for _, re := range x.cmdline {
			if re.MatchString(cmd) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if x.users {
		ok := false
		for _, u := range x.uids {
			if ev.Proc.UID == u || ev.Proc.AUID == u {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(x.pexe)+len(x.pnames) > 0 {
		if len(ev.Ancestors) == 0 {
			return false
		}
		par := &ev.Ancestors[0]
		name := par.Name()
		ok := anyGlob(x.pexe, par.Exe)
		for _, n := range x.pnames {
			ok = ok || n == name
		}
		if !ok {
			return false
		}
	}
	return true
}
