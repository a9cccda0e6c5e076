package tunnel

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeTable struct {
	mu     sync.Mutex
	routes map[string]DialFunc
}

func (f *fakeTable) Add(r Route, d DialFunc) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.routes[r.String()]; ok {
		return nil, ErrConflict
	}
	f.routes[r.String()] = d
	return func() { f.mu.Lock(); delete(f.routes, r.String()); f.mu.Unlock() }, nil
}

func (f *fakeTable) List() []Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Route
	for k := range f.routes {
		n, v, _ := strings.Cut(k, ":")
		out = append(out, Route{Header: n, Value: v})
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
	pod, err := c.Register(Route{Header: "x-dev", Value: "alice"})
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

func TestParseHeader(t *testing.T) {
	for in, ok := range map[string]bool{
		"x-dev:alice": true, "X-C6O-INTERCEPT: yes": true, "a:b:c": true,
		"novalue:": false, ":value": false, "nocolon": false, "bad name:x": false,
	} {
		_, _, err := ParseHeader(in)
		if (err == nil) != ok {
			t.Errorf("ParseHeader(%q) error = %v, want ok=%v", in, err, ok)
		}
	}
}
