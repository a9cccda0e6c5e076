package tunnel

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

type fakeTable struct {
	mu     sync.Mutex
	routes map[string]DialFunc
	held   map[string]route.Route
	// old makes it a sidecar from before cookie and baggage routes, which
	// drops the fields it does not know when it decodes a route.
	old bool
}

func (f *fakeTable) Add(r route.Route, d DialFunc) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.old {
		r = route.Route{Header: r.Header, Value: r.Value, All: r.All, Owner: r.Owner, Client: r.Client}
	}
	if _, ok := f.routes[r.String()]; ok {
		return nil, ErrConflict
	}
	if f.held == nil {
		f.held = map[string]route.Route{}
	}
	f.routes[r.String()] = d
	f.held[r.String()] = r
	return func() { f.mu.Lock(); delete(f.routes, r.String()); delete(f.held, r.String()); f.mu.Unlock() }, nil
}

func (f *fakeTable) List() []route.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []route.Route
	for _, r := range f.held {
		out = append(out, r)
	}
	return out
}

func (f *fakeTable) dial(key string) DialFunc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes[key]
}

// A registered route carries connections to the developer's local port; the
// route disappears as soon as the developer's end closes.
func TestRegisterServeAndLeave(t *testing.T) {
	table := &fakeTable{routes: map[string]DialFunc{}}
	srv := &Server{Pod: "p1", Routes: table}
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := c.Register(route.Route{Header: "x-dev", Value: "alice"})
	if err != nil || pod != "p1" {
		t.Fatalf("register: %q %v", pod, err)
	}
	local, _ := net.Listen("tcp", "127.0.0.1:0")
	defer local.Close()
	go func() {
		conn, err := local.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Write([]byte("laptop got " + line))
		conn.Close()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go c.Serve(ctx, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", local.Addr().String())
	}, nil)

	conn, err := table.dial("x-dev:alice")(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hello\n"))
	reply, _ := bufio.NewReader(conn).ReadString('\n')
	if reply != "laptop got hello\n" {
		t.Fatalf("reply %q", reply)
	}
	conn.Close()

	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for len(table.List()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("route still live 2s after the developer left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A cookie or baggage route is registered as sent; a sidecar too old to
// know them would install a route matching nothing, so registering on one
// fails with an error that says what to do.
func TestRegisterNeedsASidecarThatKnowsTheKind(t *testing.T) {
	for _, r := range []route.Route{{Cookie: "dev", Value: "alice"}, {Baggage: "dev", Value: "alice smith"}} {
		for _, old := range []bool{false, true} {
			srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}, old: old}}
			a, b := net.Pipe()
			go srv.ServeConn(context.Background(), a)
			c, err := NewClient(b)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Register(r)
			c.Close()
			switch {
			case !old && err != nil:
				t.Errorf("%s on a current sidecar: %v", r, err)
			case old && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "older than this CLI")):
				t.Errorf("%s on an old sidecar: %v, want ErrUnsupported saying it is older", r, err)
			}
		}
	}
}
