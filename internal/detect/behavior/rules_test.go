package behavior

import (
	"os"
	"strings"
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

// TestBuiltinRulesIndexed: every built-in condition (of a sequence: its first step) has an anchor, so the engine never evaluates
// a built-in rule for every event of its kind.
func TestBuiltinRulesIndexed(t *testing.T) {
	set, _, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range set.Rules() {
		conds := []node{r.cond}
		if r.seq != nil {
			// later steps are evaluated only while a partial match waits for them
			conds = []node{r.seq.steps[0].cond}
		}
		for _, c := range conds {
			if _, ok := anchorsOf(c); !ok {
				t.Errorf("%s (%s): condition has no anchor (a process name, a command-line literal of 3+ bytes, or an indexed flag)", r.ID, r.File)
			}
		}
	}
}

// TestDocsListFields: docs/RULES-BEHAVIOR.md documents every field a condition can use.
func TestDocsListFields(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/RULES-BEHAVIOR.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range FieldNames() {
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("field %s is not in the field table of docs/RULES-BEHAVIOR.md", name)
		}
	}
}
