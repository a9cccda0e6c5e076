package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// narrowedCase is a request and the end that must answer it.
type narrowedCase struct {
	method, path, dev, want string
}

// send makes the request of tc on c (x-dev: tc.dev when set) and returns
// who answered.
func (tc narrowedCase) send(t *testing.T, c *http.Client, addr string, grpc bool) string {
	t.Helper()
	req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
	if tc.dev != "" {
		req.Header.Set("X-Dev", tc.dev)
	}
	if grpc {
		req.Header.Set("Content-Type", "application/grpc")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", tc.method, tc.path, err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Answered-By")
}

// Two developers share one marker, one on /api/, the other on a gRPC
// service's POSTs: each gets the requests of their paths and methods, the
// app every other, on the fast path, through net/http, and per stream of
// an h2c connection (to an h2c port and to an HTTP/1.1 one).
func TestNarrowedRoutesPerRequest(t *testing.T) {
	cases := []narrowedCase{
		{"GET", "/api/users", "alice", "api"},
		{"DELETE", "/api/users/7?force=1", "alice", "api"},
		{"GET", "/api", "alice", "app"}, // the prefix is /api/
		{"GET", "/api/users", "", "app"},
		{"GET", "/api/users", "bob", "app"},
		{"GET", "/web?next=/api/", "alice", "app"}, // the query is not the path
		{"POST", "/pkg.Svc/Method", "alice", "grpc"},
		{"GET", "/pkg.Svc/Method", "alice", "app"},
		{"POST", "/pkg.Svc2/Method", "alice", "app"},
		{"POST", "/pkg.Svc/Method/x", "alice", "app"}, // the regex matches the whole path
		{"POST", "/pkg.Svc/Method", "", "app"},
	}
	routes := func(api, grpc *http.Server, apiAddr, grpcAddr string) []StaticRoute {
		return []StaticRoute{
			{Header: "x-dev", Value: "alice", PathPrefix: "/api/", Addr: apiAddr},
			{Header: "x-dev", Value: "alice", PathPrefix: "/pkg.Svc/", PathRegex: `/pkg\.Svc/[A-Za-z]+`, Methods: "POST", Addr: grpcAddr},
		}
	}
	for _, mode := range []struct {
		name   string
		h2c    bool // the caller speaks h2c
		h2cApp bool // the port speaks h2c
		noFast bool
	}{
		{"fast path", false, false, false},
		{"net/http", false, false, true},
		{"h2c", true, true, false},
		{"h2c to HTTP/1.1", true, false, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			app, api, grpc := echoApp(t, "app", mode.h2cApp), echoApp(t, "api", mode.h2cApp), echoApp(t, "grpc", mode.h2cApp)
			addr := startProxy(t, Config{Upstream: hostOf(app), H2C: mode.h2cApp, NoFastPath: mode.noFast,
				Static: routes(api.Config, grpc.Config, hostOf(api), hostOf(grpc))})
			c := &http.Client{}
			if mode.h2c {
				c = h2cClient()
			}
			for _, tc := range cases {
				// gRPC needs HTTP/2 to the app: to an h2c port only.
				if got := tc.send(t, c, addr, mode.h2cApp); got != tc.want {
					t.Errorf("%s %s x-dev:%q answered by %q, want %q", tc.method, tc.path, tc.dev, got, tc.want)
				}
			}
		})
	}
}

// An --all route narrowed by path and method takes the requests that
// match, with or without a marker, and only those: a connection is no
// longer carried whole, so the next request on it, or a stream beside,
// goes to the app.
func TestAllNarrowedTakesMatchingRequests(t *testing.T) {
	cases := []narrowedCase{
		{"POST", "/hooks/stripe", "", "dev"},
		{"POST", "/hooks/github?delivery=1", "alice", "dev"},
		{"GET", "/hooks/stripe", "", "app"},
		{"POST", "/hook", "", "app"},
		{"POST", "/", "", "app"},
	}
	for _, mode := range []struct {
		name     string
		h2c      bool
		noFast   bool
		absolute bool
	}{
		{"fast path", false, false, false},
		{"net/http", false, true, false},
		{"h2c", true, false, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			app, dev := echoApp(t, "app", mode.h2c), echoApp(t, "dev", mode.h2c)
			addr := startProxy(t, Config{Upstream: hostOf(app), H2C: mode.h2c, NoFastPath: mode.noFast,
				Static: []StaticRoute{{All: true, PathPrefix: "/hooks/", Methods: "POST", Addr: hostOf(dev)}}})
			c := &http.Client{}
			if mode.h2c {
				c = h2cClient()
			}
			for _, tc := range cases {
				if got := tc.send(t, c, addr, mode.h2c); got != tc.want {
					t.Errorf("%s %s answered by %q, want %q", tc.method, tc.path, got, tc.want)
				}
			}
		})
	}
	// One kept-alive connection, requests in turn, one of them with an
	// absolute-form target: each goes its own way.
	app, dev := named("app"), named("dev")
	defer app.Close()
	defer dev.Close()
	addr := startProxy(t, Config{Upstream: hostOf(app),
		Static: []StaticRoute{{All: true, PathPrefix: "/hooks/", Methods: "POST", Addr: hostOf(dev)}}})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, tc := range []struct{ line, want string }{
		{"POST /hooks/a HTTP/1.1", "dev"},
		{"GET /hooks/a HTTP/1.1", "app"},
		{"POST http://example.com/hooks/b?x HTTP/1.1", "dev"},
		{"POST http://example.com?/hooks/ HTTP/1.1", "app"},
		{"POST /hooks/c HTTP/1.1", "dev"},
	} {
		fmt.Fprintf(conn, "%s\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n", tc.line)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Answered-By"); got != tc.want {
			t.Errorf("%s on a kept-alive connection answered by %q, want %q", tc.line, got, tc.want)
		}
	}
}

