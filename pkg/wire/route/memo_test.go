package route

import (
	"fmt"
	"testing"
)

// A contest asks Takes for every request: once a regex has been seen, the
// answer costs no parse, no compile and no allocation, and is the one a
// fresh parse gives.
func TestTakesReadsEachRegexOnce(t *testing.T) {
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
		if allocs := testing.AllocsPerRun(100, func() { tc.r.Takes(contested) }); allocs != 0 {
			t.Errorf("%v.Takes allocates %.0f times a call once its regexes were seen", tc.r, allocs)
		}
	}
}

// However many regexes are asked about, the memo holds a bounded number,
// and what it answers after starting over is the same.
func TestRegexMemoIsBounded(t *testing.T) {
	r := Route{All: true, PathRegex: "/only/this"}
	for i := range 3 * regexMemoMax {
		Route{All: true, PathRegex: fmt.Sprintf("/p%d/[a-z]+", i)}.Conflicts(r)
	}
	regexMemo.RLock()
	n := len(regexMemo.m)
	regexMemo.RUnlock()
	if n > regexMemoMax {
		t.Fatalf("the memo holds %d regexes, more than %d", n, regexMemoMax)
	}
	if !r.MatchesPath("/only/this") || r.MatchesPath("/only/that") {
		t.Fatal("a regex read again after the memo started over answers differently")
	}
}
