package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// A teammate's short regex whose counted repetitions would cost the
// sidecar seconds of CPU on one long path is refused when registered, with
// the reason, and nothing is installed.
func TestCostlyPathRegexIsRefusedWhenRegistered(t *testing.T) {
	app := named("app")
	defer app.Close()
	ctrl := make(chan string, 1)
	startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
	tc := controlClient(t, <-ctrl)
	for _, re := range []string{`.*(?:[a-y]{1,990}z)`, `.*(?:[a-y]{1,999}z|[b-z]{1,999}a|[a-x]{1,999}[yz]|[c-z]{1,999}[ab])`} {
		_, err := tc.Register(route.Route{All: true, PathRegex: re, Owner: "eve", Client: eveKey})
		if !errors.Is(err, tunnel.ErrBadRequest) || !strings.Contains(err.Error(), "too costly") {
			t.Errorf("registering path regex %q: %v, want it refused as too costly", re, err)
		}
	}
	if rs, err := tc.Routes(); err != nil || len(rs) != 0 {
		t.Errorf("routes after the refusals: %v, %v; want none", rs, err)
	}
}

// A request whose path is longer than route.MaxRegexPath is not taken by
// a route narrowed by a regex: it goes where it would without that route
// (another developer's route, or the app), on every path the sidecar
// reads requests (net/http, the fast path's raw head, HTTP/2's fields).
func TestLongPathGoesWhereItWouldWithoutTheRegexRoute(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	if _, err := table.Add(route.Route{All: true, PathRegex: `/e/.*`, Owner: "eve", Client: eveKey}, dial); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "bob", PathPrefix: "/bob/", Owner: "bob", Client: bobKey}, dial); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", route.MaxRegexPath)
	for _, c := range []struct {
		path, dev, want string
	}{
		{"/e/orders", "", "eve"},
		{"/e/" + long[3:], "", "eve"},
		{"/e/" + long, "", ""},
		{"/e/" + long, "bob", ""},
		{"/bob/" + long, "bob", "bob"},
	} {
		h := http.Header{}
		head := "GET " + c.path + " HTTP/1.1\r\nHost: web\r\n"
		fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: c.path}}
		if c.dev != "" {
			h.Set("X-Dev", c.dev)
			head += "X-Dev: " + c.dev + "\r\n"
			fields = append(fields, hpack.HeaderField{Name: "x-dev", Value: c.dev})
		}
		for how, r := range map[string]*liveRoute{
			"net/http": table.match("GET", c.path, h),
			"raw head": table.matchHead([]byte(head + "\r\n")),
			"HTTP/2":   table.matchFields(fields),
		} {
			got := ""
			if r != nil {
				got = r.Owner
			}
			if got != c.want {
				t.Errorf("%s: a %d-byte path with X-Dev %q went to %q, want %q (\"\": the app)", how, len(c.path), c.dev, got, c.want)
			}
		}
	}
}

// Through the sidecar: a long path goes to the app, answered, while a
// route narrowed by a regex takes the short ones.
func TestLongPathIsAnsweredByTheAppBesideARegexRoute(t *testing.T) {
	app, dev := named("app"), named("eve-laptop")
	defer app.Close()
	defer dev.Close()
	addr := startProxy(t, Config{Upstream: hostOf(app),
		Static: []StaticRoute{{All: true, PathRegex: `/(?:[a-y]{1,200}z)?.*`, Addr: hostOf(dev)}}})
	c := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Answered-By")
	}
	if by := get("/orders"); by != "eve-laptop" {
		t.Errorf("GET /orders answered by %q, want the regex route's", by)
	}
	if by := get("/" + strings.Repeat("a", 60<<10)); by != "app" {
		t.Errorf("GET of a 60 KiB path answered by %q, want the app", by)
	}
}

// Requests are matched without the table's lock (a route's regex never
// holds up a registration): while routes come and go and contests start
// and end, every request still goes to a route that takes it, or to the
// app. Run with -race.
func TestMatchWhileRoutesAndContestsChange(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "alice", PathRegex: `/a/[0-9]+`, Owner: "alice", Client: aliceKey}, dial); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			remove, err := table.Add(route.Route{Header: "X-Dev", Value: "bob", Owner: "bob", Client: bobKey}, dial)
			if err != nil {
				t.Error(err)
				return
			}
			resume, _, _ := table.Suspend(route.Route{Header: "X-Dev", Value: "alice", PathRegex: `/a/1`, Client: eveKey})
			resume()
			remove()
		}
	}()
	h := http.Header{"X-Dev": {"alice"}}
	head := []byte("GET /a/2 HTTP/1.1\r\nX-Dev: alice\r\n\r\n")
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/a/2"}, {Name: "x-dev", Value: "alice"}}
	for {
		select {
		case <-done:
			return
		default:
		}
		for how, r := range map[string]*liveRoute{
			"net/http": table.match("GET", "/a/2", h),
			"raw head": table.matchHead(head),
			"HTTP/2":   table.matchFields(fields),
		} {
			if r == nil || r.Owner != "alice" {
				t.Fatalf("%s: alice's GET /a/2 went to %v while routes changed, want alice's route", how, r)
			}
		}
	}
}
