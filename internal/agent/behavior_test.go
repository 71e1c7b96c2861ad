package agent

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/detect/behavior"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/policy"
)

// TestBehaviorRulesFromConfig: the operator's rule directory and Sigma files load beside the
// built-in rules; a broken file is reported on the engine's state, the rest still run.
func TestBehaviorRulesFromConfig(t *testing.T) {
	data := t.TempDir()
	own := filepath.Join(data, "rules", "behavior") // the default place for own rules
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	good := `rules:
  - id: backup-tool-run
    title: Backup tool run
    description: The site's backup tool ran.
    severity: low
    kind: exec
    condition: proc.name = restic
    output: "Backup: {proc.cmdline}"
    tests:
      - match: true
        event: {kind: exec, exe: /usr/bin/restic, args: [restic, backup, /srv]}
      - match: false
        event: {kind: exec, exe: /usr/bin/ls, args: [ls]}
`
	if err := os.WriteFile(filepath.Join(own, "site.yml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(own, "broken.yml"), []byte("rules:\n  - id: [not, an, id]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sigma := filepath.Join("..", "detect", "behavior", "testdata", "sigma", "lnx_iptables_flush.yml")

	a := &Agent{cfg: Config{DataDir: data}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p := &behaviorPipeline{a: a}
	if err := p.load(BehaviorConfig{Sigma: []string{sigma}}); err != nil {
		t.Fatal(err)
	}
	builtin, _, err := behavior.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.rules.Len(), builtin.Len()+2; got != want {
		t.Errorf("%d rules loaded, want %d (built-in, own, Sigma): %v", got, want, p.rules.IDs())
	}
	if len(p.notes) != 1 || !strings.Contains(p.notes[0], "broken.yml") {
		t.Errorf("load problems %q, want the broken file only", p.notes)
	}

	p.configure(policy.Default())
	st := a.health.snapshot()
	var cs finding.ComponentState
	for _, c := range st {
		if c.Name == "behavior" {
			cs = c
		}
	}
	if cs.State != finding.StateDegraded || !strings.Contains(cs.Reason, "broken.yml") {
		t.Errorf("engine state %+v, want degraded naming the broken file", cs)
	}
	// The engine the policy built runs the operator's rule.
	var got []string
	p.eng.Handle(&behavior.Event{Kind: behavior.KindExec, Proc: behavior.Process{PID: 7, Exe: "/usr/bin/restic", Args: []string{"restic", "backup"}}},
		func(f finding.Finding) { got = append(got, f.RuleID) })
	if len(got) != 1 || got[0] != "behavior.backup-tool-run" {
		t.Errorf("findings %v, want the site's own rule", got)
	}
}
