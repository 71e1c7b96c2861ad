package behavior

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	sigma "github.com/bradleyjkemp/sigma-go"
	"go.yaml.in/yaml/v3"

	"github.com/palisade-cwpp/palisade/internal/finding"
)

// LoadSigma reads Sigma rules (one rule per file) of logsource product linux, category
// process_creation, matching the glob patterns ("*.yml" and "*.yaml" when none are given). A
// rule using a field, modifier, logsource or condition the engine does not support is not
// loaded, and its LoadProblem lists every unsupported part: no rule is loaded with part of its
// logic silently dropped. The mapping is documented in docs/RULES-BEHAVIOR.md.
func LoadSigma(fsys fs.FS, patterns ...string) (*RuleSet, []LoadProblem, error) {
	return loadFiles(fsys, patterns, loadSigmaFile)
}

// sigmaField is how a Sigma process_creation field maps onto the event.
type sigmaField struct {
	field   string
	numeric bool
}

var sigmaFields = map[string]sigmaField{
	"Image":             {field: "proc.exe"},
	"CommandLine":       {field: "proc.cmdline"},
	"CurrentDirectory":  {field: "proc.cwd"},
	"ParentImage":       {field: "parent.exe"},
	"ParentCommandLine": {field: "parent.cmdline"},
	"ProcessId":         {field: "proc.pid", numeric: true},
	"ParentProcessId":   {field: "proc.ppid", numeric: true},
	"LogonId":           {field: "proc.auid", numeric: true},
	"User":              {field: "proc.uid", numeric: true}, // "root" or a numeric uid only
}

// sigmaModifiers are the value modifiers the loader supports.
var sigmaModifiers = map[string]bool{"contains": true, "startswith": true, "endswith": true, "all": true, "re": true, "windash": true, "cased": true}

var (
	sigmaIDPattern  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	sigmaTagPattern = regexp.MustCompile(`^attack\.(t[0-9]{4}(\.[0-9]{3})?)$`)
)

var sigmaLevels = map[string]finding.Severity{
	"informational": finding.SeverityInfo, "low": finding.SeverityLow, "medium": finding.SeverityMedium,
	"high": finding.SeverityHigh, "critical": finding.SeverityCritical,
}

func loadSigmaFile(name string, data []byte) ([]*Rule, []LoadProblem) {
	if len(data) > maxRuleFile {
		return nil, []LoadProblem{{File: name, Reason: fmt.Sprintf("file larger than %d bytes", maxRuleFile)}}
	}
	if n, err := countDocs(data); err != nil {
		return nil, []LoadProblem{{File: name, Reason: "YAML: " + err.Error()}}
	} else if n != 1 {
		return nil, []LoadProblem{{File: name, Reason: fmt.Sprintf("%d YAML documents: one Sigma rule per file is supported (no rule collections)", n)}}
	}
	sr, err := parseSigma(data)
	if err != nil {
		return nil, []LoadProblem{{File: name, Reason: "Sigma: " + err.Error()}}
	}
	r, err := compileSigma(name, &sr)
	if err != nil {
		id := ""
		if sigmaIDPattern.MatchString(strings.ToLower(sr.ID)) {
			id = "sigma." + strings.ToLower(sr.ID)
		}
		return nil, []LoadProblem{{File: name, Rule: id, Reason: err.Error()}}
	}
	return []*Rule{r}, nil
}

func countDocs(data []byte) (int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var v yaml.Node
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// parseSigma calls the Sigma parser, turning a panic in it into an error: a rule file from an
// operator must never stop the agent.
func parseSigma(data []byte) (r sigma.Rule, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("parser failed: %v", p)
		}
	}()
	return sigma.ParseRule(data)
}

// sigmaCompiler collects every unsupported part of a rule instead of stopping at the first.
type sigmaCompiler struct {
	unsupported []string
}

