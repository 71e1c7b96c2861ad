package behavior

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// A condition is parsed once into a tree of nodes; evaluating one reads fields from the event
// through the evalCtx and allocates nothing.
type node interface {
	eval(c *evalCtx) bool
}

type andNode []node
type orNode []node
type notNode struct{ x node }
type constNode bool

func (n andNode) eval(c *evalCtx) bool {
	for _, x := range n {
		if !x.eval(c) {
			return false
		}
	}
	return true
}

func (n orNode) eval(c *evalCtx) bool {
	for _, x := range n {
		if x.eval(c) {
			return true
		}
	}
	return false
}

func (n notNode) eval(c *evalCtx) bool   { return !n.x.eval(c) }
func (n constNode) eval(c *evalCtx) bool { return bool(n) }

// anyAncestor holds when its condition holds for one of the event's ancestors, evaluated as if
// that ancestor were the event's process: proc.* is the ancestor, parent.* and ancestors.* are
// its own parent and ancestors; the other fields keep the event's values of kind and host and
// are empty otherwise. It lets a rule ask about one ancestor as a whole ("an ancestor that is a
// web server and is not a build tool") where ancestors.* fields only say that some ancestor
// has each property.
type anyAncestor struct{ x node }

func (n anyAncestor) eval(c *evalCtx) bool {
	if c.sub == nil {
		c.sub = &subEval{}
	}
	s := c.sub
	for i := range c.ev.Ancestors {
		s.ev = Event{Kind: c.ev.Kind, Time: c.ev.Time, Host: c.ev.Host, Proc: c.ev.Ancestors[i], Ancestors: c.ev.Ancestors[i+1:]}
		s.c.reset(&s.ev)
		s.c.setuid, s.c.level = c.setuid, i+1
		if n.x.eval(&s.c) {
			return true
		}
	}
	return false
}

// subEval is the reusable context an anyAncestor evaluates its ancestors in.
type subEval struct {
	ev Event
	c  evalCtx
}

// strOp is a string comparison.
type strOp uint8

const (
	opEq strOp = iota + 1
	opContains
	opStartsWith
	opEndsWith
	opGlob
	opMatches
)

// strLeaf compares a string field (or, for a list field, each element) with a set of values;
// it holds when any value matches.
type strLeaf struct {
	f      *field
	op     strOp
	nocase bool
	vals   []string // lower-cased when nocase
	set    map[string]struct{}
	globs  []glob
	res    []*regexp.Regexp
}

func (n *strLeaf) eval(c *evalCtx) bool {
	if n.nocase && n.f == cmdlineField {
		return n.matchLower(c.lowerCmdline())
	}
	if n.f.typ == typeStrings {
		for _, s := range n.f.strs(c) {
			if n.match(s) {
				return true
			}
		}
		return false
	}
	if n.f.typ == typeAddr {
		a := n.f.addr(c)
		if !a.IsValid() {
			return n.match("")
		}
		return n.match(a.String())
	}
	return n.match(n.f.str(c))
}

func (n *strLeaf) match(s string) bool {
	if n.nocase {
		s = lowerASCII(s)
	}
	return n.matchLower(s)
}

