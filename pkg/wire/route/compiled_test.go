package route

import (
	"fmt"
	"strings"
	"testing"
)

// A compiled route answers Takes as the route does, and without a parse,
// a compile or an allocation.
func TestCompiledTakesWithoutCompiling(t *testing.T) {
	contested := Route{Header: "X-Dev", Value: "alice", PathRegex: "/api/v[0-9]+/orders"}
	for _, tc := range []struct {
		r    Route
		want bool
	}{
		{Route{Header: "X-Dev", Value: "alice", PathRegex: "/api/v1/.*"}, true},
		{Route{Header: "X-Dev", Value: "alice", PathRegex: "/web/.*"}, false},
		{Route{Header: "X-Dev", Value: "alice", PathRegex: "/api/v2/orders"}, true},
		{Route{Header: "X-Dev", Value: "alice", PathRegex: "/api/vx"}, false},
		{Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api/"}, true},
	} {
		if got := tc.r.Takes(contested); got != tc.want {
			t.Errorf("%v takes %v's requests: %v, want %v", tc.r, contested, got, tc.want)
		}
		r, c := Compile(tc.r), Compile(contested)
		if got := r.Takes(c); got != tc.want {
			t.Errorf("compiled, %v takes %v's requests: %v, want %v", tc.r, contested, got, tc.want)
		}
		if allocs := testing.AllocsPerRun(100, func() { r.Takes(c) }); allocs != 0 {
			t.Errorf("compiled, %v.Takes allocates %.0f times a call", tc.r, allocs)
		}
	}
}

// However many distinct regexes a pod's routes and contests carry (here
// far more than a few dozen, each near the cost bound), asking the
// compiled routes allocates nothing: no regex is parsed or compiled
// again, whatever was asked before.
func TestCompiledTakesManyRegexes(t *testing.T) {
	contested := Compile(Route{Header: "X-Dev", Value: "alice", PathPrefix: "/"})
	var rs []*Compiled
	for i := range 600 {
		re := fmt.Sprintf("/t%04d/", i) + strings.Repeat("(?:[a-z0-9_-]+/)?", 20) + "[a-z]{1,8}"
		r := Route{Header: "X-Dev", Value: "alice", PathRegex: re}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, Compile(r))
	}
	allocs := testing.AllocsPerRun(3, func() {
		for _, r := range rs {
			if !r.Takes(contested) {
				t.Fatalf("%v does not take %v's requests", r.Route, contested.Route)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("asking %d compiled routes allocates %.0f times", len(rs), allocs)
	}
}