func (sc *sigmaCompiler) reject(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(sc.unsupported, msg) {
		sc.unsupported = append(sc.unsupported, msg)
	}
}

func compileSigma(file string, sr *sigma.Rule) (*Rule, error) {
	id := strings.ToLower(strings.TrimSpace(sr.ID))
	if !sigmaIDPattern.MatchString(id) {
		return nil, fmt.Errorf("id %q: want the rule's UUID", sr.ID)
	}
	r := &Rule{ID: "sigma." + id, Title: strings.TrimSpace(sr.Title), Description: strings.TrimSpace(sr.Description), File: file, Kinds: []Kind{KindExec}}
	if r.Title == "" {
		return nil, errors.New("title is missing")
	}
	sc := &sigmaCompiler{}
	ls := sr.Logsource
	if ls.Product != "linux" || ls.Category != "process_creation" || ls.Service != "" {
		sc.reject("logsource product=%q category=%q service=%q (only product: linux, category: process_creation)", ls.Product, ls.Category, ls.Service)
	}
	if sr.Level == "" {
		r.Severity = finding.SeverityMedium
	} else if sev, ok := sigmaLevels[sr.Level]; ok {
		r.Severity = sev
	} else {
		return nil, fmt.Errorf("level %q: want informational, low, medium, high or critical", sr.Level)
	}
	for _, t := range sr.Tags {
		if m := sigmaTagPattern.FindStringSubmatch(strings.ToLower(t)); m != nil {
			r.MITRE = append(r.MITRE, strings.ToUpper(m[1]))
		}
	}
	if fp, ok := sr.AdditionalFields["falsepositives"]; ok {
		r.Action = fmt.Sprintf("Check whether this is one of the rule's known false positives (%v); otherwise investigate the process and its parent.", fp)
	} else {
		r.Action = "Investigate the process and its parent, and how the command was started."
	}
	det := &sr.Detection
	if det.Timeframe != 0 {
		sc.reject("timeframe (aggregations are not supported)")
	}
	searches := map[string][]node{}
	names := make([]string, 0, len(det.Searches))
	for name, s := range det.Searches {
		names = append(names, name)
		searches[name] = sc.search(name, s)
	}
	sort.Strings(names)
	if len(det.Conditions) == 0 {
		return nil, errors.New("detection has no condition")
	}
	var conds orNode
	var texts []string
	for _, c := range det.Conditions {
		if c.Aggregation != nil {
			sc.reject("condition aggregation (| count(), near...)")
		}
		text, _ := c.MarshalYAML()
		texts = append(texts, fmt.Sprint(text))
		n := sc.condition(c.Search, searches, names, 0)
		if n != nil {
			conds = append(conds, n)
		}
	}
	if len(sc.unsupported) > 0 {
		return nil, fmt.Errorf("not supported: %s", strings.Join(sc.unsupported, "; "))
	}
	if len(conds) == 1 {
		r.cond = conds[0]
	} else {
		r.cond = conds
	}
	r.Condition = strings.Join(texts, " | ")
	return r, nil
}

// search compiles one named search: a list of field maps, any of which must match (each map
// requires all its fields). It returns one node per map, for "all of search".
func (sc *sigmaCompiler) search(name string, s sigma.Search) []node {
	if len(s.Keywords) > 0 {
		sc.reject("search %q: keyword (field-less) search", name)
		return nil
	}
	var out []node
	for _, em := range s.EventMatchers {
		var all andNode
		for _, fm := range em {
			if n := sc.fieldMatcher(fm); n != nil {
				all = append(all, n)
			}
		}
		if len(all) == 1 {
			out = append(out, all[0])
		} else if len(all) > 0 {
			out = append(out, all)
		}
	}
	return out
}

