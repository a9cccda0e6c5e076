package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Teammates' sessions contest a developer's route with many distinct
// regexes, each near the cost bound: a table holds MaxContests of them and
// refuses the next with a message that says why, and matching the
// developer's requests against every contest parses and compiles nothing
// (it allocates next to nothing), so what a request costs does not grow past any
// cache.
func TestContestsBoundedAndCompiledOnce(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("no tunnel") }
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/", Owner: "alice", Client: aliceKey}, dial); err != nil {
		t.Fatal(err)
	}
	contest := func(i int) (func(), int, error) {
		re := fmt.Sprintf("/c%04d/", i) + strings.Repeat("(?:[a-z0-9_-]+/)?", 20) + "[a-z]{1,8}"
		r := route.Route{Header: "X-Dev", Value: "alice", PathRegex: re, Owner: "eve", Client: fmt.Sprintf("%064x", i+1)}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		return table.Suspend(r)
	}
	for i := range MaxContests {
		_, n, err := contest(i)
		if err != nil || n != 1 {
			t.Fatalf("contest %d: holds %d routes, %v", i, n, err)
		}
	}
	_, _, err := contest(MaxContests)
	if !errors.Is(err, tunnel.ErrFailed) || !strings.Contains(err.Error(), fmt.Sprint(MaxContests)) {
		t.Fatalf("contest past the bound: %v, want a refusal that names the bound %d", err, MaxContests)
	}
	head := []byte("GET /orders/1 HTTP/1.1\r\nHost: shop\r\nX-Dev: alice\r\n\r\n")
	if r := table.matchHead(head); r == nil || r.Owner != "alice" {
		t.Fatal("alice's request, which no contest matches, did not reach her")
	}
	// Compiling one of these regexes allocates hundreds of times; a
	// match allocates nothing, but for a copy of a key per contest where
	// the race detector is on.
	if allocs := testing.AllocsPerRun(5, func() { table.matchHead(head) }); allocs > MaxContests {
		t.Fatalf("matching a request against %d contests allocates %.0f times: regexes compiled again?", MaxContests, allocs)
	}
}
