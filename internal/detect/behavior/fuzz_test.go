package behavior

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// fuzzEvents exercise every kind and most fields.
func fuzzEvents() []*Event {
	evs := append([]*Event{reverseShell()}, attackStream()[:60]...)
	return append(evs, attackStream()[len(attackStream())-60:]...)
}

// FuzzLoadRules: any rule file loads or is reported, never panics; what loads compiles into an
// engine whose findings validate.
func FuzzLoadRules(f *testing.F) {
	files, _ := filepath.Glob("../../../rules/behavior/*.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(seqRules))
	f.Add([]byte("rules:\n  - {id: x, title: T, description: d, severity: low, kind: exec, condition: 'proc.name = a and (not proc.args in (@l, b) or net.remote_ip cidr 10.0.0.0/8)'}\nlists: {l: [a]}\n"))
	f.Add([]byte("rules:\n  - {id: x, title: '{proc.name} {net.remote_port}', description: d, severity: low, kind: [exec, file], condition: 'file.mode >= 0755 or proc.args matches \"a|b\"', output: '{proc.exe} {std.remote}'}\n"))
	evs := fuzzEvents()
	f.Fuzz(func(t *testing.T, data []byte) {
		set, problems, err := LoadRules(fstest.MapFS{"f.yml": {Data: data}})
		if err != nil {
			t.Fatalf("error for a single file: %v", err)
		}
		for _, p := range problems {
			if p.File != "f.yml" || p.Reason == "" || !strings.HasPrefix(p.Error(), "f.yml") {
				t.Fatalf("problem without file or reason: %+v", p)
			}
		}
		e, err := New(set, Config{MaxPending: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			e.Handle(ev, func(fd finding.Finding) {
				if err := fd.Validate(); err != nil {
					t.Fatalf("%s: %v", fd.RuleID, err)
				}
			})
		}
		set.RunTests()
	})
}

// FuzzParseCondition: the condition parser returns a node or an error, never panics, and a
// parsed condition evaluates on any event.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"proc.name in (bash, sh) and std.socket_remote", "not (proc.uid = 0 or parent.euid != 0)",
		`proc.cmdline matches '(curl|wget)\s' and proc.args glob ("*.sh", '-?')`, "net.remote_ip cidr (10.0.0.0/8, ::1) and net.remote_port >= 1024",
		"file.path istartswith /ETC/ or file.name iin (@x, y)", "((((true))))", "proc.argc < 'a'", "proc.name = 'it''s'",
		"std.socket = false and kind = exec", "ancestors.name = nginx or ancestors.exe endswith /java",
		"any ancestor (proc.name = nginx and not parent.cmdline contains npm) and not any ancestor (proc.uid = 0)",
	} {
		f.Add(s)
	}
	evs := fuzzEvents()
	c := &evalCtx{setuid: newSetuidList(DefaultSetuidAllow)}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseCondition(s, map[string][]string{"x": {"a", "B"}})
		if err != nil {
			if _, ok := err.(*CondError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		anchorsOf(n)
		for _, ev := range evs {
			c.reset(ev)
			n.eval(c)
		}
	})
}

// FuzzLoadSigma: any Sigma file loads or is reported with its file, never panics.
func FuzzLoadSigma(f *testing.F) {
	files, _ := filepath.Glob("testdata/sigma/*.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	evs := fuzzEvents()
	f.Fuzz(func(t *testing.T, data []byte) {
		set, problems, err := LoadSigma(fstest.MapFS{"s.yml": {Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		if set.Len()+len(problems) != 1 {
			t.Fatalf("one file: %d rules and %d problems", set.Len(), len(problems))
		}
		for _, p := range problems {
			if p.File != "s.yml" || p.Reason == "" {
				t.Fatalf("problem without file or reason: %+v", p)
			}
		}
		e, err := New(set, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			e.Handle(ev, func(fd finding.Finding) {
				if err := fd.Validate(); err != nil {
					t.Fatalf("%s: %v", fd.RuleID, err)
				}
			})
		}
	})
}
