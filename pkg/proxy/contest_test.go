package proxy

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// A new pod where a teammate registered alice's header under another key
// first: alice's contest takes that route out of matching (her header's
// requests go to the app, never to the teammate) for as long as her
// session lives; it never hands her the route, and the teammate's own
// other routes keep working. When the teammate lets go, alice registers it.
func TestContestSuspendsAnotherKeysRoute(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "web-c", Routes: table}
	marked := http.Header{"X-Dev": {"alice"}}
	mallory := connectTo(t, srv)
	if _, err := mallory.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: eveKey}); err != nil {
		t.Fatal(err)
	}
	if _, err := connectTo(t, srv).Register(route.Route{Header: "X-Dev", Value: "eve", Owner: "eve@b", Client: tunnel.PodKey(eveKey, "uid-c", 18081)}); err != nil {
		t.Fatal(err)
	}
	if table.match(marked) == nil {
		t.Fatal("before the contest, the look-alike route takes alice's header")
	}

	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(aliceKey, "uid-c", 18081)}
	tag := tunnel.OwnerTag(aliceKey)
	contester := connectTo(t, srv)
	if _, err := contester.RegisterTagged(alice, tag); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("alice's registration: %v, want a conflict", err)
	}
	if err := contester.Contest(alice); err != nil {
		t.Fatalf("contest: %v", err)
	}
	if r := table.match(marked); r != nil {
		t.Fatalf("while contested, alice's header goes to %s, want the app", r.Owner)
	}
	if table.match(http.Header{"X-Dev": {"eve"}}) == nil {
		t.Fatal("the contest suspended a route it does not conflict with")
	}
	if _, err := contester.RegisterTagged(alice, tag); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("a contest handed over the route: %v", err)
	}
	if err := connectTo(t, srv).Contest(route.Route{Header: "X-Dev", Value: "nobody", Client: aliceKey}); !errors.Is(err, tunnel.ErrNotFound) {
		t.Fatalf("contesting a route nobody holds: %v, want not found", err)
	}
	if err := connectTo(t, srv).Contest(route.Route{Header: "X-Dev", Value: "alice"}); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Fatalf("a contest without a route key: %v, want a bad request", err)
	}

	// The contester's session ends: the route matches again.
	contester.Close()
	waitFor(t, "the route back after the contest ended", func() bool { return table.match(marked) != nil })

	// A contest under the holder's own route key spares that route, and
	// the holder's owner tag spares nothing: a squatter who registered
	// under alice's tag is suspended all the same.
	if err := connectTo(t, srv).Contest(route.Route{Header: "X-Dev", Value: "alice", Client: eveKey}); !errors.Is(err, tunnel.ErrNotFound) {
		t.Fatalf("a contest under the holder's own key: %v, want not found", err)
	}
	squatter := connectTo(t, srv)
	if _, err := squatter.RegisterTagged(route.Route{Header: "X-Dev", Value: "bob", Owner: "bob@b", Client: tunnel.PodKey(eveKey, "uid-c", 1)}, tag); err != nil {
		t.Fatal(err)
	}
	bob := route.Route{Header: "X-Dev", Value: "bob", Owner: "bob@b", Client: tunnel.PodKey(aliceKey, "uid-c", 1)}
	if err := connectTo(t, srv).Contest(bob); err != nil {
		t.Fatalf("contesting a squatter that borrowed the contester's tag: %v", err)
	}
	if table.match(http.Header{"X-Dev": {"bob"}}) != nil {
		t.Fatal("a squatter registered under the contester's owner tag was spared")
	}

	// Mallory lets go: alice gets the route.
	mallory.Close()
	waitFor(t, "mallory's route gone", func() bool { return len(table.List()) == 2 })
	if _, err := connectTo(t, srv).RegisterTagged(alice, tag); err != nil {
		t.Fatalf("alice once the route is free: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
