package route

import (
	"regexp"
	"regexp/syntax"
)

// Compiled is a route with what Conflicts and Takes read of its path
// regex worked out once: its literal start and the regex compiled as a
// sidecar runs it. A sidecar compiles each route when it is added or
// contested and asks the compiled routes, so a request's contest check
// costs no parse and no compile however many regexes the pod has seen.
// Route values are compared and sent as they are, so they carry none of
// this themselves; Route's own Conflicts and Takes compile on each call.
type Compiled struct {
	Route
	// lit is what every path the regex takes starts with; exact: the
	// regex takes lit alone. parsed is false for a regex that does not
	// parse (an invalid route, which narrows nothing).
	lit           string
	exact, parsed bool
	// re is the regex compiled as the sidecar runs it; nil if there is
	// none or it does not compile (it then takes no path).
	re *regexp.Regexp
}

// Compile works out what Conflicts and Takes read of r.
func Compile(r Route) *Compiled {
	c := &Compiled{Route: r}
	if r.PathRegex == "" {
		return c
	}
	if re, err := syntax.Parse(anchored(r.PathRegex), syntax.Perl); err == nil {
		c.lit, c.exact = literalPrefix(re.Simplify())
		c.parsed = true
	}
	if re, err := CompilePathRegex(r.PathRegex); err == nil {
		c.re = re
	}
	return c
}

// Regex returns the route's path regex compiled as the sidecar runs it
// (anchored), or nil when it has none or it does not compile.
func (c *Compiled) Regex() *regexp.Regexp { return c.re }

// Conflicts is Route.Conflicts of two compiled routes.
func (c *Compiled) Conflicts(o *Compiled) bool {
	if !c.sameRequests(o.Route) {
		return false
	}
	return pathsOverlap(c, o)
}

// Takes is Route.Takes of two compiled routes.
func (c *Compiled) Takes(contested *Compiled) bool {
	if contested.All && !c.All {
		return false
	}
	return c.Conflicts(contested)
}

// MatchesPath reports whether the route's PathPrefix and PathRegex take
// path.
func (c *Compiled) MatchesPath(path string) bool {
	if len(path) < len(c.PathPrefix) || path[:len(c.PathPrefix)] != c.PathPrefix {
		return false
	}
	if c.PathRegex == "" {
		return true
	}
	return c.re != nil && RegexTakes(c.re, path)
}
