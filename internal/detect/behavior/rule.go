package behavior

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/rules"
)

// Rule is one compiled detection: a condition over single events, or an ordered sequence of
// conditions. Rules are read-only once loaded and may be shared by several engines.
type Rule struct {
	ID          string // finding rule ID: "behavior.<id>" or "sigma.<uuid>"
	Title       string
	Description string
	Severity    finding.Severity
	MITRE       []string // ATT&CK technique IDs, "T1059.004"
	Kinds       []Kind   // the event kinds the rule reads (for a sequence: of all its steps)
	Action      string   // suggested response
	File        string   // where it was loaded from
	Condition   string   // source text (for a Sigma rule: its detection, as the engine reads it)

	output string
	cond   node
	seq    *sequence
	tests  []ruleTest
}

// Scope says which events of a sequence belong together.
type Scope uint8

const (
	// ScopeTree: a later step's event must come from the process tree of the earlier steps. The
	// tree of a partial match is the set of anchor processes: every process that matched a step,
	// and the parent of each (unless that parent is PID 0, 1 or 2, which would make every process
	// one tree). An event is in the tree when its process, or any of its ancestors, is an
	// anchor: the same process, a descendant, a sibling, or a sibling's descendant. Processes
	// are the same when PID and start time agree (PID alone when a start time is unknown).
	ScopeTree Scope = iota + 1
	// ScopeHost: any event of the same host (Event.Host; all events when it is empty).
	ScopeHost
)

func (s Scope) String() string {
	switch s {
	case ScopeTree:
		return "tree"
	case ScopeHost:
		return "host"
	}
	return "unknown"
}

type sequence struct {
	scope  Scope
	window time.Duration
	steps  []step
}

type step struct {
	kinds []Kind
	cond  node
	keys  []*field
	text  string
}

// LoadProblem is a rule or file that did not load, and why. The rest of the rules load.
type LoadProblem struct {
	File   string
	Line   int    // 0 when unknown
	Rule   string // the rule's ID when it could be read
	Reason string
}

func (p LoadProblem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	if p.Rule != "" {
		fmt.Fprintf(&b, ": rule %s", p.Rule)
	}
	b.WriteString(": ")
	b.WriteString(p.Reason)
	return b.String()
}

// RuleSet is a set of loaded rules with unique IDs, in load order.
type RuleSet struct {
	rules []*Rule
}

// Len is the number of rules.
func (s *RuleSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// IDs lists the rule IDs in load order.
func (s *RuleSet) IDs() []string {
	if s == nil {
		return nil
	}
	ids := make([]string, len(s.rules))
	for i, r := range s.rules {
		ids[i] = r.ID
	}
	return ids
}

// Rules lists the rules in load order; they must not be modified.
func (s *RuleSet) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return slices.Clone(s.rules)
}

