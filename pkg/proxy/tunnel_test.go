package proxy

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// A second developer asking for a taken header gets a refusal naming the
// holder, promptly, and the first keeps the route.
func TestTunnelConflictRefused(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "p", Routes: table}
	connect := func() *tunnel.Client {
		a, b := net.Pipe()
		go srv.ServeConn(context.Background(), a)
		c, err := tunnel.NewClient(b)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := connect()
	if _, err := alice.Register(route.Route{Header: "x-dev", Value: "alice", Owner: "alice@a", Client: "1"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := connect().Register(route.Route{Header: "X-DEV", Value: "alice", Owner: "eve@b", Client: "2"})
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
	if _, err := c.Register(route.Route{Cookie: "dev", Value: "alice", Client: "1"}); err != nil {
		t.Fatal(err)
	}
	if r := table.match(http.Header{"Cookie": {"session=1; dev=alice"}}); r == nil || r.Cookie != "dev" {
		t.Fatalf("request with the cookie matched %v", r)
	}
	if r := table.match(http.Header{"Cookie": {"session=1; dev=bob"}}); r != nil {
		t.Fatalf("request with another value matched %s", r.Route)
	}
}
