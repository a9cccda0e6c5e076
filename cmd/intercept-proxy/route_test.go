package main

import (
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/sidecar/proxy"
)

// The standalone proxy's --route takes a header route, narrowed as an
// intercept's may be.
func TestRouteFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want proxy.StaticRoute
		err  string
	}{
		{"x-dev:alice=127.0.0.1:3000", proxy.StaticRoute{Header: "x-dev", Value: "alice", Addr: "127.0.0.1:3000"}, ""},
		{"x-dev:a;b=h:1;path-prefix=/api/", proxy.StaticRoute{Header: "x-dev", Value: "a;b", Addr: "h:1", PathPrefix: "/api/"}, ""},
		{"x-dev:alice=h:1;methods=post,get;path-regex=/v[0-9]{1,2}/;x", proxy.StaticRoute{Header: "x-dev", Value: "alice", Addr: "h:1", Methods: "GET,POST", PathRegex: "/v[0-9]{1,2}/;x"}, ""},
		{"x-dev:alice", proxy.StaticRoute{}, "is not NAME:VALUE=HOST:PORT"},
		{"x-dev:alice=h:1;path-prefix=api", proxy.StaticRoute{}, "does not start with '/'"},
		{"x-dev:alice=h:1;path=/api", proxy.StaticRoute{}, "is not path-prefix="},
	} {
		var r routeFlags
		err := r.Set(tc.in)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("--route %q: %v, want an error with %q", tc.in, err, tc.err)
			continue
		}
		if err == nil && (len(r) != 1 || r[0] != tc.want) {
			t.Errorf("--route %q gives %+v, want %+v", tc.in, r, tc.want)
		}
	}
}
