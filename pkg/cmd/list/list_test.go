package list

import (
	"bytes"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

var goldenNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func goldenIntercepts() []session.Intercept {
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	return []session.Intercept{
		{Namespace: "shop", Service: "cart", Port: "http", Workload: "cart", Copy: "cart-intercept-b4k9x2", Ready: "2/2",
			Routes: []route.Route{alice, bob}, Created: goldenNow.Add(-90 * time.Minute), Status: session.StateActive},
		{Namespace: "shop", Service: "search", Port: "8080", Workload: "search", Copy: "search-intercept-7hq2zz", Ready: "1/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-3 * time.Hour), Status: session.StateIdle},
		{Namespace: "team", Service: "api", Port: "grpc", Workload: "api", Kind: "StatefulSet", Copy: "api-intercept-x2x2x2", Ready: "0/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-40 * time.Second), Status: session.StateResidue,
			Problem: "a copy without a switched Service"},
	}
}

func TestListGolden(t *testing.T) {
	for _, tc := range []struct {
		name          string
		allNamespaces bool
		wide          bool
	}{{"list", false, false}, {"list-wide-all-namespaces", true, true}} {
		var out, errOut bytes.Buffer
		if err := writeList(&out, &errOut, goldenIntercepts(), tc.allNamespaces, tc.wide, goldenNow); err != nil {
			t.Fatal(err)
		}
		out.WriteString("--- stderr\n")
		out.Write(errOut.Bytes())
		golden.Assert(t, tc.name, out.Bytes())
	}
}
