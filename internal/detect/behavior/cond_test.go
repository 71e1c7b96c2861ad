package behavior

import (
	"strings"
	"testing"
)

// TestAnyAncestor: "any ancestor (...)" asks about one ancestor as a whole, with proc.* as that
// ancestor and parent.*/ancestors.* as its own parents; ancestors.* fields only say that some
// ancestor has each property.
func TestAnyAncestor(t *testing.T) {
	ev := exec("/usr/bin/id", "id")
	ev.Ancestors = []Process{
		{PID: 40, PPID: 30, Exe: "/usr/bin/dash", Args: []string{"sh", "-c", "id"}},
		{PID: 30, PPID: 20, Exe: "/usr/sbin/nginx", Args: []string{"nginx", "-g", "daemon off;"}, UID: 33},
		{PID: 20, PPID: 1, Exe: "/usr/bin/node", Args: []string{"node", "/usr/bin/npm", "run", "ci"}},
	}
	cases := []struct {
		cond string
		want bool
	}{
		{`any ancestor (proc.name = nginx)`, true},
		{`any ancestor (proc.name = nginx and not proc.cmdline contains "/npm")`, true},
		// the old form: the npm far above the server hides it
		{`ancestors.name = nginx and not ancestors.cmdline contains "/npm"`, false},
		{`any ancestor (proc.name = nginx and parent.name = node)`, true},
		{`any ancestor (proc.name = nginx and ancestors.count = 1)`, true},
		{`any ancestor (proc.name = dash and parent.name = nginx and proc.uid = 33)`, false},
		{`any ancestor (proc.name = node and parent.name = nginx)`, false},
		{`any ancestor (proc.uid = 33) and proc.name = id`, true},
		{`not any ancestor (proc.name in (apache2, httpd))`, true},
		{`any ancestor (kind = exec and proc.name = dash)`, true},
		{`any ancestor (proc.name = nginx and ancestor.level = 2)`, true},
		{`any ancestor (proc.name = node and ancestor.level <= 2)`, false},
		{`ancestor.level = 0`, true},
	}
	for _, c := range cases {
		n, err := parseCondition(c.cond, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.cond, err)
		}
		var ctx evalCtx
		ctx.reset(ev)
		if got := n.eval(&ctx); got != c.want {
			t.Errorf("%s = %v, want %v", c.cond, got, c.want)
		}
		// The context is reused across events: a second evaluation gives the same answer.
		ctx.reset(ev)
		if got := n.eval(&ctx); got != c.want {
			t.Errorf("%s, second evaluation = %v, want %v", c.cond, got, c.want)
		}
	}

	orphan := exec("/usr/bin/id", "id")
	orphan.Ancestors = nil
	n, _ := parseCondition(`any ancestor (true)`, nil)
	var ctx evalCtx
	ctx.reset(orphan)
	if n.eval(&ctx) {
		t.Error("any ancestor holds for a process without known ancestors")
	}
}

func TestAnyAncestorErrors(t *testing.T) {
	for cond, want := range map[string]string{
		`any (proc.name = x)`:                         `want "any ancestor (condition)"`,
		`any ancestor proc.name = x`:                  `want "(" after "any ancestor"`,
		`any ancestor (proc.name = x`:                 `want ")" to close`,
		`any ancestor (any ancestor (proc.name = x))`: `cannot be nested`,
		`any ancestor (proc.nmae = x)`:                `unknown field "proc.nmae"`,
	} {
		_, err := parseCondition(cond, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", cond, err, want)
		}
	}
}

// TestAnyAncestorAnchors: the names inside become ancestor-name anchors, so the index finds the
// rule by the event's ancestors; anything else inside gives no anchor.
func TestAnyAncestorAnchors(t *testing.T) {
	n, err := parseCondition(`any ancestor (proc.name in (nginx, apache2) and not proc.cmdline contains npm)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	set, ok := anchorsOf(n)
	if !ok || len(set) != 2 || set[0] != (anchor{anchorAncs, "nginx"}) || set[1] != (anchor{anchorAncs, "apache2"}) {
		t.Errorf("anchors %v, %v", set, ok)
	}
	n, _ = parseCondition(`any ancestor (proc.cmdline contains "-g daemon")`, nil)
	if set, ok := anchorsOf(n); ok {
		t.Errorf("a command-line literal of an ancestor anchored the rule: %v", set)
	}
}