func (sc *sigmaCompiler) fieldMatcher(fm sigma.FieldMatcher) node {
	sf, ok := sigmaFields[fm.Field]
	if !ok {
		sc.reject("field %q", fm.Field)
		return nil
	}
	f := fields[sf.field]
	var op strOp = opEq
	nocase, all, re, windash := true, false, false, false
	for _, m := range fm.Modifiers {
		switch {
		case !sigmaModifiers[m]:
			sc.reject("modifier %q", m)
			return nil
		case m == "contains":
			op = opContains
		case m == "startswith":
			op = opStartsWith
		case m == "endswith":
			op = opEndsWith
		case m == "all":
			all = true
		case m == "re":
			re = true
		case m == "windash":
			windash = true
		case m == "cased":
			nocase = false
		}
	}
	if len(fm.Values) == 0 {
		sc.reject("field %q has no values", fm.Field)
		return nil
	}
	var leaves []node
	for _, v := range fm.Values {
		if sf.numeric {
			n := sc.numeric(fm.Field, f, v, len(fm.Modifiers) > 0)
			if n == nil {
				return nil
			}
			leaves = append(leaves, n)
			continue
		}
		s, ok := sigmaString(v)
		if !ok {
			sc.reject("field %q: value %v is not a string or number", fm.Field, v)
			return nil
		}
		if re {
			if op != opEq {
				sc.reject("field %q: re combined with %s", fm.Field, strings.Join(fm.Modifiers, "|"))
				return nil
			}
			rx, err := regexp.Compile(s)
			if err != nil {
				sc.reject("field %q: regular expression %q: %v", fm.Field, s, err)
				return nil
			}
			leaves = append(leaves, &strLeaf{f: f, op: opMatches, res: []*regexp.Regexp{rx}})
			continue
		}
		variants := []string{s}
		if windash {
			variants = windashVariants(s)
		}
		var alts orNode
		for _, s := range variants {
			n, err := sigmaValue(f, op, nocase, s)
			if err != nil {
				sc.reject("field %q: %v", fm.Field, err)
				return nil
			}
			alts = append(alts, n)
		}
		if len(alts) == 1 {
			leaves = append(leaves, alts[0])
		} else {
			leaves = append(leaves, alts)
		}
	}
	if len(leaves) == 1 {
		return leaves[0]
	}
	if all {
		return andNode(leaves)
	}
	return orNode(leaves)
}

func (sc *sigmaCompiler) numeric(name string, f *field, v any, modified bool) node {
	if modified {
		sc.reject("field %q: modifiers on a numeric field", name)
		return nil
	}
	s, _ := sigmaString(v)
	if name == "User" && strings.EqualFold(s, "root") {
		s = "0"
	}
	x, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if name == "User" {
			sc.reject("field User: value %q (the engine sees uids: give \"root\" or a numeric uid)", s)
		} else {
			sc.reject("field %q: value %q is not a number", name, s)
		}
		return nil
	}
	return &numLeaf{f: f, op: numEq, vals: []int64{x}}
}

func sigmaString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case nil:
		return "", true
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(v), true
	}
	return "", false
}

// sigmaValue compiles one Sigma value: "*" and "?" are wildcards unless escaped with "\".
func sigmaValue(f *field, op strOp, nocase bool, s string) (node, error) {
	lit, wild, err := unescapeSigma(s)
	if err != nil {
		return nil, err
	}
	if nocase {
		lit = strings.ToLower(lit)
	}
	if !wild {
		return &strLeaf{f: f, op: op, nocase: nocase, vals: []string{lit}}, nil
	}
	switch op {
	case opContains:
		lit = "*" + lit + "*"
	case opStartsWith:
		lit += "*"
	case opEndsWith:
		lit = "*" + lit
	}
	return &strLeaf{f: f, op: opGlob, nocase: nocase, vals: []string{lit}, globs: []glob{compileGlob(lit)}}, nil
}

