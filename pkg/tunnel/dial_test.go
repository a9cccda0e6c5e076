package tunnel

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
)

// dialSession is a sidecar that dials on loopback and a CLI's session to
// it; registered says whether the CLI holds a route there.
func dialSession(t *testing.T, registered bool) *Client {
	t.Helper()
	table := &fakeTable{routes: map[string]DialFunc{}}
	srv := &Server{Pod: "p1", Routes: table, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); host == "no-such-name.invalid" {
			// The pod's resolver, without depending on this machine's.
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if registered {
		if _, err := c.Register(route.Route{Header: "x-dev", Value: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// A server that speaks first (as databases and SSH do) and then echoes.
func speaksFirst(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Write([]byte("hello from the pod's network\n"))
				io.Copy(conn, conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// A developer with a live route reaches HOST:PORT from the pod: bytes both
// ways, the server's greeting first, a half-close passed on.
func TestDialThroughTheSidecar(t *testing.T) {
	c := dialSession(t, true)
	addr := speaksFirst(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.DialCluster(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if greeting, _ := r.ReadString('\n'); greeting != "hello from the pod's network\n" {
		t.Fatalf("greeting %q", greeting)
	}
	conn.Write([]byte("ping\n"))
	if echo, _ := r.ReadString('\n'); echo != "ping\n" {
		t.Fatalf("echo %q", echo)
	}
}

// Failures come back with their reason; the session stays usable.
func TestDialFailures(t *testing.T) {
	c := dialSession(t, true)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := closed.Addr().String()
	closed.Close()
	for addr, want := range map[string]DialFailure{
		refused:                   DialRefused,
		"no-such-name.invalid:80": DialUnresolvable,
		"not an address":          DialFailed,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.DialCluster(ctx, addr)
		cancel()
		var de *DialError
		if !errors.As(err, &de) || de.Reason != want {
			t.Errorf("dial %s: %v, want reason %s", addr, err, want)
		}
	}
	if _, err := c.DialCluster(context.Background(), speaksFirst(t)); err != nil {
		t.Errorf("a dial after the failures: %v", err)
	}
}

// A session without a live route (a doctor, a stranger with
// pods/portforward) cannot make the sidecar connect anywhere.
func TestDialNeedsALiveRoute(t *testing.T) {
	c := dialSession(t, false)
	_, err := c.DialCluster(context.Background(), speaksFirst(t))
	var de *DialError
	if !errors.As(err, &de) || de.Reason != DialNotAllowed {
		t.Fatalf("dial without a route: %v, want not-allowed", err)
	}
	if _, err := c.Register(route.Route{Header: "x-dev", Value: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DialCluster(context.Background(), speaksFirst(t)); !errors.As(err, &de) || de.Reason != DialNotAllowed {
		t.Fatalf("dial after leaving: %v, want not-allowed", err)
	}
}
