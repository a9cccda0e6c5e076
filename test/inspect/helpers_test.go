// Package inspect_test holds the inspector's tests that need more than the
// plugin links: a browser (chromedp), a real gRPC stack, a WebSocket
// library. They live in this module (test/go.mod) so the plugin's go.mod
// requires none of them; pkg/local/inspect keeps the rest.
package inspect_test

import (
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
)

const testRoute = "X-C6O-INTERCEPT:yes"

// serveBoth serves h on loopback over HTTP/1.1 and h2c, as the CLI serves
// connections out of the tunnel, and returns its address.
func serveBoth(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p
	go func() { _ = srv.Serve(ln) }() // returns at srv.Close
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// app starts a local app (the developer's service) and returns its address.
func app(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// forwarding starts a Forwarder in front of the app at local and returns
// its base URL and the store it records into.
func forwarding(t *testing.T, local string) (string, *inspect.Store) {
	t.Helper()
	store := inspect.NewStore(0)
	return "http://" + serveBoth(t, inspect.NewForwarder(local, testRoute, store)), store
}

var client = &http.Client{Timeout: 10 * time.Second}

// waitFor waits until the store's exchanges (newest first) satisfy ok.
func waitFor(t *testing.T, s *inspect.Store, what string, ok func([]inspect.Exchange) bool) []inspect.Exchange {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		next := s.Since(math.MaxUint64).Next
		list := s.List()
		if ok(list) {
			return list
		}
		select {
		case <-next:
		case <-deadline:
			t.Fatalf("waited 5s for %s; the store holds %+v", what, list)
		}
	}
}

// waitDone waits for n exchanges, all finished, and returns them newest
// first: the caller has its response a moment before the forwarder records
// the end.
func waitDone(t *testing.T, s *inspect.Store, n int) []inspect.Exchange {
	t.Helper()
	return waitFor(t, s, "finished exchanges", func(list []inspect.Exchange) bool {
		if len(list) < n {
			return false
		}
		for _, ex := range list {
			if !ex.Done {
				return false
			}
		}
		return true
	})
}