// The raw head, net/http's request and HTTP/2's fields read the same path
// and method, so a narrowed route decides alike on every path.
func TestNarrowedMatchAgrees(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	for _, r := range []route.Route{
		{Header: "x-dev", Value: "alice", PathPrefix: "/api/", Methods: "GET,POST"},
		{Header: "x-dev", Value: "alice", PathRegex: `/v[0-9]+/items/[^/]+`},
		{All: true, PathPrefix: "/hooks/", Methods: "GET,HEAD"},
		{Cookie: "dev", Value: "bob", PathRegex: `(?i)/ADMIN(/.*)?`, Methods: "DELETE"},
	} {
		if _, err := table.Add(r, dial); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ method, target, fields string }{
		{"GET", "/api/x", "X-Dev: alice"},
		{"PUT", "/api/x", "X-Dev: alice"},
		{"GET", "/api", "X-Dev: alice"},
		{"POST", "/api/x?q=1", "x-dev: alice"},
		{"GET", "/v2/items/42", "X-Dev: alice"},
		{"GET", "/v2/items/42/", "X-Dev: alice"},
		{"GET", "/v2/items/42?/", "X-Dev: alice"},
		{"GET", "/hooks/a", ""},
		{"GET", "/hooks?/", ""},
		{"GET", "http://h/hooks/a?b", ""},
		{"GET", "http://h", ""},
		{"DELETE", "/admin/users", "Cookie: dev=bob"},
		{"DELETE", "/Admin", "Cookie: dev=bob"},
		{"DELETE", "/administrator", "Cookie: dev=bob"},
		{"OPTIONS", "*", "X-Dev: alice"},
	} {
		head := tc.method + " " + tc.target + " HTTP/1.1\r\nHost: h\r\n"
		if tc.fields != "" {
			head += tc.fields + "\r\n"
		}
		head += "\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("%q: %v", head, err)
		}
		raw := table.matchHead([]byte(head))
		viaHTTP := table.match(req.Method, req.RequestURI, req.Header)
		fields := []hpack.HeaderField{{Name: ":method", Value: tc.method}, {Name: ":path", Value: tc.target}, {Name: ":scheme", Value: "http"}}
		for name, vs := range req.Header {
			for _, v := range vs {
				fields = append(fields, hpack.HeaderField{Name: strings.ToLower(name), Value: v})
			}
		}
		h2 := table.matchFields(fields)
		if raw != viaHTTP || (raw != h2 && !strings.HasPrefix(tc.target, "http:")) {
			t.Errorf("%s %s %q: the raw head goes to %s, net/http's request to %s, HTTP/2's fields to %s",
				tc.method, tc.target, tc.fields, routeName(raw), routeName(viaHTTP), routeName(h2))
		}
	}
}

