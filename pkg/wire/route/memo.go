package route

import (
	"regexp"
	"regexp/syntax"
	"sync"
)

// A sidecar asks Takes of its routes for each request while a contest
// lasts, and Conflicts and Takes read a route's path regex: its literal
// start and, for a route that takes a single path, the compiled regex.
// Both are worked out once per regex and kept, so a request costs a map
// lookup rather than a parse and a compile.

// regexFacts is what Conflicts and Takes need of one path regex.
type regexFacts struct {
	// lit is what every path the regex takes starts with; exact: the
	// regex takes lit alone. parsed is false for a regex that does not
	// parse (an invalid route, which narrows nothing).
	lit           string
	exact, parsed bool
	// re is the regex compiled as the sidecar runs it; nil if it does not
	// compile (it then takes no path).
	re *regexp.Regexp
}

// regexMemoMax bounds the regexes kept: a pod holds a few dozen routes;
// past the bound the memo starts over.
const regexMemoMax = 256

// regexMemo is a cache of a pure function of the regex's text, shared by
// every Route value that carries the same regex (Routes are values,
// compared and sent as they are, so they carry no cache of their own).
var regexMemo struct {
	sync.RWMutex
	m map[string]*regexFacts
}

// factsOf returns the facts of path regex s, worked out on first use.
func factsOf(s string) *regexFacts {
	regexMemo.RLock()
	f := regexMemo.m[s]
	regexMemo.RUnlock()
	if f != nil {
		return f
	}
	f = &regexFacts{}
	if re, err := syntax.Parse(anchored(s), syntax.Perl); err == nil {
		f.lit, f.exact = literalPrefix(re.Simplify())
		f.parsed = true
	}
	if re, err := CompilePathRegex(s); err == nil {
		f.re = re
	}
	regexMemo.Lock()
	defer regexMemo.Unlock()
	if len(regexMemo.m) >= regexMemoMax {
		regexMemo.m = nil
	}
	if regexMemo.m == nil {
		regexMemo.m = make(map[string]*regexFacts)
	}
	regexMemo.m[s] = f
	return f
}
