package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The contester's session on the squatted pod holds no route (its register
// was refused); its contest keeps it out of the guests the session pool
// closes to make room: a flood of bare connections does not end the
// contest.
func TestFloodDoesNotEndTheContest(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "web-c", Routes: table}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, ln)
	dial := func() *tunnel.Client {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := tunnel.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	aliceMarked := http.Header{"X-Dev": {"alice"}}
	mallory := dial()
	if _, err := mallory.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(eveKey, "uid-c", 18081)}); err != nil {
		t.Fatal(err)
	}
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(aliceKey, "uid-c", 18081)}
	contester := dial()
	if _, err := contester.RegisterTagged(alice, tunnel.OwnerTag(aliceKey)); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("alice: %v", err)
	}
	if err := contester.Contest(alice); err != nil {
		t.Fatal(err)
	}
	if table.match("GET", "/", aliceMarked) != nil {
		t.Fatal("not suspended")
	}
	var flood []*tunnel.Client
	for range tunnel.MaxRoutelessSessions + 1 {
		c := dial()
		c.Routes() // make sure the session is up
		flood = append(flood, c)
	}
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	// The pool closes the oldest guests once the flood is past its bound:
	// the flood's own sessions go, the contester's stays.
	waitFor(t, "the flood's first sessions closed", func() bool {
		select {
		case <-flood[0].Done():
			return true
		default:
			return false
		}
	})
	select {
	case <-contester.Done():
		t.Fatalf("%d bare connections closed the contester's session", tunnel.MaxRoutelessSessions)
	default:
	}
	if r := table.match("GET", "/", aliceMarked); r != nil {
		t.Fatalf("after the flood alice's header goes to %q again", r.Owner)
	}
}