// Deciding a narrowed route allocates nothing, the regex's included.
func TestNarrowedMatchAllocatesNothing(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	table.Add(route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/", Methods: "GET,POST"}, dial)
	table.Add(route.Route{Header: "x-dev", Value: "bob", PathRegex: `/api/v[0-9]+/.*`}, dial)
	head := []byte("GET /api/v2/users?x=1 HTTP/1.1\r\nHost: h\r\nX-Dev: bob\r\n\r\n")
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/api/v2/users?x=1"}, {Name: "x-dev", Value: "bob"}}
	h := http.Header{"X-Dev": {"bob"}}
	if n := testing.AllocsPerRun(100, func() {
		if table.matchHead(head) == nil || table.matchFields(fields) == nil || table.match("GET", "/api/v2/users?x=1", h) == nil {
			t.Fatal("no route for bob's request")
		}
	}); n != 0 {
		t.Errorf("a narrowed route's decision allocates %.0f times", n)
	}
}

// Two developers on one marker register routes with disjoint paths or
// methods; one that overlaps is refused, saying whose it overlaps and how
// to narrow it.
func TestNarrowedRegistration(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	add := func(r route.Route) error {
		_, err := table.Add(r, dial)
		return err
	}
	if err := add(route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/", Owner: "ann@a"}); err != nil {
		t.Fatal(err)
	}
	if err := add(route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/web/", Owner: "ben@b"}); err != nil {
		t.Fatalf("disjoint path refused: %v", err)
	}
	if err := add(route.Route{All: true, PathPrefix: "/hooks/", Owner: "cat@c"}); err != nil {
		t.Fatalf("an --all route on other paths refused: %v", err)
	}
	err := add(route.Route{Header: "X-DEV", Value: "alice", PathRegex: "/api/v[0-9]+", Owner: "dan@d"})
	if !errors.Is(err, tunnel.ErrConflict) || !strings.Contains(err.Error(), "X-Dev:alice path /api/* is intercepted by ann@a") || !strings.Contains(err.Error(), "--path-prefix") {
		t.Errorf("overlapping route: %v", err)
	}
	if err := add(route.Route{All: true, Owner: "eve@e"}); !errors.Is(err, tunnel.ErrConflict) {
		t.Errorf("an --all route over narrowed ones: %v", err)
	}
	if got := len(table.List()); got != 3 {
		t.Errorf("%d routes live, want 3", got)
	}
	// A contest over ann's route suspends ann's alone.
	resume, n, _ := table.Suspend(route.Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/v2/", Client: strings.Repeat("k", 32)})
	defer resume()
	if n != 1 {
		t.Errorf("a contest over /api/v2/ holds %d routes, want 1", n)
	}
}

// A contest is over the route as it was refused, narrowing included: it
// suspends the look-alike that overlaps it and no other route of the
// marker, and a session refused a narrowed route cannot contest the whole
// marker.
func TestContestNarrowed(t *testing.T) {
	table := &Table{}
	srv := &tunnel.Server{Pod: "web-c", Routes: table}
	squat := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api/", Owner: "alice@laptop", Client: tunnel.PodKey(eveKey, "uid-c", 18081)}
	web := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/web/", Owner: "bob@b", Client: tunnel.PodKey(eveKey, "web", 1)}
	for _, r := range []route.Route{squat, web} {
		if _, err := connectTo(t, srv).Register(r); err != nil {
			t.Fatal(err)
		}
	}
	alice := squat
	alice.PathPrefix, alice.Methods = "/api/v2/", "GET"
	alice.Client = tunnel.PodKey(aliceKey, "uid-c", 18081)
	c := connectTo(t, srv)
	if _, err := c.RegisterTagged(alice, tunnel.OwnerTag(aliceKey)); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("alice's narrowed route over the look-alike: %v, want a conflict", err)
	}
	whole := alice
	whole.PathPrefix, whole.Methods = "", ""
	if err := c.Contest(whole); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Fatalf("a contest of the whole marker after a narrowed route was refused: %v, want a bad request", err)
	}
	if err := c.Contest(alice); err != nil {
		t.Fatalf("contest: %v", err)
	}
	marked := http.Header{"X-Dev": {"alice"}}
	if r := table.match("GET", "/api/v2/x", marked); r != nil {
		t.Errorf("during the contest, alice's requests on /api/ go to %s", r.Owner)
	}
	if r := table.match("GET", "/web/x", marked); r == nil || r.Owner != "bob@b" {
		t.Errorf("during the contest, the marker's route on /web/ went to %s", routeName(r))
	}
}

// Whatever narrows a route and whatever request line arrives, the raw
// head, net/http's reading and HTTP/2's fields decide as the route's own
// rule says (route.MatchesPath and MethodAllowed on the path as sent).
func FuzzNarrowedMatch(f *testing.F) {
	f.Add("/api/", "", "GET", "GET", "/api/x?y")
	f.Add("", "/v[0-9]+/.*", "", "POST", "/v2/a")
	f.Add("/h", "(?i)/H.*", "DELETE,GET", "GET", "http://h/hooks?q")
	f.Add("/", "/[^/]*", "", "OPTIONS", "*")
	f.Fuzz(func(t *testing.T, prefix, regex, methods, method, target string) {
		r := route.Route{Header: "x-dev", Value: "alice", PathPrefix: prefix, PathRegex: regex}
		if methods != "" {
			r.Methods, _ = route.ParseMethods(methods)
		}
		if r.Validate() != nil {
			return
		}
		head := method + " " + target + " HTTP/1.1\r\nHost: h\r\nX-Dev: alice\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil || req.Method != method || req.RequestURI != target {
			return // not a request line net/http reads as sent
		}
		table := &Table{}
		if _, err := table.Add(r, func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		path := requestPath(target)
		want := r.MatchesPath(path) && r.MethodAllowed(method)
		raw := table.matchHead([]byte(head)) != nil
		viaHTTP := table.match(req.Method, req.RequestURI, req.Header) != nil
		h2 := table.matchFields([]hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":path", Value: target}, {Name: "x-dev", Value: "alice"}}) != nil
		if raw != want || viaHTTP != want || h2 != want {
			t.Fatalf("%s, %s %s (path %q): raw head %v, net/http %v, HTTP/2 %v; the route says %v", r, method, target, path, raw, viaHTTP, h2, want)
		}
	})
}
