package doctor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The doctor tests the route whose marker it carries; of a route narrowed
// by path or method it sends a path and a method the route takes, and of
// one that is not, the entry's path with GET.
func TestRouteForAndTarget(t *testing.T) {
	m := tunnel.Marker{Header: "X-Dev", Cookie: "x-intercept", Baggage: "x-intercept"}
	bob := route.Route{Cookie: "dev", Value: "bob"}
	alice := route.Route{Header: "x-dev", Value: "alice", PathRegex: "/orders/[0-9]+", Methods: "DELETE,PUT"}
	if r, ok := RouteFor([]route.Route{bob, alice}, m, []tunnel.Carrier{tunnel.CarrierHeader}); !ok || r != alice {
		t.Fatalf("RouteFor: %v, %v; want alice's route (its header, in another case)", r, ok)
	}
	if _, ok := RouteFor([]route.Route{bob, alice}, m, []tunnel.Carrier{tunnel.CarrierBaggage}); ok {
		t.Errorf("RouteFor found a route for baggage x-intercept among %v", []route.Route{bob, alice})
	}
	path, method, ok := Target(alice, "/")
	if !ok || !Takes(alice, method, path) || method != "DELETE" {
		t.Errorf("Target(%s) = %s %s, %v: want a request the route takes", alice, method, path, ok)
	}
	if path, method, ok := Target(bob, "/"); !ok || path != "/" || method != http.MethodGet {
		t.Errorf("Target(%s) = %s %s, %v: want GET /", bob, method, path, ok)
	}
	if Takes(alice, "DELETE", "/orders/x?id=1") || !Takes(alice, "PUT", "/orders/12?x=y") {
		t.Errorf("Takes reads the path without its query, and the method")
	}
}

// SendMarked sends the method and the marker, and follows no redirect.
func TestSendMarkedWithAMethod(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	m := tunnel.NewMarker("X-Dev", "x-intercept", "x-intercept")
	status, err := SendMarked(context.Background(), http.MethodPut, srv.URL+"/orders/1", "", m)
	if err != nil || status != http.StatusFound {
		t.Fatalf("SendMarked: %d, %v; want the redirect's 302", status, err)
	}
	if got.Method != http.MethodPut || got.URL.Path != "/orders/1" || got.Header.Get("X-Dev") != m.Value() {
		t.Errorf("the entry got %s %s with X-Dev %q, want PUT /orders/1 with %q", got.Method, got.URL.Path, got.Header.Get("X-Dev"), m.Value())
	}
}
