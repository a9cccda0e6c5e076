package route

import (
	"fmt"
	"strings"
	"testing"
)

// costlyRegexes are short path regexes whose counted repetitions make
// them cost a sidecar about a thousand steps for every byte of a path.
var costlyRegexes = []string{
	`(?:.{500}|.{499}x)*`,
	`(?:a|b|[a-z]{1,900})*z`,
	`.*(?:[a-y]{1,990}z)`,
	`(?:.{1000}x|.{999}y|.{998}z)*`,
	`.*(?:[a-y]{1,999}z|[b-z]{1,999}a|[a-x]{1,999}[yz]|[c-z]{1,999}[ab])`,
}

// A developer who writes a path regex with large counted repetitions is
// told at once, by the CLI and by a sidecar, that it is too costly and
// what to write instead; the regexes the docs show pass.
func TestCostlyPathRegexIsRefused(t *testing.T) {
	for _, expr := range costlyRegexes {
		_, err := ParsePathRegex(expr)
		if err == nil || !strings.Contains(err.Error(), "too costly") || !strings.Contains(err.Error(), "instead of") {
			t.Errorf("--path-regex %q: %v, want it refused as too costly, saying what to write instead", expr, err)
		}
		r := Route{All: true, PathRegex: expr}
		if err := r.Validate(); err == nil {
			t.Errorf("a sidecar accepts a route with path regex %q", expr)
		}
	}
	for _, expr := range []string{`/users/[0-9]+`, `/webhooks/stripe/?`, `^/api/v[0-9]+/`, `/(orders|carts)/[a-f0-9-]{36}(/items)?`, worstAllowedRegex(t)} {
		if _, err := ParsePathRegex(expr); err != nil {
			t.Errorf("--path-regex %q refused: %v", expr, err)
		}
	}
}

// A route narrowed by a regex does not take a request whose path is
// longer than MaxRegexPath: it goes where it would without the route.
func TestRegexRouteDoesNotTakeALongPath(t *testing.T) {
	r := Route{All: true, PathRegex: `/.*`}
	short := "/" + strings.Repeat("a", MaxRegexPath-1)
	if !r.MatchesPath(short) {
		t.Errorf("a %d-byte path is not taken by /.*", len(short))
	}
	if long := short + "a"; r.MatchesPath(long) {
		t.Errorf("a %d-byte path is taken by /.*, want no path longer than %d", len(long), MaxRegexPath)
	}
	if p := (Route{All: true, PathPrefix: "/"}); !p.MatchesPath("/" + strings.Repeat("a", 64<<10)) {
		t.Error("a route narrowed by a prefix alone does not take a long path")
	}
}

// worstAllowedRegex returns the counted repetition with the largest count
// that still compiles to at most MaxRegexInsts instructions.
func worstAllowedRegex(tb testing.TB) string {
	tb.Helper()
	best := ""
	for n := 1; n < MaxRegexInsts; n++ {
		expr := fmt.Sprintf(`.*(?:[a-y]{1,%d}z)`, n)
		if regexInsts(expr) > MaxRegexInsts {
			break
		}
		best = expr
	}
	if best == "" {
		tb.Fatal("no counted repetition fits the bound")
	}
	return best
}

// The cost of the costliest allowed regex on the longest path it runs on,
// and on a long path, which it does not run on.
func BenchmarkWorstAllowedRegex(b *testing.B) {
	expr := worstAllowedRegex(b)
	re, err := CompilePathRegex(expr)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d instructions", expr, regexInsts(expr))
	for _, n := range []int{MaxRegexPath, 64 << 10} {
		path := "/" + strings.Repeat("a", n-1)
		b.Run(fmt.Sprintf("path=%d", n), func(b *testing.B) {
			for b.Loop() {
				RegexTakes(re, path)
			}
		})
	}
}
