package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// connectTo opens a developer's tunnel session to srv over a pipe.
func connectTo(t *testing.T, srv *tunnel.Server) *tunnel.Client {
	t.Helper()
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := tunnel.NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Owner keys of test developers: secrets as the CLI makes them.
const (
	aliceKey = "a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11ce0a11c"
	eveKey   = "e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0e7e0"
)

// A route belongs to whoever opened it: a teammate who learns everything
// the sidecar lists (which has no owner key) cannot take, replace or remove
// it, with the same header or with --all; the owner, reconnecting with its
// key, replaces its own. An owner name that could carry terminal escapes is
// refused.
func TestRouteOwnership(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "p", Routes: table}
	connect := func() *tunnel.Client { return connectTo(t, srv) }
	alice := route.Route{Header: "x-dev", Value: "alice", Owner: "alice@a", Client: aliceKey}
	if _, err := connect().Register(alice); err != nil {
		t.Fatal(err)
	}
	listed, err := connect().Routes()
	if err != nil || len(listed) != 1 || listed[0].Client != "" || listed[0].Secret != "" {
		t.Fatalf("routes lists %+v, %v: want alice's route without its key", listed, err)
	}
	// Asked with a key, the sidecar says which routes are that key's.
	if mine, err := connect().RoutesOf(aliceKey); err != nil || len(mine) != 1 || !mine[0].Mine || mine[0].Client != "" {
		t.Fatalf("alice's own routes: %+v, %v", mine, err)
	}
	if theirs, err := connect().RoutesOf(eveKey); err != nil || len(theirs) != 1 || theirs[0].Mine {
		t.Fatalf("eve's view: %+v, %v", theirs, err)
	}
	eve := connect()
	for _, r := range []route.Route{
		listed[0], // everything the answer showed
		{Header: "X-Dev", Value: "alice", Owner: "alice@a", Client: eveKey},
		{All: true, Owner: "eve@b", Client: eveKey},
		{All: true, Owner: "eve@b"},
	} {
		if _, err := eve.Register(r); !errors.Is(err, tunnel.ErrConflict) {
			t.Errorf("eve registering %+v: %v, want a conflict", r, err)
		}
	}
	if err := eve.Unregister(); err != nil {
		t.Fatal(err)
	}
	if got := table.List(); len(got) != 1 || got[0].Owner != "alice@a" {
		t.Fatalf("after eve's attempts: %+v", got)
	}
	// Alice reconnecting (her old tunnel not yet seen to drop) replaces hers.
	if _, err := connect().Register(alice); err != nil {
		t.Fatalf("alice's own key: %v", err)
	}
	if got := table.List(); len(got) != 1 {
		t.Fatalf("after alice reconnected: %+v", got)
	}
	for _, owner := range []string{"eve\x1b]0;pwned\x07@b", "eve\n@b", strings.Repeat("e", 200)} {
		if _, err := connect().Register(route.Route{Header: "x-dev", Value: "eve", Owner: owner, Client: eveKey}); !errors.Is(err, tunnel.ErrBadRequest) {
			t.Errorf("owner %q: %v, want a bad request", owner, err)
		}
	}
	if _, err := connect().Register(route.Route{Header: "x-dev", Value: "eve", Client: "short"}); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Errorf("a short owner key: %v, want a bad request", err)
	}
}

// A second developer asking for a taken header gets a refusal naming the
// holder, promptly, and the first keeps the route.
func TestTunnelConflictRefused(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "p", Routes: table}
	connect := func() *tunnel.Client { return connectTo(t, srv) }
	alice := connect()
	if _, err := alice.Register(route.Route{Header: "x-dev", Value: "alice", Owner: "alice@a", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := connect().Register(route.Route{Header: "X-DEV", Value: "alice", Owner: "eve@b", Client: eveKey})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "alice@a") {
			t.Fatalf("second registration: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second registration got no answer")
	}
	if got := table.List(); len(got) != 1 || got[0].Owner != "alice@a" {
		t.Fatalf("routes after the refusal: %v", got)
	}
}

// A cookie route registered through a tunnel is held as sent, and a
// request carrying the cookie is matched to it.
func TestTunnelCookieRoute(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "p", Routes: table}
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := tunnel.NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(route.Route{Cookie: "dev", Value: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	if r := table.match("GET", "/", http.Header{"Cookie": {"session=1; dev=alice"}}); r == nil || r.Cookie != "dev" {
		t.Fatalf("request with the cookie matched %v", r)
	}
	if r := table.match("GET", "/", http.Header{"Cookie": {"session=1; dev=bob"}}); r != nil {
		t.Fatalf("request with another value matched %s", r.Route)
	}
}
