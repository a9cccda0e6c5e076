package util

import (
	"strings"
	"testing"

	_ "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden" // -update, which go test ./pkg/cmd/... passes to every package

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

func TestResolveServiceName(t *testing.T) {
	ns := "shop"
	f := &factory.Factory{Namespace: ns}
	for in, want := range map[string]string{"svc/web": "web", "service/web": "web", "web": "web", "services/web": "web", "service.v1/web": "web",
		// what `list -o name` prints, taken back
		"intercept.intercept.kubectl.dev/web": "web", "candidate.intercept.kubectl.dev/web": "web"} {
		gotNS, got, err := ResolveServiceName(f, in)
		if err != nil || got != want || gotNS != ns {
			t.Errorf("%q: got %s/%s, %v", in, gotNS, got, err)
		}
	}
	if _, _, err := ResolveServiceName(f, "deployment/web"); err == nil {
		t.Error("deployment/web accepted as a Service")
	}
}

func TestDescribeRoutes(t *testing.T) {
	got := DescribeRoutes([]route.Route{{Header: "X-Dev", Value: "a", Owner: "alice@l"}, {All: true}})
	if got != "X-Dev:a by alice@l, all traffic" {
		t.Errorf("got %q", got)
	}
}

// An owner name from a sidecar reaches the terminal only made safe.
func TestRoutesPrintedSafely(t *testing.T) {
	got := DescribeRoutes([]route.Route{{Header: "X-Dev", Value: "a", Owner: "eve\x1b]0;pwned\x07@b"}})
	if strings.ContainsAny(got, "\x1b\x07") || !strings.Contains(got, `\x1b`) {
		t.Errorf("printed %q", got)
	}
}
