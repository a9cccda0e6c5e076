package route

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// A route narrowed by path or method (--path-prefix, --path-regex,
// --method) takes, of the requests its marker (or All) matches, those
// whose path and method match too. The path is the request target's path
// as the caller sent it, before any '?': not decoded, not cleaned, so what
// a developer writes is compared byte for byte with what callers send.

// Bounds of what narrows a route: a sidecar compiles and runs the regular
// expression on every request, and a route travels on a control line.
const (
	MaxPathPrefix = 1024
	MaxPathRegex  = 1024
	MaxMethods    = 256
	// MaxRegexInsts bounds the size of a path regex's compiled program:
	// matching costs up to its instruction count for every byte of the
	// path, so counted repetitions (`[a-z]{1,900}`) would make one long
	// path cost a sidecar seconds. Every reasonable path regex (the
	// examples of the docs compile to a few dozen) fits.
	MaxRegexInsts = 500
	// MaxRegexPath is the longest path a route's regex is run on: a route
	// narrowed by a regex does not take a request whose path is longer;
	// the request goes where it would without the route.
	MaxRegexPath = 2048
)

// ParsePathPrefix checks the --path-prefix flag's value: a path as callers
// send it, starting with '/'.
func ParsePathPrefix(s string) (string, error) {
	if err := checkPathPrefix(s); err != nil {
		return "", err
	}
	return s, nil
}

func checkPathPrefix(s string) error {
	switch {
	case s == "":
		return errors.New("the path prefix is empty; give one that starts with '/', for example /api/v2")
	case len(s) > MaxPathPrefix:
		return fmt.Errorf("the path prefix is longer than %d bytes", MaxPathPrefix)
	case s[0] != '/':
		return fmt.Errorf("path prefix %q does not start with '/' (for example /api/v2)", s)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '?' || c == '#':
			return fmt.Errorf("path prefix %q has %q: a route matches the path alone, without a query or fragment", s, c)
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("path prefix %q has a space or a control character, which a request's path cannot carry; write it percent-encoded (%%20 for a space)", s)
		case c >= utf8.RuneSelf:
			return fmt.Errorf("path prefix %q has a character beyond ASCII; write it percent-encoded as callers send it (%s)", s, escapePath(s))
		}
	}
	return nil
}

// escapePath percent-encodes the bytes beyond ASCII of a path.
func escapePath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ParsePathRegex checks the --path-regex flag's value: an RE2 expression
// (Go's regexp syntax) a request's whole path must match.
func ParsePathRegex(s string) (string, error) {
	if _, err := CompilePathRegex(s); err != nil {
		return "", err
	}
	return s, nil
}

// CompilePathRegex compiles a route's PathRegex as the sidecar runs it:
// anchored at both ends, so it matches the whole path.
func CompilePathRegex(s string) (*regexp.Regexp, error) {
	switch {
	case s == "":
		return nil, errors.New("the path regex is empty; give one, for example ^/api/v[0-9]+/")
	case len(s) > MaxPathRegex:
		return nil, fmt.Errorf("the path regex is longer than %d bytes", MaxPathRegex)
	}
	// The expression alone first, so that an error quotes what was
	// written, not the anchors around it.
	_, err := regexp.Compile(s)
	var re *regexp.Regexp
	if err == nil {
		re, err = regexp.Compile(anchored(s))
	}
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, fmt.Errorf("path regex %q is not an RE2 expression (Go's regexp syntax): %s: %q", s, se.Code, se.Expr)
		}
		return nil, fmt.Errorf("path regex %q is not an RE2 expression (Go's regexp syntax): %w", s, err)
	}
	if n := regexInsts(s); n > MaxRegexInsts {
		return nil, fmt.Errorf("path regex %q is too costly to run on every request: it compiles to %d instructions, more than %d (counted repetitions such as {1,900} multiply its size); write it with fewer or smaller counts, for example [a-z]+ instead of [a-z]{1,900}, or narrow by --path-prefix", s, n, MaxRegexInsts)
	}
	return re, nil
}

// regexInsts returns the size of the program the sidecar runs for the
// path regex s (anchored), which regexp.Compile accepted.
func regexInsts(s string) int {
	re, err := syntax.Parse(anchored(s), syntax.Perl)
	if err != nil {
		return 0
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return 0
	}
	return len(prog.Inst)
}

