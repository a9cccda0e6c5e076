package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// A squat of alice's header on a new pod and alice's contest of it.
type squat struct {
	table     *Table
	srv       *tunnel.Server
	mallory   *tunnel.Client
	contester *tunnel.Client
	alice     route.Route
}

var aliceMarked = http.Header{"X-Dev": {"alice"}}

// squatted registers mallory's look-alike of alice's header on a pod, then
// alice's route there, refused.
func squatted(t *testing.T) *squat {
	t.Helper()
	s := &squat{table: &Table{}}
	s.srv = &tunnel.Server{Pod: "web-c", Routes: s.table}
	s.mallory = connectTo(t, s.srv)
	if _, err := s.mallory.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: eveKey}); err != nil {
		t.Fatal(err)
	}
	if s.table.match("GET", "/", aliceMarked) == nil {
		t.Fatal("before the contest, the look-alike route takes alice's header")
	}
	s.alice = route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(aliceKey, "uid-c", 18081)}
	s.contester = connectTo(t, s.srv)
	if _, err := s.contester.RegisterTagged(s.alice, tunnel.OwnerTag(aliceKey)); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("alice's registration: %v, want a conflict", err)
	}
	return s
}

// A new pod where a teammate registered alice's header under another key
// first: alice's contest takes that route out of matching (her header's
// requests go to the app, never to the teammate) for as long as her
// session lives; it never hands her the route, the teammate's other
// routes keep working, and the sidecar lists the route as suspended. When
// the teammate lets go, alice registers it.
func TestContestSuspendsAnotherKeysRoute(t *testing.T) {
	s := squatted(t)
	if _, err := connectTo(t, s.srv).Register(route.Route{Header: "X-Dev", Value: "eve", Owner: "eve@b", Client: tunnel.PodKey(eveKey, "uid-c", 18081)}); err != nil {
		t.Fatal(err)
	}
	if err := s.contester.Contest(s.alice); err != nil {
		t.Fatalf("contest: %v", err)
	}
	if r := s.table.match("GET", "/", aliceMarked); r != nil {
		t.Fatalf("while contested, alice's header goes to %s, want the app", r.Owner)
	}
	if s.table.match("GET", "/", http.Header{"X-Dev": {"eve"}}) == nil {
		t.Fatal("the contest suspended a route that does not take alice's requests")
	}
	suspended := 0
	for _, r := range s.table.List() {
		if r.Suspended {
			suspended++
		}
	}
	if suspended != 1 {
		t.Fatalf("the sidecar lists %d routes as suspended, want the squatter's one: %+v", suspended, s.table.List())
	}
	if _, err := s.contester.RegisterTagged(s.alice, tunnel.OwnerTag(aliceKey)); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("a contest handed over the route: %v", err)
	}

	// The contester's session ends: the route matches again.
	s.contester.Close()
	waitFor(t, "the route back after the contest ended", func() bool { return s.table.match("GET", "/", aliceMarked) != nil })

	// Mallory lets go: alice gets the route.
	s.mallory.Close()
	waitFor(t, "mallory's route gone", func() bool { return len(s.table.List()) == 1 })
	if _, err := connectTo(t, s.srv).RegisterTagged(s.alice, tunnel.OwnerTag(aliceKey)); err != nil {
		t.Fatalf("alice once the route is free: %v", err)
	}
}

