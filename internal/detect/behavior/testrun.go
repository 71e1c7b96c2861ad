package behavior

import (
	"fmt"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// TestFailure is a rule's test case that did not behave as the rule file says.
type TestFailure struct {
	File, Rule string
	Case       int    // index in the rule's tests
	Name       string // the case's name, when it has one
	Reason     string
}

func (f TestFailure) Error() string {
	name := ""
	if f.Name != "" {
		name = " (" + f.Name + ")"
	}
	return fmt.Sprintf("%s: rule %s: tests[%d]%s: %s", f.File, f.Rule, f.Case, name, f.Reason)
}

// RunTests runs the test cases embedded in the rules: each case's events go through an engine
// holding only that rule and the default configuration, and the rule must fire (match: true) or
// stay silent (match: false). Every finding must also pass finding.Validate. It returns the cases
// that failed and the number of cases run.
func (s *RuleSet) RunTests() (failures []TestFailure, cases int) {
	for _, r := range s.Rules() {
		for i, t := range r.tests {
			cases++
			fail := func(format string, args ...any) {
				failures = append(failures, TestFailure{File: r.File, Rule: r.ID, Case: i, Name: t.name, Reason: fmt.Sprintf(format, args...)})
			}
			e, err := New(&RuleSet{rules: []*Rule{r}}, Config{})
			if err != nil {
				fail("engine: %v", err)
				continue
			}
			var got []finding.Finding
			for _, ev := range t.events {
				e.Handle(ev, func(f finding.Finding) { got = append(got, f) })
			}
			for _, f := range got {
				if err := f.Validate(); err != nil {
					fail("finding does not validate: %v", err)
				}
			}
			switch {
			case t.match && len(got) == 0:
				fail("want a finding, got none")
			case !t.match && len(got) > 0:
				fail("want no finding, got %q", got[0].Title)
			case t.match && t.title != "" && got[0].Title != t.title:
				fail("title:\n got %q\nwant %q", got[0].Title, t.title)
			}
		}
	}
	return failures, cases
}

// Tests is the number of test cases a rule carries, and how many expect a match.
func (r *Rule) Tests() (total, positive int) {
	for _, t := range r.tests {
		total++
		if t.match {
			positive++
		}
	}
	return total, positive
}
