package util

import (
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// The curl printed to try an intercept sends a request the route takes:
// its marker, and for a narrowed route a path and a method of the route's;
// nothing for --all alone, nor for a route that would put a control
// character on the terminal.
func TestTryCurl(t *testing.T) {
	const base = "http://web.shop:8080/"
	for _, tc := range []struct {
		r    route.Route
		want string
	}{
		{route.Route{Header: "x-dev", Value: "alice"}, "curl -H 'x-dev: alice' http://web.shop:8080/"},
		{route.Route{Cookie: "dev", Value: "alice", PathPrefix: "/api/v2"}, "curl -H 'Cookie: dev=alice' http://web.shop:8080/api/v2"},
		{route.Route{Header: "x-dev", Value: "alice", PathRegex: "/users/[0-9]+", Methods: "DELETE"}, "curl -X DELETE -H 'x-dev: alice' http://web.shop:8080/users/0"},
		{route.Route{Header: "x-dev", Value: "alice", Methods: "HEAD"}, "curl -I -H 'x-dev: alice' http://web.shop:8080/"},
		{route.Route{All: true, PathPrefix: "/hooks", Methods: "POST,PUT"}, "curl -X POST http://web.shop:8080/hooks"},
		{route.Route{All: true, PathPrefix: "/a&b"}, "curl 'http://web.shop:8080/a&b'"},
		{route.Route{All: true}, ""},
		{route.Route{Header: "x-dev", Value: "a\x1b]0;x\x07"}, ""},
	} {
		if got := TryCurl(tc.r, base); got != tc.want {
			t.Errorf("TryCurl(%s) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// What narrows a route, in words, for the active message and --dry-run.
func TestNarrowing(t *testing.T) {
	for _, tc := range []struct {
		r    route.Route
		want string
	}{
		{route.Route{Header: "x-dev", Value: "alice"}, ""},
		{route.Route{PathPrefix: "/api"}, "path starting with /api"},
		{route.Route{PathRegex: "/v[0-9]+", Methods: "GET"}, "path matching /v[0-9]+, method GET"},
		{route.Route{Methods: "GET,HEAD,POST"}, "method GET, HEAD or POST"},
	} {
		if got := Narrowing(tc.r); got != tc.want {
			t.Errorf("Narrowing(%#v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// A Service that stays switched names the others' routes with what
// narrows them: two routes on one header are told apart by their paths.
func TestWhyStayedNamesNarrowedRoutes(t *testing.T) {
	left := &session.Left{Others: []route.Route{
		{Header: "X-Dev", Value: "alice", PathPrefix: "/api", Owner: "alice@laptop"},
		{Header: "X-Dev", Value: "alice", PathPrefix: "/cart", Methods: "GET", Owner: "bob@laptop"},
	}}
	why := WhyStayed(left)
	for _, want := range []string{"X-Dev:alice path /api* by alice@laptop", "X-Dev:alice path /cart* GET by bob@laptop"} {
		if !strings.Contains(why, want) {
			t.Errorf("WhyStayed: %q lacks %q", why, want)
		}
	}
}