// Registering again, on the same session or another, under the same key
// or another, does not escape a contest: it holds every route that takes
// alice's requests under a key other than hers, whenever registered.
func TestContestHoldsRoutesRegisteredAgain(t *testing.T) {
	s := squatted(t)
	if err := s.contester.Contest(s.alice); err != nil {
		t.Fatal(err)
	}
	other := connectTo(t, s.srv)
	for _, again := range []struct {
		name string
		do   func() error
	}{
		{"the same key on the same session", func() error {
			_, err := s.mallory.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: eveKey})
			return err
		}},
		{"the same key on another session", func() error {
			_, err := other.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: eveKey})
			return err
		}},
		{"another key after letting go", func() error {
			if err := other.Unregister(); err != nil {
				return err
			}
			_, err := s.mallory.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(eveKey, "swap", 1)})
			return err
		}},
		{"every connection (--all)", func() error {
			_, err := connectTo(t, s.srv).Register(route.Route{All: true, Owner: "eve@b", Client: tunnel.PodKey(eveKey, "all", 1)})
			if errors.Is(err, tunnel.ErrConflict) {
				return nil // the suspended look-alike still conflicts
			}
			return err
		}},
	} {
		if err := again.do(); err != nil {
			t.Fatalf("%s: %v", again.name, err)
		}
		if r := s.table.match("GET", "/", aliceMarked); r != nil {
			t.Fatalf("registered again (%s), the look-alike takes alice's header again (%s)", again.name, r.Owner)
		}
	}
}

// A session may contest only the route it was just refused: nobody
// contests a route before its owner arrives, or one they never asked for.
// A contest over --all holds only --all routes.
func TestContestOnlyWhatWasRefused(t *testing.T) {
	s := squatted(t)
	if err := connectTo(t, s.srv).Contest(s.alice); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Fatalf("a contest by a session that was refused nothing: %v, want a bad request", err)
	}
	other := route.Route{Header: "X-Dev", Value: "bob", Owner: "alice@laptop", Client: s.alice.Client}
	if err := s.contester.Contest(other); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Fatalf("a contest of a route the session was not refused: %v, want a bad request", err)
	}
	if err := s.contester.Contest(route.Route{Header: "X-Dev", Value: "alice"}); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Fatalf("a contest without a route key: %v, want a bad request", err)
	}

	all := route.Route{All: true, Owner: "eve@b", Client: tunnel.PodKey(eveKey, "all", 1)}
	c := connectTo(t, s.srv)
	if _, err := c.Register(all); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("--all over a live header route: %v, want a conflict", err)
	}
	if err := c.Contest(all); !errors.Is(err, tunnel.ErrNotFound) {
		t.Fatalf("a contest over --all: %v; want it to hold no header route (not found)", err)
	}
	if s.table.match("GET", "/", aliceMarked) == nil {
		t.Fatal("a contest over --all suspended a header route")
	}
}

// An --all route that squats a new pod carries callers' connections whole;
// a contest over the header it takes closes those connections, so a
// caller's kept-alive connection does not stay with the squatter.
func TestContestClosesTheConnectionsOfAnAllRoute(t *testing.T) {
	app, squatter := named("app"), named("mallory")
	defer app.Close()
	defer squatter.Close()
	table := &Table{}
	srv := &tunnel.Server{Pod: "copy-1", Routes: table}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := &http.Server{Handler: NewHandler(table, strings.TrimPrefix(app.URL, "http://"), "copy-1", discard)}
	toHTTP := httpwire.NewConnListener(ln.Addr())
	go hs.Serve(toHTTP)
	go (&dispatcher{table: table, ctx: ctx, log: discard, pod: "copy-1", http: toHTTP}).run(ln)
	defer ln.Close()
	defer hs.Close()

	mc := connectTo(t, srv)
	if _, err := mc.Register(route.Route{All: true, Owner: "alice@laptop", Client: tunnel.PodKey(eveKey, "u", 1)}); err != nil {
		t.Fatal(err)
	}
	go mc.Serve(ctx, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", strings.TrimPrefix(squatter.URL, "http://"))
	}, func(error) {})
	kept := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 5 * time.Second}
	get := func(h http.Header) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		req.Header = h.Clone()
		resp, err := kept.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Answered-By")
	}
	if by := get(aliceMarked); by != "mallory" {
		t.Fatalf("before the contest, answered by %q", by)
	}
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: tunnel.PodKey(aliceKey, "u", 1)}
	c := connectTo(t, srv)
	if _, err := c.Register(alice); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("alice's registration: %v, want a conflict", err)
	}
	if err := c.Contest(alice); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if by := get(aliceMarked); by != "app" {
			t.Fatalf("request %d with alice's header after the contest answered by %q, want the app", i, by)
		}
		// The contest is over alice's header: the --all route keeps the
		// rest, request by request.
		if by := get(http.Header{}); by != "mallory" {
			t.Fatalf("request %d without alice's header after the contest answered by %q, want the --all route", i, by)
		}
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