// Rule returns the rule with the given ID, or nil.
func (s *RuleSet) Rule(id string) *Rule {
	if s == nil {
		return nil
	}
	for _, r := range s.rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Merge returns a new set with the rules of s and then those of o; a rule of o replaces the rule
// of s with the same ID, in its place, so an operator's file can override a built-in rule.
func (s *RuleSet) Merge(o *RuleSet) *RuleSet {
	m := &RuleSet{}
	at := map[string]int{}
	for _, set := range []*RuleSet{s, o} {
		if set == nil {
			continue
		}
		for _, r := range set.rules {
			if i, ok := at[r.ID]; ok {
				m.rules[i] = r
				continue
			}
			at[r.ID] = len(m.rules)
			m.rules = append(m.rules, r)
		}
	}
	return m
}

// Builtin loads the rules shipped in rules/behavior.
func Builtin() (*RuleSet, []LoadProblem, error) {
	return LoadRules(rules.Behavior, "behavior/*.yml")
}

// LoadRules reads rule files (the format of docs/RULES-BEHAVIOR.md) matching the glob patterns
// ("*.yml" and "*.yaml" when none are given). A file or rule that does not load becomes a
// LoadProblem and the others still load; the error is for a bad pattern only.
func LoadRules(fsys fs.FS, patterns ...string) (*RuleSet, []LoadProblem, error) {
	return loadFiles(fsys, patterns, loadRuleFile)
}

func loadFiles(fsys fs.FS, patterns []string, load func(name string, data []byte) ([]*Rule, []LoadProblem)) (*RuleSet, []LoadProblem, error) {
	if len(patterns) == 0 {
		patterns = []string{"*.yml", "*.yaml"}
	}
	var names []string
	for _, p := range patterns {
		m, err := fs.Glob(fsys, p)
		if err != nil {
			return nil, nil, fmt.Errorf("rule file pattern %q: %w", p, err)
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	names = slices.Compact(names)
	set := &RuleSet{}
	var problems []LoadProblem
	seen := map[string]string{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			problems = append(problems, LoadProblem{File: name, Reason: err.Error()})
			continue
		}
		rs, ps := load(name, data)
		problems = append(problems, ps...)
		for _, r := range rs {
			if prev, dup := seen[r.ID]; dup {
				problems = append(problems, LoadProblem{File: name, Rule: r.ID, Reason: "duplicate rule ID (first defined in " + prev + ")"})
				continue
			}
			seen[r.ID] = name
			set.rules = append(set.rules, r)
		}
	}
	return set, problems, nil
}

// The YAML schema of a rule file.
type rawFile struct {
	Lists map[string][]string `yaml:"lists"`
	Rules []yaml.Node         `yaml:"rules"`
}

type rawRule struct {
	ID          string       `yaml:"id"`
	Title       string       `yaml:"title"`
	Description string       `yaml:"description"`
	Severity    string       `yaml:"severity"`
	MITRE       []string     `yaml:"mitre"`
	Kind        stringOrList `yaml:"kind"`
	Condition   string       `yaml:"condition"`
	Sequence    *rawSequence `yaml:"sequence"`
	Output      string       `yaml:"output"`
	Action      string       `yaml:"action"`
	Tests       []rawTest    `yaml:"tests"`
}

type rawSequence struct {
	Scope  string    `yaml:"scope"`
	Window string    `yaml:"window"`
	Steps  []rawStep `yaml:"steps"`
}

type rawStep struct {
	Kind      stringOrList `yaml:"kind"`
	Condition string       `yaml:"condition"`
	Key       stringOrList `yaml:"key"`
}

// stringOrList is a YAML scalar or a list of scalars.
type stringOrList []string

func (l *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = []string{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

var (
	ownIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$`)
	mitrePattern = regexp.MustCompile(`^T[0-9]{4}(\.[0-9]{3})?$`)
	listPattern  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	placeholder  = regexp.MustCompile(`\{([a-z_.]+)\}`)
	relLine      = regexp.MustCompile(`line [0-9]+`)
)

const maxRuleFile = 4 << 20

func loadRuleFile(name string, data []byte) (rs []*Rule, problems []LoadProblem) {
	if len(data) > maxRuleFile {
		return nil, []LoadProblem{{File: name, Reason: fmt.Sprintf("file larger than %d bytes", maxRuleFile)}}
	}
	var f rawFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, errEOF) || err.Error() == "EOF" {
			return nil, []LoadProblem{{File: name, Reason: "empty file: want lists and rules"}}
		}
		return nil, []LoadProblem{{File: name, Reason: err.Error()}}
	}
	for l, vals := range f.Lists {
		if !listPattern.MatchString(l) {
			problems = append(problems, LoadProblem{File: name, Reason: fmt.Sprintf("list name %q: want letters, digits and _", l)})
		}
		if len(vals) == 0 {
			problems = append(problems, LoadProblem{File: name, Reason: fmt.Sprintf("list %q is empty", l)})
		}
	}
	for i := range f.Rules {
		n := &f.Rules[i]
		r, err := decodeRule(name, n, f.Lists)
		if err != nil {
			id := ""
			if r != nil {
				id = r.ID
			}
			problems = append(problems, LoadProblem{File: name, Line: n.Line, Rule: id, Reason: err.Error()})
			continue
		}
		rs = append(rs, r)
	}
	return rs, problems
}

var errEOF = errors.New("EOF")

// decodeRule decodes one rule strictly: unknown keys are errors, not ignored.
func decodeRule(file string, n *yaml.Node, lists map[string][]string) (*Rule, error) {
	var raw rawRule
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("a rule must be a mapping of id, title, condition...")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			raw.ID = n.Content[i+1].Value
		}
	}
	partial := &Rule{ID: raw.ID}
	text, err := yaml.Marshal(n)
	if err != nil {
		return partial, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		// the rule was re-encoded alone: report lines of the file, in words for rule authors
		msg := relLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
			k, _ := strconv.Atoi(m[len("line "):])
			return fmt.Sprintf("line %d", n.Line+k-1)
		})
		msg = strings.ReplaceAll(strings.ReplaceAll(msg, " in type behavior.rawRule", ""), "yaml: unmarshal errors:\n  ", "")
		return partial, errors.New(msg)
	}
	r, err := compileRule(file, &raw, lists)
	if err != nil {
		return partial, err
	}
	return r, nil
}

func compileRule(file string, raw *rawRule, lists map[string][]string) (*Rule, error) {
	if !ownIDPattern.MatchString(raw.ID) || len(raw.ID) > 100 {
		return nil, fmt.Errorf("id %q: want lower-case letters, digits and dashes, e.g. reverse-shell-dev-tcp", raw.ID)
	}
	r := &Rule{ID: "behavior." + raw.ID, Title: strings.TrimSpace(raw.Title), Description: strings.TrimSpace(raw.Description),
		Action: strings.TrimSpace(raw.Action), File: file, MITRE: raw.MITRE, output: strings.TrimSpace(raw.Output)}
	if r.Title == "" {
		return nil, errors.New("title is missing")
	}
	if r.Description == "" {
		return nil, errors.New("description is missing: say what the rule detects and why it matters")
	}
	sev, err := finding.ParseSeverity(raw.Severity)
	if err != nil {
		return nil, fmt.Errorf("severity: %v", err)
	}
	r.Severity = sev
	for _, m := range raw.MITRE {
		if !mitrePattern.MatchString(m) {
			return nil, fmt.Errorf("mitre %q: want an ATT&CK technique ID such as T1059 or T1059.004", m)
		}
	}
	kinds, err := parseKinds(raw.Kind)
	if err != nil {
		return nil, err
	}
	switch {
	case raw.Sequence != nil && raw.Condition != "":
		return nil, errors.New("a rule has a condition or a sequence, not both")
	case raw.Sequence == nil && raw.Condition == "":
		return nil, errors.New("condition is missing")
	case raw.Sequence == nil:
		if len(kinds) == 0 {
			return nil, errors.New("kind is missing: exec, connect, accept, file or exit")
		}
		r.Kinds = kinds
		r.Condition = raw.Condition
		if r.cond, err = parseCondition(raw.Condition, lists); err != nil {
			return nil, fmt.Errorf("condition: %w", err)
		}
	default:
		if r.seq, err = compileSequence(raw.Sequence, kinds, lists); err != nil {
			return nil, fmt.Errorf("sequence: %w", err)
		}
		for _, s := range r.seq.steps {
			for _, k := range s.kinds {
				if !slices.Contains(r.Kinds, k) {
					r.Kinds = append(r.Kinds, k)
				}
			}
		}
	}
	for _, m := range placeholder.FindAllStringSubmatch(r.output, -1) {
		if fields[m[1]] == nil {
			return nil, fmt.Errorf("output: unknown field {%s}", m[1])
		}
	}
	for i, t := range raw.Tests {
		rt, err := compileTest(t)
		if err != nil {
			return nil, fmt.Errorf("tests[%d]: %w", i, err)
		}
		r.tests = append(r.tests, rt)
	}
	return r, nil
}

func parseKinds(names []string) ([]Kind, error) {
	var ks []Kind
	for _, n := range names {
		k := ParseKind(n)
		if k == 0 {
			return nil, fmt.Errorf("kind %q: want exec, connect, accept, file or exit", n)
		}
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	return ks, nil
}

const maxSteps = 8

func compileSequence(raw *rawSequence, ruleKinds []Kind, lists map[string][]string) (*sequence, error) {
	s := &sequence{}
	switch raw.Scope {
	case "tree":
		s.scope = ScopeTree
	case "host":
		s.scope = ScopeHost
	default:
		return nil, fmt.Errorf("scope %q: want tree or host", raw.Scope)
	}
	w, err := time.ParseDuration(raw.Window)
	if err != nil || w <= 0 {
		return nil, fmt.Errorf("window %q: want a positive duration such as 10m", raw.Window)
	}
	s.window = w
	if len(raw.Steps) < 2 || len(raw.Steps) > maxSteps {
		return nil, fmt.Errorf("want 2 to %d steps, got %d", maxSteps, len(raw.Steps))
	}
	for i, rs := range raw.Steps {
		st := step{text: rs.Condition}
		if st.kinds, err = parseKinds(rs.Kind); err != nil {
			return nil, fmt.Errorf("steps[%d]: %w", i, err)
		}
		if len(st.kinds) == 0 {
			st.kinds = ruleKinds
		}
		if len(st.kinds) == 0 {
			return nil, fmt.Errorf("steps[%d]: kind is missing (on the step or the rule)", i)
		}
		if rs.Condition == "" {
			return nil, fmt.Errorf("steps[%d]: condition is missing", i)
		}
		if st.cond, err = parseCondition(rs.Condition, lists); err != nil {
			return nil, fmt.Errorf("steps[%d]: condition: %w", i, err)
		}
		for _, k := range rs.Key {
			f := fields[k]
			if f == nil || (f.typ != typeString && f.typ != typeStrings) {
				return nil, fmt.Errorf("steps[%d]: key %q: want a string field such as proc.exe or file.path", i, k)
			}
			st.keys = append(st.keys, f)
		}
		s.steps = append(s.steps, st)
	}
	if len(s.steps[0].keys) == 0 {
		for i, st := range s.steps[1:] {
			if len(st.keys) > 0 {
				return nil, fmt.Errorf("steps[%d] has a key but steps[0] does not capture one", i+1)
			}
		}
	}
	return s, nil
}

// render fills the {field} placeholders of a rule's output with the event's values.
func render(tmpl string, c *evalCtx) string {
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		f := fields[m[1:len(m)-1]]
		return fieldText(f, c)
	})
}

func fieldText(f *field, c *evalCtx) string {
	switch f.typ {
	case typeString:
		return f.str(c)
	case typeStrings:
		return strings.Join(f.strs(c), " ")
	case typeNumber:
		if v, ok := f.num(c); ok {
			return strconv.FormatInt(v, 10)
		}
		return "?"
	case typeBool:
		return strconv.FormatBool(f.boo(c))
	case typeAddr:
		if a := f.addr(c); a.IsValid() {
			return a.String()
		}
		return "?"
	}
	return ""
}

func baseName(p string) string { return path.Base(p) }
