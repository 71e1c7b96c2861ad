package agent

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-cwpp/palisade/internal/agent/source"
	"github.com/palisade-cwpp/palisade/internal/detect/bruteforce"
	"github.com/palisade-cwpp/palisade/internal/detect/login"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
)

// AuthConfig says where the agent reads authentication data. Detection settings come from the
// console's policy; these are the host's own paths.
type AuthConfig struct {
	// Disabled turns the authentication sources off.
	Disabled bool
	// Logs are text logs to follow. Default: /var/log/auth.log and /var/log/secure, the ones
	// that exist (Debian/Ubuntu, RHEL family).
	Logs []string
	// Journal follows the systemd journal. Default: on when none of Logs exists.
	Journal *bool
	// Btmp feeds failed logins when no text log or journal is available (they would count
	// every failure twice otherwise). Default /var/log/btmp.
	Btmp string
	// Wtmp feeds successful logins to the abnormal-login engine. Default /var/log/wtmp; when it
	// is unavailable, accepted-login log lines are used instead.
	Wtmp string
	// GeoIP is a GeoIP2 or GeoLite2 City or Country database (.mmdb) for region rules.
	GeoIP string
	// FromStart reads existing log content on the first run (tests, replays); by default only
	// new lines are read.
	FromStart bool
}

func (c *AuthConfig) defaults() {
	if c.Logs == nil {
		for _, p := range []string{"/var/log/auth.log", "/var/log/secure"} {
			if _, err := os.Stat(p); err == nil {
				c.Logs = append(c.Logs, p)
			}
		}
	}
	if c.Journal == nil {
		on := len(c.Logs) == 0
		c.Journal = &on
	}
	if c.Btmp == "" {
		c.Btmp = "/var/log/btmp"
	}
	if c.Wtmp == "" {
		c.Wtmp = "/var/log/wtmp"
	}
}

const sourcesFile = "sources.json"
const loginHistoryFile = "login-history.json"

// authPipeline runs the brute-force and abnormal-login engines over the host's authentication
// sources. Sources call in from their own goroutines; mu serialises the engines, so a source's
// saved position never runs ahead of what the engines have seen.
type authPipeline struct {
	a   *Agent
	cfg AuthConfig
	geo *login.GeoIP

	mu         sync.Mutex
	brute      *bruteforce.Detector
	logins     *login.Detector
	bruteOn    bool
	loginOn    bool
	wtmpOK     bool // wtmp is being followed: accepted log lines then feed only brute force
	tailers    []*source.Tailer
	wtmp, btmp *source.UtmpFollower
	journal    *source.Journal
	forged     atomic.Uint64 // journal entries whose sender is not the program they name
}

// commAliases are the kernel command names that may log under an identifier besides the
// identifier itself (the last element of its path, cut to the kernel's 15 characters).
var commAliases = map[string][]string{
	"sshd":     {"sshd-session", "sshd-auth"},
	"dovecot":  {"auth", "imap-login", "pop3-login", "imap", "pop3", "submission-logi"},
	"mysqld":   {"mariadbd"},
	"mariadb":  {"mariadbd", "mysqld"},
	"postgres": {"postmaster"},
}

// genuine reports whether a journal entry comes from the program it names. journald sets _COMM
// from the kernel, while SYSLOG_IDENTIFIER is the sender's word: "logger -t sshd" by any local
// user would otherwise feed forged failures to the engines and get addresses blocked. Entries
// without _COMM (old journals) are taken as they are.
func genuine(je source.JournalEntry) bool {
	if je.Comm == "" {
		return true
	}
	want := je.Identifier
	if i := strings.LastIndexByte(want, '/'); i >= 0 {
		want = want[i+1:]
	}
	if len(want) > 15 {
		want = want[:15]
	}
	return je.Comm == want || slices.Contains(commAliases[je.Identifier], je.Comm)
}

// runAuth starts the authentication sources and engines; it returns when ctx ends.
func (a *Agent) runAuth(ctx context.Context) {
	cfg := a.cfg.Auth
	if cfg.Disabled {
		return
	}
	cfg.defaults()
	p := &authPipeline{a: a, cfg: cfg}
	if cfg.GeoIP != "" {
		g, err := login.OpenGeoIP(cfg.GeoIP)
		if err != nil {
			a.health.set(finding.ComponentState{Name: "geoip", Kind: "source", State: finding.StateUnavailable, Reason: err.Error()})
		} else {
			p.geo = g
			defer g.Close()
			a.health.set(finding.ComponentState{Name: "geoip", Kind: "source", State: finding.StateRunning, Reason: g.DatabaseType()})
		}
	}
	a.OnPolicy(p.configure)
	p.run(ctx)
}