// A teammate refused a route on one path alice's route takes, who contests
// it, takes from alice only that path: her requests on every other path
// still reach her, those on the contested path go to the app, and the
// sidecar lists her route as suspended (for those requests).
func TestContestOverOnePathLeavesTheRestOfTheRoute(t *testing.T) {
	app, dev := named("app"), named("alice-laptop")
	defer app.Close()
	defer dev.Close()
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
	c := <-ctrl
	dial := func() *tunnel.Client { return controlClient(t, c) }
	alice, eveC := dial(), dial()
	if _, err := alice.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	go alice.Serve(context.Background(), func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", hostOf(dev))
	}, func(error) {})
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("X-Dev", "alice")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Answered-By")
	}
	if by := get("/orders"); by != "alice-laptop" {
		t.Fatalf("before the contest, answered by %q", by)
	}
	eve := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/nothing-alice-uses/", Owner: "eve", Client: eveKey}
	if _, err := eveC.Register(eve); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("eve's narrowed route: %v, want a conflict", err)
	}
	if err := eveC.Contest(eve); err != nil {
		t.Fatalf("contest: %v", err)
	}
	if by := get("/orders"); by != "alice-laptop" {
		t.Errorf("alice's GET /orders answered by %q after a contest over %s only", by, eve.PathPrefix)
	}
	if by := get("/nothing-alice-uses/x"); by != "app" {
		t.Errorf("alice's GET of the contested path answered by %q, want the app", by)
	}
	rs, err := alice.Routes()
	if err != nil || len(rs) != 1 || !rs[0].Suspended {
		t.Errorf("alice's list after the contest: %+v, %v; want her route, suspended", rs, err)
	}
	eveC.Close()
	waitFor(t, "the contested path back to alice", func() bool { return get("/nothing-alice-uses/x") == "alice-laptop" })
}

// The same at the route table, for each way the sidecar reads a request:
// a contest over a narrowed route holds another key's route only for the
// requests the contested route matches (its marker, paths and methods).
func TestContestHoldsOnlyTheContestedRequests(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice", Client: aliceKey}, dial); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "bob", Owner: "bob", Client: bobKey}, dial); err != nil {
		t.Fatal(err)
	}
	resume, n, _ := table.Suspend(route.Route{Header: "x-dev", Value: "alice", PathRegex: `/a/[0-9]+`, Methods: "GET", Client: eveKey})
	defer resume()
	if n != 1 {
		t.Fatalf("the contest holds %d routes, want alice's", n)
	}
	for _, c := range []struct {
		method, path, dev, want string
	}{
		{"GET", "/a/1", "alice", ""},
		{"GET", "/a/x", "alice", "alice"},
		{"PUT", "/a/1", "alice", "alice"},
		{"GET", "/b", "alice", "alice"},
		{"GET", "/a/1", "bob", "bob"},
		{"GET", "/a/1", "", ""},
	} {
		h := http.Header{}
		head := c.method + " " + c.path + " HTTP/1.1\r\nHost: web\r\n"
		fields := []hpack.HeaderField{{Name: ":method", Value: c.method}, {Name: ":path", Value: c.path}}
		if c.dev != "" {
			h.Set("X-Dev", c.dev)
			head += "X-Dev: " + c.dev + "\r\n"
			fields = append(fields, hpack.HeaderField{Name: "x-dev", Value: c.dev})
		}
		for how, r := range map[string]*liveRoute{
			"net/http": table.match(c.method, c.path, h),
			"raw head": table.matchHead([]byte(head + "\r\n")),
			"HTTP/2":   table.matchFields(fields),
		} {
			got := ""
			if r != nil {
				got = r.Owner
			}
			if got != c.want {
				t.Errorf("%s: %s %s with X-Dev %q went to %q, want %q (\"\": the app)", how, c.method, c.path, c.dev, got, c.want)
			}
		}
	}
}