// RegexTakes reports whether a route's compiled path regex re takes path:
// never a path longer than MaxRegexPath.
func RegexTakes[T ~string | ~[]byte](re *regexp.Regexp, path T) bool {
	if len(path) > MaxRegexPath {
		return false
	}
	switch p := any(path).(type) {
	case []byte:
		return re.Match(p)
	}
	return re.MatchString(string(path))
}

// anchored makes a route's PathRegex match whole paths only.
func anchored(s string) string { return `^(?:` + s + `)$` }

// ParseMethods parses the --method flag's value, M[,M...]: the methods in
// upper case, each once, sorted, so that two routes that take the same
// methods hold the same string.
func ParseMethods(s string) (string, error) {
	if len(s) > MaxMethods {
		return "", fmt.Errorf("the method list is longer than %d bytes", MaxMethods)
	}
	var ms []string
	for _, m := range strings.Split(s, ",") {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" {
			return "", fmt.Errorf("method list %q has an empty method; write them comma-separated, for example GET,POST", s)
		}
		if !httpguts.ValidHeaderFieldName(m) { // a method is an HTTP token
			return "", fmt.Errorf("method %q has a character HTTP does not allow in a method (%s only)", m, tokenChars)
		}
		ms = append(ms, m)
	}
	slices.Sort(ms)
	return strings.Join(slices.Compact(ms), ","), nil
}

// checkNarrowing is Validate for the fields that narrow a route: each as
// its Parse function returns it.
func (r Route) checkNarrowing() error {
	if r.PathPrefix != "" {
		if err := checkPathPrefix(r.PathPrefix); err != nil {
			return err
		}
	}
	if r.PathRegex != "" {
		if _, err := CompilePathRegex(r.PathRegex); err != nil {
			return err
		}
	}
	if r.Methods != "" {
		m, err := ParseMethods(r.Methods)
		if err != nil {
			return err
		}
		if m != r.Methods {
			return fmt.Errorf("the route's methods %q are not upper case, sorted and each once (%q)", r.Methods, m)
		}
	}
	return nil
}

// Narrowed reports whether a path or a method narrows the route.
func (r Route) Narrowed() bool {
	return r.PathPrefix != "" || r.PathRegex != "" || r.Methods != ""
}

// narrowing renders what narrows the route, after its marker: " path
// /api/v2*" for a prefix, " path ~^/v[0-9]+$" for a regex, then the
// methods; "" when nothing does.
func (r Route) narrowing() string {
	var b strings.Builder
	if r.PathPrefix != "" || r.PathRegex != "" {
		b.WriteString(" path")
		if r.PathPrefix != "" {
			b.WriteString(" " + r.PathPrefix + "*")
		}
		if r.PathRegex != "" {
			b.WriteString(" ~" + r.PathRegex)
		}
	}
	if r.Methods != "" {
		b.WriteString(" " + r.Methods)
	}
	return b.String()
}

// MethodAllowed reports whether the route takes requests with method m.
func (r Route) MethodAllowed(m string) bool {
	return r.Methods == "" || slices.Contains(strings.Split(r.Methods, ","), m)
}

// methodsOverlap reports whether some method is taken by both lists (an
// empty list takes every method).
func methodsOverlap(a, b string) bool {
	if a == "" || b == "" {
		return true
	}
	for _, m := range strings.Split(a, ",") {
		if slices.Contains(strings.Split(b, ","), m) {
			return true
		}
	}
	return false
}

// pathSet is what can be said cheaply of the paths a route takes: each
// starts with prefix; when exact, the route takes at most the one path
// prefix.
type pathSet struct {
	prefix string
	exact  bool
}

// paths returns the route's pathSet: the longer of its PathPrefix and its
// PathRegex's literal prefix (when neither is a prefix of the other, the
// route takes no path at all, and any answer is right).
func (c *Compiled) paths() pathSet {
	s := pathSet{prefix: c.PathPrefix}
	if c.PathRegex == "" || !c.parsed {
		return s // none, or an invalid route, refused by Validate: it narrows nothing
	}
	if c.exact || len(c.lit) > len(s.prefix) {
		return pathSet{prefix: c.lit, exact: c.exact}
	}
	return s
}