// configure rebuilds the engines for a policy, keeping what the login engine learned.
func (p *authPipeline) configure(pol policy.Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bruteOn, p.loginOn = pol.BruteForce.Enabled, pol.Login.Enabled
	bc, err := pol.BruteForce.EngineConfig()
	if err == nil {
		p.brute, err = bruteforce.NewDetector(bc)
	}
	p.engineState("bruteforce", p.bruteOn, err)
	lc := pol.Login.EngineConfig()
	lc.Host = p.a.id.HostID
	var history []byte
	if p.logins != nil {
		history, _ = p.logins.Snapshot()
	} else {
		history, _ = os.ReadFile(filepath.Join(p.a.cfg.DataDir, loginHistoryFile))
	}
	var loc login.Locator
	if p.geo != nil {
		loc = p.geo
	}
	d, err := login.NewDetector(lc, loc)
	if err == nil && len(history) > 0 {
		if rerr := d.Restore(history); rerr != nil {
			p.a.log.Warn("login history unusable; learning again", "err", rerr)
		}
	}
	if err == nil {
		p.logins = d
	}
	p.engineState("login", p.loginOn, err)
}

func (p *authPipeline) engineState(name string, on bool, err error) {
	cs := finding.ComponentState{Name: name, Kind: "engine", State: finding.StateRunning}
	switch {
	case err != nil:
		cs.State, cs.Reason = finding.StateUnavailable, "configuration: "+err.Error()
	case !on:
		cs.State, cs.Reason = finding.StateUnavailable, "switched off by policy"
	}
	p.a.health.set(cs)
}

func (p *authPipeline) run(ctx context.Context) {
	states, err := source.LoadStates(filepath.Join(p.a.cfg.DataDir, sourcesFile))
	if err != nil {
		p.a.log.Warn("saved source positions unusable; following from now", "err", err)
	}
	opt := func(name string) source.TailOptions {
		return source.TailOptions{FromStart: p.cfg.FromStart, Name: name, Status: p.a.SetComponent}
	}
	var wg sync.WaitGroup
	start := func(name string, run func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil && ctx.Err() == nil {
				p.a.health.set(source.ComponentStateOf(name, err))
				p.a.log.Warn("source stopped", "source", name, "err", err)
			}
		}()
	}
	// wtmp first: whether it runs decides, before any log line is read, that accepted-login
	// lines feed only the brute-force engine.
	if w, err := source.OpenUtmp(p.cfg.Wtmp, source.FindState(states, p.cfg.Wtmp), opt("wtmp")); err != nil {
		p.a.health.set(source.ComponentStateOf("wtmp", err))
	} else {
		p.mu.Lock()
		p.wtmp, p.wtmpOK = w, true
		p.mu.Unlock()
		start("wtmp", func() error { return w.Run(ctx, func(r source.UtmpRecord) error { p.wtmpRecord(ctx, r); return nil }) })
	}
	textSources := 0
	for _, path := range p.cfg.Logs {
		t, err := source.OpenTail(path, source.FindState(states, path), opt("file:"+path))
		if err != nil {
			p.a.health.set(source.ComponentStateOf("file:"+path, err))
			continue
		}
		p.tailers = append(p.tailers, t)
		textSources++
		parser := &bruteforce.Parser{Year: time.Now().Year(), Location: time.Local}
		start("file:"+path, func() error {
			return t.Run(ctx, func(l source.Line) error {
				if e, ok := parser.ParseLine(l.Text); ok {
					p.observe(ctx, e)
				}
				return nil
			})
		})
	}
	if *p.cfg.Journal {
		j, err := source.OpenJournal(source.JournalOptions{Cursor: journalCursor(states), Status: p.a.SetComponent})
		if err != nil {
			p.a.health.set(source.ComponentStateOf("journal", err))
		} else {
			p.journal = j
			textSources++
			parser := &bruteforce.Parser{}
			start("journal", func() error {
				return j.Run(ctx, func(je source.JournalEntry) error {
					if !genuine(je) {
						p.forged.Add(1)
						return nil
					}
					if e, ok := parser.ParseMessage(je.Identifier, je.PID, je.Message, je.Time); ok {
						p.observe(ctx, e)
					}
					return nil
				})
			})
		}
	}
	if textSources == 0 {
		if b, err := source.OpenUtmp(p.cfg.Btmp, source.FindState(states, p.cfg.Btmp), opt("btmp")); err != nil {
			p.a.health.set(source.ComponentStateOf("btmp", err))
		} else {
			p.btmp = b
			start("btmp", func() error { return b.Run(ctx, func(r source.UtmpRecord) error { p.btmpRecord(ctx, r); return nil }) })
		}
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			p.save()
			return
		case <-tick.C:
			p.save()
		}
	}
}