// matchLower is match for a string already lower-cased when the leaf ignores case.
func (n *strLeaf) matchLower(s string) bool {
	if n.op == opMatches {
		for _, re := range n.res {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
	switch n.op {
	case opEq:
		if n.set != nil {
			_, ok := n.set[s]
			return ok
		}
		for _, v := range n.vals {
			if s == v {
				return true
			}
		}
	case opContains:
		for _, v := range n.vals {
			if strings.Contains(s, v) {
				return true
			}
		}
	case opStartsWith:
		for _, v := range n.vals {
			if strings.HasPrefix(s, v) {
				return true
			}
		}
	case opEndsWith:
		for _, v := range n.vals {
			if strings.HasSuffix(s, v) {
				return true
			}
		}
	case opGlob:
		for i := range n.globs {
			if n.globs[i].match(s) {
				return true
			}
		}
	}
	return false
}

// lowerASCII lower-cases ASCII letters, allocating only when there is one to change.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

type numOp uint8

const (
	numEq numOp = iota + 1
	numLt
	numLe
	numGt
	numGe
)

// numLeaf compares a number field; an unknown value (no parent, no connection) never matches.
type numLeaf struct {
	f    *field
	op   numOp
	vals []int64
}

func (n *numLeaf) eval(c *evalCtx) bool {
	v, ok := n.f.num(c)
	if !ok {
		return false
	}
	switch n.op {
	case numEq:
		for _, x := range n.vals {
			if v == x {
				return true
			}
		}
		return false
	case numLt:
		return v < n.vals[0]
	case numLe:
		return v <= n.vals[0]
	case numGt:
		return v > n.vals[0]
	case numGe:
		return v >= n.vals[0]
	}
	return false
}

type boolLeaf struct {
	f    *field
	want bool
}

func (n *boolLeaf) eval(c *evalCtx) bool { return n.f.boo(c) == n.want }

type cidrLeaf struct {
	f        *field
	prefixes []netip.Prefix
}

func (n *cidrLeaf) eval(c *evalCtx) bool {
	a := n.f.addr(c)
	if !a.IsValid() {
		return false
	}
	for _, p := range n.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// glob is a shell-style pattern where "*" matches any run of characters, "/" included, and "?"
// matches one byte; there are no character classes.
type glob struct {
	parts   []string // literal runs between "*"
	leading bool     // pattern starts with "*"
	trail   bool     // pattern ends with "*"
}

func compileGlob(p string) glob {
	g := glob{parts: strings.Split(p, "*")}
	g.leading = strings.HasPrefix(p, "*")
	g.trail = strings.HasSuffix(p, "*") && len(p) > 0
	return g
}

// match is the classic greedy algorithm: each literal run is placed at its first possible
// position, which is correct for patterns with "*" only between runs.
func (g *glob) match(s string) bool {
	parts := g.parts
	if len(parts) == 1 {
		return len(s) == len(parts[0]) && hasPrefixQ(s, parts[0])
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !hasPrefixQ(s, first) || !hasPrefixQ(s[len(s)-len(last):], last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := indexQ(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

func hasPrefixQ(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '?' && p[i] != s[i] {
			return false
		}
	}
	return true
}

func indexQ(s, p string) int {
	if strings.IndexByte(p, '?') < 0 {
		return strings.Index(s, p)
	}
	for i := 0; i+len(p) <= len(s); i++ {
		if hasPrefixQ(s[i:], p) {
			return i
		}
	}
	return -1
}

// longestLiteral is the longest run of a glob without wildcards: a substring every match has.
func longestLiteral(p string) string {
	best := ""
	for _, run := range strings.FieldsFunc(p, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(best) {
			best = run
		}
	}
	return best
}

// ---- parsing ----

// CondError is a condition that does not parse, with the byte offset of the problem.
type CondError struct {
	Pos int
	Msg string
}

func (e *CondError) Error() string { return fmt.Sprintf("at offset %d: %s", e.Pos, e.Msg) }

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tString // quoted
	tOp     // = != < <= > >=
	tLParen
	tRParen
	tComma
	tList // @name
)

type token struct {
	kind tokKind
	text string
	pos  int
}

const maxConditionLen = 64 << 10
const maxDepth = 64

func lex(s string) ([]token, error) {
	if len(s) > maxConditionLen {
		return nil, &CondError{0, fmt.Sprintf("condition longer than %d bytes", maxConditionLen)}
	}
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == '\'' || c == '"':
			start := i
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, &CondError{start, "unterminated string"}
				}
				if s[i] == c {
					if i+1 < len(s) && s[i+1] == c { // a doubled quote is a literal quote
						b.WriteByte(c)
						i += 2
						continue
					}
					i++
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == c || s[i+1] == '\\') {
					i++
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{tString, b.String(), start})
		case c == '=' || c == '!' || c == '<' || c == '>':
			start := i
			i++
			if i < len(s) && s[i] == '=' {
				i++
			}
			op := s[start:i]
			if op == "!" {
				return nil, &CondError{start, `"!" must be "!=" (write "not" to negate)`}
			}
			if op == "==" {
				op = "="
			}
			toks = append(toks, token{tOp, op, start})
		default:
			start := i
			for i < len(s) && !strings.ContainsRune(" \t\n\r(),'\"=!<>", rune(s[i])) {
				i++
			}
			w := s[start:i]
			if w[0] == '@' {
				toks = append(toks, token{tList, w[1:], start})
			} else {
				toks = append(toks, token{tWord, w, start})
			}
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

type parser struct {
	toks  []token
	i     int
	lists map[string][]string
	depth int
	inAnc bool // inside "any ancestor (...)", which does not nest
}

// parseCondition compiles a condition; lists are the named lists @name may refer to.
func parseCondition(s string, lists map[string][]string) (node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, lists: lists}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &CondError{t.pos, fmt.Sprintf("unexpected %q after a complete condition (missing and/or?)", t.text)}
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) keyword(w string) bool {
	t := p.peek()
	if t.kind == tWord && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *parser) or() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return nil, &CondError{p.peek().pos, fmt.Sprintf("nested deeper than %d", maxDepth)}
	}
	var terms orNode
	for {
		n, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, n)
		if !p.keyword("or") {
			break
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *parser) and() (node, error) {
	var terms andNode
	for {
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		terms = append(terms, n)
		if !p.keyword("and") {
			break
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *parser) unary() (node, error) {
	if p.keyword("not") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxDepth {
			return nil, &CondError{p.peek().pos, fmt.Sprintf("nested deeper than %d", maxDepth)}
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	t := p.next()
	switch t.kind {
	case tLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, &CondError{c.pos, fmt.Sprintf("want \")\" to close the \"(\" at offset %d, got %q", t.pos, c.text)}
		}
		return n, nil
	case tWord:
		switch strings.ToLower(t.text) {
		case "true":
			return constNode(true), nil
		case "false":
			return constNode(false), nil
		case "any":
			return p.anyAncestor(t)
		}
		return p.comparison(t)
	case tEOF:
		return nil, &CondError{t.pos, "condition ends where a comparison was expected"}
	}
	return nil, &CondError{t.pos, fmt.Sprintf("want a field name, got %q", t.text)}
}

// anyAncestor parses the rest of "any ancestor (condition)".
func (p *parser) anyAncestor(anyTok token) (node, error) {
	if !p.keyword("ancestor") {
		return nil, &CondError{p.peek().pos, fmt.Sprintf("want \"any ancestor (condition)\", got %q after \"any\"", p.peek().text)}
	}
	if p.inAnc {
		return nil, &CondError{anyTok.pos, `"any ancestor" cannot be nested inside another "any ancestor"`}
	}
	open := p.next()
	if open.kind != tLParen {
		return nil, &CondError{open.pos, fmt.Sprintf("want \"(\" after \"any ancestor\", got %q", open.text)}
	}
	p.inAnc = true
	x, err := p.or()
	p.inAnc = false
	if err != nil {
		return nil, err
	}
	if c := p.next(); c.kind != tRParen {
		return nil, &CondError{c.pos, fmt.Sprintf("want \")\" to close the \"(\" at offset %d, got %q", open.pos, c.text)}
	}
	return anyAncestor{x}, nil
}

// operators by name; the "i" forms compare ASCII case-insensitively.
var strOps = map[string]struct {
	op     strOp
	nocase bool
}{
	"=": {opEq, false}, "in": {opEq, false}, "contains": {opContains, false}, "startswith": {opStartsWith, false},
	"endswith": {opEndsWith, false}, "glob": {opGlob, false}, "matches": {opMatches, false},
	"ieq": {opEq, true}, "iin": {opEq, true}, "icontains": {opContains, true}, "istartswith": {opStartsWith, true},
	"iendswith": {opEndsWith, true}, "iglob": {opGlob, true},
}

func (p *parser) comparison(ft token) (node, error) {
	f, ok := fields[ft.text]
	if !ok {
		return nil, &CondError{ft.pos, fmt.Sprintf("unknown field %q%s", ft.text, suggestField(ft.text))}
	}
	opTok := p.peek()
	if f.typ == typeBool {
		// a bare boolean field, or field = true/false
		if opTok.kind == tOp && (opTok.text == "=" || opTok.text == "!=") {
			p.i++
			v := p.next()
			b, err := strconv.ParseBool(v.text)
			if v.kind != tWord || err != nil {
				return nil, &CondError{v.pos, fmt.Sprintf("%s is a boolean: compare it with true or false, not %q", f.name, v.text)}
			}
			return &boolLeaf{f, b == (opTok.text == "=")}, nil
		}
		return &boolLeaf{f, true}, nil
	}
	var opName string
	switch opTok.kind {
	case tOp:
		opName = opTok.text
	case tWord:
		opName = strings.ToLower(opTok.text)
	default:
		return nil, &CondError{opTok.pos, fmt.Sprintf("want an operator after %s, got %q", f.name, opTok.text)}
	}
	p.i++
	vals, err := p.values()
	if err != nil {
		return nil, err
	}
	negate := false
	if opName == "!=" {
		negate, opName = true, "="
	}
	n, err := compileLeaf(f, opName, vals)
	if err != nil {
		return nil, &CondError{opTok.pos, err.Error()}
	}
	if negate {
		return notNode{n}, nil
	}
	return n, nil
}

// values reads one value, a parenthesised list of values, or a named list @name.
func (p *parser) values() ([]string, error) {
	t := p.next()
	switch t.kind {
	case tWord, tString:
		return []string{t.text}, nil
	case tList:
		l, ok := p.lists[t.text]
		if !ok {
			return nil, &CondError{t.pos, fmt.Sprintf("no list named %q", t.text)}
		}
		return l, nil
	case tLParen:
		var vals []string
		for {
			v := p.next()
			switch v.kind {
			case tWord, tString:
				vals = append(vals, v.text)
			case tList:
				l, ok := p.lists[v.text]
				if !ok {
					return nil, &CondError{v.pos, fmt.Sprintf("no list named %q", v.text)}
				}
				vals = append(vals, l...)
			default:
				return nil, &CondError{v.pos, fmt.Sprintf("want a value in the list, got %q", v.text)}
			}
			sep := p.next()
			if sep.kind == tRParen {
				break
			}
			if sep.kind != tComma {
				return nil, &CondError{sep.pos, fmt.Sprintf("want \",\" or \")\" in the list, got %q", sep.text)}
			}
		}
		if len(vals) == 0 {
			return nil, &CondError{t.pos, "empty list"}
		}
		return vals, nil
	}
	return nil, &CondError{t.pos, fmt.Sprintf("want a value, got %q", t.text)}
}

// compileLeaf builds the comparison of field f by operator op with vals.
func compileLeaf(f *field, op string, vals []string) (node, error) {
	if len(vals) == 0 {
		return nil, errors.New("no values to compare with")
	}
	switch f.typ {
	case typeNumber:
		var nop numOp
		switch op {
		case "=", "in":
			nop = numEq
		case "<":
			nop = numLt
		case "<=":
			nop = numLe
		case ">":
			nop = numGt
		case ">=":
			nop = numGe
		default:
			return nil, fmt.Errorf("%s is a number: use =, !=, in, <, <=, > or >=, not %q", f.name, op)
		}
		if nop != numEq && len(vals) != 1 {
			return nil, fmt.Errorf("%q compares with one number, not a list", op)
		}
		n := &numLeaf{f: f, op: nop}
		for _, v := range vals {
			x, err := strconv.ParseInt(v, 0, 64)
			if err != nil {
				return nil, fmt.Errorf("%s is a number, and %q is not one", f.name, v)
			}
			n.vals = append(n.vals, x)
		}
		return n, nil
	case typeAddr:
		if op == "cidr" {
			n := &cidrLeaf{f: f}
			for _, v := range vals {
				pfx, err := netip.ParsePrefix(v)
				if err != nil {
					a, aerr := netip.ParseAddr(v)
					if aerr != nil {
						return nil, fmt.Errorf("%q is not an address or CIDR prefix", v)
					}
					pfx = netip.PrefixFrom(a, a.BitLen())
				}
				n.prefixes = append(n.prefixes, pfx.Masked())
			}
			return n, nil
		}
	}
	if op == "cidr" {
		return nil, fmt.Errorf("cidr applies to address fields, and %s is a %s", f.name, f.typ)
	}
	so, ok := strOps[op]
	if !ok {
		return nil, fmt.Errorf("unknown operator %q for %s (a %s)", op, f.name, f.typ)
	}
	n := &strLeaf{f: f, op: so.op, nocase: so.nocase}
	for _, v := range vals {
		if so.op == opMatches {
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, fmt.Errorf("bad regular expression %q: %v", v, err)
			}
			n.res = append(n.res, re)
			continue
		}
		if so.nocase {
			v = strings.ToLower(v)
		}
		n.vals = append(n.vals, v)
		if so.op == opGlob {
			n.globs = append(n.globs, compileGlob(v))
		}
	}
	if so.op == opEq && len(n.vals) > 4 {
		n.set = make(map[string]struct{}, len(n.vals))
		for _, v := range n.vals {
			n.set[v] = struct{}{}
		}
	}
	return n, nil
}

func suggestField(name string) string {
	best, bestScore := "", 0
	for n := range fields {
		score := 0
		if strings.HasPrefix(n, name[:strings.IndexByte(name+".", '.')]) {
			score++
		}
		if strings.HasSuffix(n, name[strings.LastIndexByte(name, '.')+1:]) {
			score += 2
		}
		if score > bestScore || score == bestScore && score > 0 && n < best {
			best, bestScore = n, score
		}
	}
	if bestScore >= 2 {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}
