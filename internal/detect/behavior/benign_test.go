package behavior

import (
	"os"
	"testing"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// TestBenignCorpus: no built-in or test Sigma rule fires on ordinary work: package builds, go
// test, apt with maintainer scripts, cron and logrotate, ssh logins with sudo, daemons starting.
func TestBenignCorpus(t *testing.T) {
	builtin, problems, err := Builtin()
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	sig, _, err := LoadSigma(os.DirFS("testdata/sigma"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(builtin.Merge(sig), Config{})
	if err != nil {
		t.Fatal(err)
	}
	events := benignCorpus(1, 12)
	for _, ev := range events {
		e.Handle(ev, func(f finding.Finding) {
			t.Errorf("%s fired on benign %s: %s\n  lines: %q", f.RuleID, ev.Kind, f.Title, f.Evidence.Lines)
		})
	}
	st := e.Stats()
	t.Logf("%d events, %d evaluations (%.2f per event) over %d rules", st.Events, st.Evaluations, float64(st.Evaluations)/float64(st.Events), st.Rules)
	if st.Events != uint64(len(events)) || len(events) < 1000 {
		t.Errorf("handled %d of %d events", st.Events, len(events))
	}
}
