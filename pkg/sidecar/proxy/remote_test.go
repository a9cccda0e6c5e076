package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// remoteSetup is a sidecar whose developer registered a route to a remote
// endpoint: a local HTTPS stand-in for ngrok that adds the headers an edge
// adds and hands requests to the developer's guard.
type remoteSetup struct {
	sidecar *httptest.Server
	edge    *httptest.Server
	table   *Table
	client  *tunnel.Client
	laptop  chan *http.Request
}

func newRemoteSetup(t *testing.T, secret string) *remoteSetup {
	t.Helper()
	s := &remoteSetup{laptop: make(chan *http.Request, 10)}
	dev := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.laptop <- r
		io.WriteString(w, "laptop")
	})
	s.edge = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		r.Header.Set("X-Forwarded-Proto", "https")
		httpwire.Guard(secret, dev).ServeHTTP(w, r)
	}))
	s.edge.EnableHTTP2 = true
	s.edge.StartTLS()
	t.Cleanup(s.edge.Close)

	roots := x509.NewCertPool()
	roots.AddCert(s.edge.Certificate())
	s.table = &Table{RemoteTLS: &tls.Config{RootCAs: roots}}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	t.Cleanup(app.Close)
	s.sidecar = httptest.NewServer(NewHandler(s.table, strings.TrimPrefix(app.URL, "http://"), "pod-1", nil))
	t.Cleanup(s.sidecar.Close)

	a, b := net.Pipe()
	go (&tunnel.Server{Pod: "pod-1", Routes: s.table}).ServeConn(context.Background(), a)
	c, err := tunnel.NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s.client = c
	return s
}

func (s *remoteSetup) get(t *testing.T, h http.Header) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.sidecar.URL+"/cart?id=1", nil)
	req.Host = "cart.shop:8080"
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Matching requests reach the developer through the remote endpoint as the
// caller sent them; the secret never shows in the sidecar's route list.
func TestRemoteRouteReachesDeveloper(t *testing.T) {
	secret := httpwire.NewSecret()
	s := newRemoteSetup(t, secret)
	if _, err := s.client.Register(route.Route{Header: "x-dev", Value: "alice", Client: aliceKey, Remote: s.edge.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if got := s.get(t, http.Header{"X-Dev": {"alice"}, "X-Forwarded-For": {"10.0.0.7"}}); got != "laptop" {
		t.Fatalf("matching request answered %q", got)
	}
	r := <-s.laptop
	if r.Host != "cart.shop:8080" || r.URL.RequestURI() != "/cart?id=1" {
		t.Errorf("developer got host %q uri %q", r.Host, r.URL.RequestURI())
	}
	if got := r.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "10.0.0.7" {
		t.Errorf("X-Forwarded-For at the developer: %q, want the caller's only", got)
	}
	for _, name := range []string{httpwire.SecretHeader, httpwire.HostHeader, httpwire.SkipWarningHeader, "X-Forwarded-Proto"} {
		if v := r.Header.Get(name); v != "" {
			t.Errorf("developer got %s: %q", name, v)
		}
	}
	if got := s.get(t, http.Header{"X-Dev": {"bob"}}); got != "app" {
		t.Fatalf("other request answered %q", got)
	}
	for _, rt := range s.table.List() {
		if rt.Secret != "" {
			t.Fatalf("route list shows the secret: %+v", rt)
		}
	}
}

// A stranger who finds the endpoint's URL is refused.
func TestRemoteEndpointRefusesStrangers(t *testing.T) {
	secret := httpwire.NewSecret()
	s := newRemoteSetup(t, secret)
	client := s.edge.Client()
	for _, h := range []string{"", "wrong", secret[:len(secret)-1]} {
		req, _ := http.NewRequest(http.MethodGet, s.edge.URL+"/", nil)
		if h != "" {
			req.Header.Set(httpwire.SecretHeader, h)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("secret %q: status %d, want 403", h, resp.StatusCode)
		}
	}
	select {
	case r := <-s.laptop:
		t.Fatalf("a stranger's request reached the developer: %s", r.URL)
	default:
	}
}

// When the remote endpoint can't be reached the developer's requests go to
// the app rather than fail.
func TestRemoteRouteFailsOpen(t *testing.T) {
	secret := httpwire.NewSecret()
	s := newRemoteSetup(t, secret)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	ln.Close()
	if _, err := s.client.Register(route.Route{Header: "x-dev", Value: "alice", Client: aliceKey, Remote: dead, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	if got := s.get(t, http.Header{"X-Dev": {"alice"}}); got != "app" {
		t.Fatalf("request for an unreachable endpoint answered %q", got)
	}
}

// Routes with a remote endpoint must carry a real secret and an https URL.
func TestRemoteRouteValidation(t *testing.T) {
	good := httpwire.NewSecret()
	for _, r := range []route.Route{
		{Header: "x-dev", Value: "a", Remote: "https://abc.ngrok.app"},
		{Header: "x-dev", Value: "a", Remote: "https://abc.ngrok.app", Secret: "short"},
		{Header: "x-dev", Value: "a", Remote: "http://abc.ngrok.app", Secret: good},
		{Header: "x-dev", Value: "a", Secret: good},
		{All: true, Remote: "https://abc.ngrok.app", Secret: good},
	} {
		if err := r.Validate(); err == nil {
			t.Errorf("route %+v passed validation", r)
		}
	}
	if err := (route.Route{Header: "x-dev", Value: "a", Remote: "https://abc.ngrok.app", Secret: good}).Validate(); err != nil {
		t.Error(err)
	}
}

// Without a TLS configuration of its own a remote route trusts the web's
// usual roots, which the sidecar carries since its image has none.
func TestRemoteRoutesTrustWebRoots(t *testing.T) {
	if n := len(webRoots().Subjects()); n < 50 { //nolint:staticcheck // SA1019 is about pools from SystemCertPool; this one is built here, and no other method counts a pool
		t.Fatalf("%d web roots, want the usual bundle", n)
	}
}