// literalPrefix returns what every string re matches starts with, and
// whether re matches that string alone. It looks at literals in sequence
// and goes no further than the first thing that is not one; zero-width
// assertions (^, $, \b) consume nothing, so they are skipped (where one
// fails, re matches nothing, and any answer is right).
func literalPrefix(re *syntax.Regexp) (prefix string, exact bool) {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginText, syntax.OpEndText, syntax.OpBeginLine, syntax.OpEndLine,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return "", true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return "", false
		}
		var b strings.Builder
		for _, c := range re.Rune {
			// U+FFFD also matches each byte of a path that is not UTF-8,
			// so it is not a literal of the path's bytes.
			if c == utf8.RuneError {
				return b.String(), false
			}
			b.WriteRune(c)
		}
		return b.String(), true
	case syntax.OpCapture:
		return literalPrefix(re.Sub[0])
	case syntax.OpConcat:
		var b strings.Builder
		for _, sub := range re.Sub {
			p, exact := literalPrefix(sub)
			b.WriteString(p)
			if !exact {
				return b.String(), false
			}
		}
		return b.String(), true
	}
	return "", false
}

// pathsOverlap reports whether one path could be taken by both routes:
// conservatively, yes unless their literal prefixes part (neither is a
// prefix of the other), or one takes a single path the other does not.
func pathsOverlap(a, b *Compiled) bool {
	if a.PathPrefix == "" && a.PathRegex == "" || b.PathPrefix == "" && b.PathRegex == "" {
		return true
	}
	pa, pb := a.paths(), b.paths()
	if !strings.HasPrefix(pa.prefix, pb.prefix) && !strings.HasPrefix(pb.prefix, pa.prefix) {
		return false
	}
	if pa.exact {
		return b.MatchesPath(pa.prefix) && a.MatchesPath(pa.prefix)
	}
	if pb.exact {
		return a.MatchesPath(pb.prefix) && b.MatchesPath(pb.prefix)
	}
	return true
}

// MatchesPath reports whether the route's PathPrefix and PathRegex take
// path, the regex compiled on each call: for the CLI and tests (a sidecar
// asks Compiled.MatchesPath).
func (r Route) MatchesPath(path string) bool {
	return Compile(r).MatchesPath(path)
}

// SamplePath returns a path the route takes, for a request that should
// reach it (the doctor's): "/" for a route not narrowed by path, its
// prefix, or a string built from its regex (the first alternative, the
// fewest repetitions, the first character of a class), checked against
// the route; "" when none is found.
func SamplePath(r Route) string {
	if r.PathRegex == "" {
		if r.PathPrefix == "" {
			return "/"
		}
		return r.PathPrefix
	}
	re, err := syntax.Parse(anchored(r.PathRegex), syntax.Perl)
	if err != nil {
		return ""
	}
	var b strings.Builder
	sample(&b, re.Simplify())
	// A regex that leaves the prefix's rest free: try the sample after it.
	c := Compile(r)
	for _, p := range []string{b.String(), r.PathPrefix + b.String()} {
		if c.MatchesPath(p) {
			return p
		}
	}
	return ""
}

// sample writes a short string re matches, if its first choices lead to
// one.
func sample(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		for _, c := range re.Rune {
			b.WriteRune(c)
		}
	case syntax.OpCharClass:
		b.WriteRune(classSample(re.Rune))
	case syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		b.WriteByte('x')
	case syntax.OpCapture, syntax.OpPlus:
		sample(b, re.Sub[0])
	case syntax.OpRepeat:
		for range re.Min {
			sample(b, re.Sub[0])
		}
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			sample(b, sub)
		}
	case syntax.OpAlternate:
		sample(b, re.Sub[0])
	}
	// OpStar, OpQuest: none; assertions and the empty match: nothing.
}

// classSample picks a character of a class (ranges lo, hi, ...): the
// first a path carries as it is (printable ASCII but ?, # and %), else the
// class's first.
func classSample(ranges []rune) rune {
	for i := 0; i+1 < len(ranges); i += 2 {
		for c := max(ranges[i], '!'); c <= min(ranges[i+1], '~'); c++ {
			if c != '?' && c != '#' && c != '%' {
				return c
			}
		}
	}
	if len(ranges) > 0 {
		return ranges[0]
	}
	return 'x'
}

// SampleMethod returns a method the route takes: GET when it does, else
// its first.
func SampleMethod(r Route) string {
	if r.MethodAllowed("GET") {
		return "GET"
	}
	first, _, _ := strings.Cut(r.Methods, ",")
	return first
}
