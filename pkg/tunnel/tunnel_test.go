package tunnel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeTable struct {
	mu     sync.Mutex
	routes map[string]DialFunc
	held   map[string]Route
	// old makes it a sidecar from before cookie and baggage routes, which
	// drops the fields it does not know when it decodes a route.
	old bool
}

func (f *fakeTable) Add(r Route, d DialFunc) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.old {
		r = Route{Header: r.Header, Value: r.Value, All: r.All, Owner: r.Owner, Client: r.Client}
	}
	if _, ok := f.routes[r.String()]; ok {
		return nil, ErrConflict
	}
	if f.held == nil {
		f.held = map[string]Route{}
	}
	f.routes[r.String()] = d
	f.held[r.String()] = r
	return func() { f.mu.Lock(); delete(f.routes, r.String()); delete(f.held, r.String()); f.mu.Unlock() }, nil
}

func (f *fakeTable) List() []Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Route
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

// A cookie or baggage route is registered as sent; a sidecar too old to
// know them would install a route matching nothing, so registering on one
// fails with an error that says what to do.
func TestRegisterNeedsASidecarThatKnowsTheKind(t *testing.T) {
	for _, r := range []Route{{Cookie: "dev", Value: "alice"}, {Baggage: "dev", Value: "alice smith"}} {
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

// Routes say what they match in the way the flags take it, and conflict
// only when they would claim the same requests.
func TestRouteStringAndConflicts(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Header: "X-Dev", Value: "alice"}, "X-Dev:alice"},
		{Route{Cookie: "dev", Value: "alice"}, "cookie dev=alice"},
		{Route{Baggage: "dev", Value: "alice smith/100%"}, "baggage dev=alice%20smith/100%25"},
		{Route{All: true}, "all traffic"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v renders %q, want %q", tc.r, got, tc.want)
		}
	}
	cookie := Route{Cookie: "dev", Value: "alice"}
	for _, tc := range []struct {
		o    Route
		want bool
	}{
		{Route{Cookie: "dev", Value: "alice", Owner: "eve@b"}, true},
		{Route{Cookie: "dev", Value: "bob"}, false},
		{Route{Cookie: "Dev", Value: "alice"}, false},
		{Route{Header: "dev", Value: "alice"}, false},
		{Route{Baggage: "dev", Value: "alice"}, false},
		{Route{All: true}, true},
	} {
		if got := cookie.Conflicts(tc.o); got != tc.want || tc.o.Conflicts(cookie) != tc.want {
			t.Errorf("%s conflicts with %s: %v, want %v", cookie, tc.o, got, tc.want)
		}
	}
	if !(Route{Header: "x-dev", Value: "a"}).Conflicts(Route{Header: "X-DEV", Value: "a"}) {
		t.Error("header routes differing in the name's case do not conflict")
	}
}

// A Route with only a header and a value, as older CLIs send, still means
// a header match; the new fields travel only when set.
func TestRouteJSONCompatible(t *testing.T) {
	var r Route
	if err := json.Unmarshal([]byte(`{"header":"x-dev","value":"alice","owner":"a@b"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r != (Route{Header: "x-dev", Value: "alice", Owner: "a@b"}) || r.Validate() != nil {
		t.Fatalf("old route decoded as %#v (%v)", r, r.Validate())
	}
	b, _ := json.Marshal(Route{Header: "x-dev", Value: "alice"})
	if string(b) != `{"header":"x-dev","value":"alice"}` {
		t.Errorf("header route encodes as %s", b)
	}
	b, _ = json.Marshal(Route{Cookie: "dev", Value: "alice"})
	if string(b) != `{"cookie":"dev","value":"alice"}` {
		t.Errorf("cookie route encodes as %s", b)
	}
}

// The sidecar refuses a route it could not match, saying why.
func TestRouteValidate(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Header: "x-dev", Value: "alice"}, ""},
		{Route{Cookie: "dev", Value: "alice"}, ""},
		{Route{Baggage: "dev", Value: "a b,c"}, ""},
		{Route{All: true}, ""},
		{Route{Value: "alice"}, "names no header, cookie or baggage key"},
		{Route{Header: "x-dev", Cookie: "dev", Value: "alice"}, "more than one"},
		{Route{Cookie: "dev", Value: "a b"}, "cookie values cannot have"},
		{Route{Cookie: "de v", Value: "alice"}, "cookie names cannot have"},
		{Route{Baggage: "dev"}, "no value"},
		{Route{Header: "x dev", Value: "alice"}, "header name"},
	} {
		err := tc.r.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%#v: %v, want %q", tc.r, err, tc.want)
		}
	}
}

// The flags' values are parsed into what a request must carry, with errors
// that say how to write them.
func TestParseCookieAndBaggage(t *testing.T) {
	for _, tc := range []struct {
		in, name, value, err string
	}{
		{"dev=alice", "dev", "alice", ""},
		{" dev = alice ", "dev", "alice", ""},
		{"dev=a=b", "dev", "a=b", ""},
		{"dev=", "", "", "not name=value"},
		{"=alice", "", "", "not name=value"},
		{"dev", "", "", "not name=value"},
		{"de v=alice", "", "", "cookie names cannot have"},
		{"dev=ali ce", "", "", "' '"},
		{`dev="alice"`, "", "", `'"'`},
		{"dev=a;b", "", "", "';'"},
		{"dev=jürgen", "", "", "'ü'"},
	} {
		name, value, err := ParseCookie(tc.in)
		if name != tc.name || value != tc.value || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseCookie(%q) = %q, %q, %v; want %q, %q, error with %q", tc.in, name, value, err, tc.name, tc.value, tc.err)
		}
	}
	for _, tc := range []struct {
		in, key, value, err string
	}{
		{"dev=alice", "dev", "alice", ""},
		{" dev = alice ", "dev", "alice", ""},
		{"dev=alice%20smith", "dev", "alice smith", ""},
		{"dev=100%25", "dev", "100%", ""},
		{"dev=a+b", "dev", "a+b", ""},
		{"dev=", "", "", "not key=value"},
		{"dev", "", "", "not key=value"},
		{"de v=alice", "", "", "baggage keys cannot have"},
		{"dev=alice smith", "", "", "write %20 instead"},
		{"dev=jürgen", "", "", "write %C3%BC instead"},
		{"dev=a,b", "", "", "write %2C instead"},
		{"dev=100%", "", "", "write %25 for a percent sign"},
		{"dev=%zz", "", "", "%XX"},
	} {
		key, value, err := ParseBaggage(tc.in)
		if key != tc.key || value != tc.value || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseBaggage(%q) = %q, %q, %v; want %q, %q, error with %q", tc.in, key, value, err, tc.key, tc.value, tc.err)
		}
	}
}
