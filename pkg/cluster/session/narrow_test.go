package session

import (
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Two routes of one owner on one marker that differ by path are two
// routes: a new pod that holds one of them lacks the other, and its gate
// stays shut for it (two CLIs of one user@host, one per path).
func TestMissingRoutesByPath(t *testing.T) {
	api := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/api", Owner: "root@vm"}
	web := route.Route{Header: "X-Dev", Value: "alice", PathPrefix: "/web", Methods: "GET", Owner: "root@vm"}
	if m := MissingRoutes([]route.Route{api}, []route.Route{api, web}); len(m) != 1 || m[0] != web {
		t.Errorf("a pod with the /api route alone lacks %v, want the /web route", m)
	}
	if m := MissingRoutes([]route.Route{web, api}, []route.Route{api, web}); len(m) != 0 {
		t.Errorf("a pod with both routes lacks %v", m)
	}
	get := web
	get.Methods = "GET,HEAD"
	if m := MissingRoutes([]route.Route{web}, []route.Route{get}); len(m) != 1 {
		t.Errorf("a route of other methods is taken for the same: missing %v", m)
	}
}