// observe runs one parsed log event through the engines and emits what they find.
func (p *authPipeline) observe(ctx context.Context, e bruteforce.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var fs []finding.Finding
	if p.bruteOn && p.brute != nil {
		fs = p.brute.Observe(e)
	}
	if e.Outcome == bruteforce.Success && !p.wtmpOK && p.loginOn && p.logins != nil {
		fs = append(fs, p.logins.Observe(login.Login{Time: e.Time, User: e.User, Source: e.Source, Service: e.Service, Method: e.Method})...)
	}
	p.emit(ctx, fs)
}

// wtmpRecord feeds a login record to the abnormal-login engine.
func (p *authPipeline) wtmpRecord(ctx context.Context, r source.UtmpRecord) {
	if r.Type != source.UtUserProcess || r.User == "" {
		return
	}
	src := r.Addr
	if !src.IsValid() {
		src, _ = netip.ParseAddr(r.Host)
	}
	service := "login"
	if r.Host != "" {
		service = "sshd"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.loginOn || p.logins == nil {
		return
	}
	p.emit(ctx, p.logins.Observe(login.Login{Time: r.Time, User: r.User, Source: src.Unmap(), Service: service, TTY: r.Line}))
}

// btmpRecord counts a failed login from btmp, on hosts with no text log or journal.
func (p *authPipeline) btmpRecord(ctx context.Context, r source.UtmpRecord) {
	src := r.Addr
	if !src.IsValid() {
		src, _ = netip.ParseAddr(r.Host)
	}
	if !src.IsValid() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.bruteOn || p.brute == nil {
		return
	}
	p.emit(ctx, p.brute.Observe(bruteforce.Event{Time: r.Time, Service: bruteforce.ServiceSSHD, Outcome: bruteforce.Failure,
		User: r.User, Source: src.Unmap(), Line: "btmp: failed login for " + r.User + " from " + r.Host + " on " + r.Line}))
}

// emit blocks sources where the policy says so, then spools the findings. Called with mu held.
func (p *authPipeline) emit(ctx context.Context, fs []finding.Finding) {
	for i := range fs {
		p.a.autoBlock(ctx, &fs[i])
		if err := p.a.Emit(fs[i]); err != nil {
			p.a.log.Warn("finding not spooled", "rule", fs[i].RuleID, "err", err)
		}
	}
}

// save records the sources' positions and the learned login history, so a restart resumes
// without re-reporting and without learning again.
func (p *authPipeline) save() {
	p.mu.Lock()
	var states []source.State
	for _, t := range p.tailers {
		states = append(states, t.State())
	}
	for _, u := range []*source.UtmpFollower{p.wtmp, p.btmp} {
		if u != nil {
			states = append(states, u.State())
		}
	}
	if p.journal != nil {
		states = append(states, source.State{Path: journalStatePath + p.journal.Cursor()})
	}
	var history []byte
	if p.logins != nil {
		history, _ = p.logins.Snapshot()
	}
	p.mu.Unlock()
	if err := source.SaveStates(filepath.Join(p.a.cfg.DataDir, sourcesFile), states); err != nil {
		p.a.log.Warn("save source positions", "err", err)
	}
	if len(history) > 0 {
		if err := writeFileAtomic(filepath.Join(p.a.cfg.DataDir, loginHistoryFile), history, 0o600); err != nil {
			p.a.log.Warn("save login history", "err", err)
		}
	}
}

// The journal's cursor is kept among the file states under a reserved path prefix.
const journalStatePath = "journal:"

func journalCursor(states []source.State) string {
	for _, s := range states {
		if c, ok := strings.CutPrefix(s.Path, journalStatePath); ok {
			return c
		}
	}
	return ""
}
