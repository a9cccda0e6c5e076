package preview

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// localPreview serves a preview as the CLI does on this machine, into an
// app that counts its requests and records the last Cookie header.
func localPreview(t *testing.T, r route.Route) (base string, port int, hits *atomic.Int32, lastCookie *atomic.Value) {
	hits, lastCookie = &atomic.Int32{}, &atomic.Value{}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		lastCookie.Store(req.Header.Get("Cookie"))
		if req.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "cart", Value: "42", Path: "/"})
		}
		_, _ = io.WriteString(w, "answer from the cluster")
	}))
	t.Cleanup(app.Close)
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", app.Listener.Addr().String())
	}
	ln, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: LocalOnly(port, SameOrigin(Handler(r, Target{Host: "web.shop.svc", Dial: dial})))}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://127.0.0.1:" + strconv.Itoa(port), port, hits, lastCookie
}

func send(t *testing.T, method, url, host string, header map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(""))
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// DNS rebinding: a page of rebound.example, its name now pointing at
// 127.0.0.1, asks the preview; the Host names no loopback and is refused
// before anything reaches the cluster. The loopback names are served.
func TestPreviewRefusesAReboundHost(t *testing.T) {
	base, port, hits, _ := localPreview(t, route.Route{Header: "X-Dev", Value: "alice"})
	p := strconv.Itoa(port)
	for _, host := range []string{"rebound.example:" + p, "rebound.example", "127.0.0.1.nip.io:" + p, "localhost:1", "10.0.0.1:" + p} {
		if code := send(t, http.MethodGet, base+"/api/orders", host, nil); code != http.StatusForbidden {
			t.Errorf("Host %s: %d, want 403", host, code)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests with a foreign Host reached the cluster", n)
	}
	for _, host := range []string{"localhost:" + p, "127.0.0.1:" + p, "[::1]:" + p, "LOCALHOST:" + p} {
		if code := send(t, http.MethodGet, base+"/", host, nil); code != http.StatusOK {
			t.Errorf("Host %s: %d, want 200", host, code)
		}
	}
}

// A page of another site posts through the preview (a form, a fetch):
// refused, by fetch metadata or, from an older browser, by Origin. The
// preview's own pages, a link followed to it, and a program are served.
func TestPreviewRefusesCrossSiteRequests(t *testing.T) {
	base, port, hits, _ := localPreview(t, route.Route{Header: "X-Dev", Value: "alice"})
	own := "http://localhost:" + strconv.Itoa(port)
	for name, h := range map[string]map[string]string{
		"cross-site form post": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": "https://evil.example"},
		"cross-site fetch":     {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
		"another local port":   {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors", "Origin": "http://localhost:3000"},
		"older browser":        {"Origin": "https://evil.example"},
		"sandboxed page":       {"Origin": "null"},
	} {
		if code := send(t, http.MethodPost, base+"/api/orders", "localhost:"+strconv.Itoa(port), h); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	if code := send(t, http.MethodGet, base+"/api/orders", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}); code != http.StatusForbidden {
		t.Errorf("a cross-site fetch GET: %d, want 403", code)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d cross-site requests reached the cluster", n)
	}
	for name, tc := range map[string]struct {
		method string
		h      map[string]string
	}{
		"own page's post":     {http.MethodPost, map[string]string{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Origin": own}},
		"address typed":       {http.MethodGet, map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}},
		"link from elsewhere": {http.MethodGet, map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}},
		"older browser, own":  {http.MethodPost, map[string]string{"Origin": own}},
		"curl":                {http.MethodPost, nil},
	} {
		if code := send(t, tc.method, base+"/", "localhost:"+strconv.Itoa(port), tc.h); code != http.StatusOK {
			t.Errorf("%s: %d, want 200", name, code)
		}
	}
}

// The browser sends the preview every cookie it holds for localhost (of
// any port); only the route's and those the app set through the preview
// go on into the cluster.
func TestPreviewForwardsOnlyItsCookies(t *testing.T) {
	base, _, _, last := localPreview(t, route.Route{Cookie: "dev", Value: "alice"})
	send(t, http.MethodGet, base+"/", "", map[string]string{"Cookie": "grafana_session=s3cret; dev=mallory"})
	if got := last.Load(); got != "dev=alice" {
		t.Errorf("the cluster got Cookie %q, want only the route's", got)
	}
	send(t, http.MethodGet, base+"/login", "", nil)
	send(t, http.MethodGet, base+"/", "", map[string]string{"Cookie": "cart=42; grafana_session=s3cret"})
	if got := last.Load(); got != "cart=42; dev=alice" {
		t.Errorf("the cluster got Cookie %q, want the app's cart and the route's", got)
	}
}
