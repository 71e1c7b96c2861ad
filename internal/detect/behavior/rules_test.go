package behavior

import (
	"testing"
)

// TestBuiltinRules loads every built-in rule file and runs the test cases the rules carry: each
// rule must load, carry a positive and a negative case, and behave as its cases say.
func TestBuiltinRules(t *testing.T) {
	set, problems, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("load: %v", p)
	}
	if set.Len() == 0 {
		t.Fatal("no built-in rules")
	}
	for _, r := range set.Rules() {
		total, pos := r.Tests()
		if pos == 0 || pos == total {
			t.Errorf("%s (%s): %d cases, %d positive: want at least one positive and one negative", r.ID, r.File, total, pos)
		}
		if len(r.MITRE) == 0 || r.Action == "" {
			t.Errorf("%s: built-in rules need MITRE tags and an action", r.ID)
		}
	}
	failures, cases := set.RunTests()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d rules, %d cases", set.Len(), cases)
}