// unescapeSigma removes Sigma's escapes; wild reports unescaped wildcards. A value mixing
// escaped and unescaped wildcards cannot be expressed as one of the engine's globs.
func unescapeSigma(s string) (out string, wild bool, err error) {
	var b strings.Builder
	escapedWild := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\') {
			if s[i+1] != '\\' {
				escapedWild = true
			}
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if c == '*' || c == '?' {
			wild = true
		}
		b.WriteByte(c)
	}
	if wild && escapedWild {
		return "", false, fmt.Errorf("value %q mixes escaped and unescaped wildcards", s)
	}
	return b.String(), wild, nil
}

// windashVariants are the spellings of a value's option dashes: "-", "/", en dash, em dash and
// horizontal bar, as the windash modifier defines.
func windashVariants(s string) []string {
	var out []string
	for _, d := range []string{"-", "/", "\u2013", "\u2014", "\u2015"} {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] == '-' && (i == 0 || s[i-1] == ' ') {
				b.WriteString(d)
				continue
			}
			b.WriteByte(s[i])
		}
		if v := b.String(); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

const maxSigmaDepth = 64

func (sc *sigmaCompiler) condition(e sigma.SearchExpr, searches map[string][]node, names []string, depth int) node {
	if depth > maxSigmaDepth {
		sc.reject("condition nested deeper than %d", maxSigmaDepth)
		return nil
	}
	any := func(ns []node) node {
		if len(ns) == 1 {
			return ns[0]
		}
		return orNode(ns)
	}
	every := func(ns []node) node {
		if len(ns) == 1 {
			return ns[0]
		}
		return andNode(ns)
	}
	lookup := func(name string) []node {
		ns, ok := searches[name]
		if !ok {
			sc.reject("condition names search %q, which the detection does not define", name)
		}
		return ns
	}
	matching := func(pattern string) [][]node {
		var out [][]node
		for _, n := range names {
			if ok, _ := path.Match(pattern, n); ok {
				out = append(out, searches[n])
			}
		}
		if len(out) == 0 {
			sc.reject("condition pattern %q matches no search", pattern)
		}
		return out
	}
	switch e := e.(type) {
	case sigma.SearchIdentifier:
		return orOf(lookup(e.Name))
	case sigma.OneOfIdentifier:
		return orOf(lookup(e.Ident.Name))
	case sigma.AllOfIdentifier:
		return every(lookup(e.Ident.Name))
	case sigma.And:
		var ns andNode
		for _, x := range e {
			if n := sc.condition(x, searches, names, depth+1); n != nil {
				ns = append(ns, n)
			}
		}
		return every(ns)
	case sigma.Or:
		var ns orNode
		for _, x := range e {
			if n := sc.condition(x, searches, names, depth+1); n != nil {
				ns = append(ns, n)
			}
		}
		return any(ns)
	case sigma.Not:
		if n := sc.condition(e.Expr, searches, names, depth+1); n != nil {
			return notNode{n}
		}
		return nil
	case sigma.OneOfThem:
		var ns orNode
		for _, n := range names {
			ns = append(ns, orOf(searches[n]))
		}
		return any(ns)
	case sigma.AllOfThem:
		var ns andNode
		for _, n := range names {
			ns = append(ns, orOf(searches[n]))
		}
		return every(ns)
	case sigma.OneOfPattern:
		var ns orNode
		for _, s := range matching(e.Pattern) {
			ns = append(ns, orOf(s))
		}
		return any(ns)
	case sigma.AllOfPattern:
		var ns andNode
		for _, s := range matching(e.Pattern) {
			ns = append(ns, orOf(s))
		}
		return every(ns)
	case nil:
		sc.reject("empty condition")
		return nil
	}
	sc.reject("condition %T", e)
	return nil
}

// orOf is a search's maps combined as Sigma reads a search: any of them. An empty search (all
// its parts rejected) yields false; the rule is rejected anyway.
func orOf(ns []node) node {
	switch len(ns) {
	case 0:
		return constNode(false)
	case 1:
		return ns[0]
	}
	return orNode(ns)
}
