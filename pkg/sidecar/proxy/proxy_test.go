package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

func named(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answered-By", name)
		w.Header().Set("X-Forwarded-Seen", r.Header.Get("X-Forwarded-For"))
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
}

// startProxy runs the sidecar in standalone mode and returns its address.
func startProxy(t testing.TB, cfg Config) string {
	t.Helper()
	return startProxyReady(t, cfg, nil)
}

// startProxyReady runs the sidecar and sends its control address on ctrl.
func startProxyReady(t testing.TB, cfg Config, ctrl chan<- string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	cfg.Listen = "127.0.0.1:0"
	cfg.Ready = func(data, control net.Addr) {
		addrc <- data.String()
		if ctrl != nil {
			ctrl <- control.String()
		}
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addrc:
		return a
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

func answeredBy(t *testing.T, c *http.Client, url string, h map[string]string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header.Add(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Forwarded-Seen") != "" {
		t.Errorf("the proxy added X-Forwarded-For: %q", resp.Header.Get("X-Forwarded-Seen"))
	}
	return resp.Header.Get("X-Answered-By")
}

// Requests with the route's header (name in any case) go to the route; all
// others to the upstream, on the same kept-alive connection, over HTTP/1.1
// and h2c (per stream).
func TestRoutingPerRequest(t *testing.T) {
	app, dev := named("app"), named("dev")
	defer app.Close()
	defer dev.Close()
	addr := startProxy(t, Config{
		Upstream: strings.TrimPrefix(app.URL, "http://"),
		Static:   []StaticRoute{{Header: "x-dev", Value: "alice", Addr: strings.TrimPrefix(dev.URL, "http://")}},
	})
	h2 := &http.Transport{}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2.Protocols = &p
	for name, c := range map[string]*http.Client{"http1": {}, "h2c": {Transport: h2}} {
		t.Run(name, func(t *testing.T) {
			for i := 0; i < 5; i++ {
				if got := answeredBy(t, c, "http://"+addr+"/", map[string]string{"X-DEV": "alice"}); got != "dev" {
					t.Fatalf("matching request answered by %q", got)
				}
				if got := answeredBy(t, c, "http://"+addr+"/", map[string]string{"X-Dev": "bob"}); got != "app" {
					t.Fatalf("other value answered by %q", got)
				}
				if got := answeredBy(t, c, "http://"+addr+"/", nil); got != "app" {
					t.Fatalf("request without header answered by %q", got)
				}
			}
		})
	}
}

// An upstream that does not listen gives a prompt 502 with a reason.
func TestUpstreamDownIs502(t *testing.T) {
	addr := startProxy(t, Config{Upstream: closedAddr(t)})
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "connect") {
		t.Fatalf("got %d %q, want 502 naming the connect failure", resp.StatusCode, body)
	}
}

// A second route for the same header value is refused, naming the owner;
// removing the first frees it.
func TestTableConflicts(t *testing.T) {
	var tb Table
	dial := func(context.Context) (net.Conn, error) { return nil, nil }
	rm, err := tb.Add(route.Route{Header: "x-dev", Value: "alice", Owner: "alice@laptop"}, dial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Add(route.Route{Header: "X-DEV", Value: "alice"}, dial); err == nil || !strings.Contains(err.Error(), "alice@laptop") {
		t.Fatalf("conflict not refused: %v", err)
	}
	if _, err := tb.Add(route.Route{Header: "x-dev", Value: "bob"}, dial); err != nil {
		t.Fatalf("another value refused: %v", err)
	}
	if _, err := tb.Add(route.Route{All: true}, dial); err == nil {
		t.Fatal("--all accepted beside header routes")
	}
	rm()
	if _, err := tb.Add(route.Route{Header: "x-dev", Value: "alice"}, dial); err != nil {
		t.Fatalf("freed route refused: %v", err)
	}
}

// Two developers may use the same cookie (or baggage key) with their own
// values; the same name and value is refused with a hint at the flag, and
// the sidecar refuses a route it could not match.
func TestTableConflictsByKind(t *testing.T) {
	var tb Table
	dial := func(context.Context) (net.Conn, error) { return nil, nil }
	for _, r := range []route.Route{
		{Cookie: "dev", Value: "alice", Owner: "alice@laptop"},
		{Cookie: "dev", Value: "bob"},
		{Baggage: "dev", Value: "alice"},
		{Header: "dev", Value: "alice"},
	} {
		if _, err := tb.Add(r, dial); err != nil {
			t.Fatalf("%s refused: %v", r, err)
		}
	}
	_, err := tb.Add(route.Route{Cookie: "dev", Value: "alice"}, dial)
	if !errors.Is(err, tunnel.ErrConflict) || !strings.Contains(err.Error(), "alice@laptop") || !strings.Contains(err.Error(), "--cookie") {
		t.Fatalf("same cookie: %v", err)
	}
	if _, err := tb.Add(route.Route{Baggage: "dev", Value: "alice"}, dial); err == nil || !strings.Contains(err.Error(), "--baggage") {
		t.Fatalf("same baggage: %v", err)
	}
	if _, err := tb.Add(route.Route{Value: "alice"}, dial); err == nil || errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("route naming nothing to match: %v", err)
	}
	if n := len(tb.List()); n != 4 {
		t.Fatalf("%d routes live, want 4", n)
	}
}

// The probe header is answered by the sidecar itself, naming its pod.
func TestProbeAnsweredBySidecar(t *testing.T) {
	app := named("app")
	defer app.Close()
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), Pod: "copy-1"})
	pod, err := probe(context.Background(), "http://"+addr+"/")
	if err != nil || pod != "copy-1" {
		t.Fatalf("probe: %q, %v", pod, err)
	}
}

// With an --all route every connection goes to the route untouched (here a
// line protocol, not HTTP), except a probe, which the sidecar answers.
func TestAllRouteRawTCPAndProbe(t *testing.T) {
	app := named("app")
	defer app.Close()
	echo, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	table := &Table{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: NewHandler(table, strings.TrimPrefix(app.URL, "http://"), "copy-1", slog.New(slog.NewTextHandler(io.Discard, nil)))}
	toHTTP := httpwire.NewConnListener(ln.Addr())
	go srv.Serve(toHTTP)
	go (&dispatcher{table: table, ctx: ctx, log: slog.New(slog.NewTextHandler(io.Discard, nil)), pod: "copy-1", http: toHTTP}).run(ln)
	defer ln.Close()
	defer srv.Close()
	table.Add(route.Route{All: true}, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", echo.Addr().String())
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "not http at all\n")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "not http at all\n" {
		t.Fatalf("raw connection got back %q", got)
	}
	if pod, err := probe(ctx, "http://"+ln.Addr().String()+"/"); err != nil || pod != "copy-1" {
		t.Fatalf("probe under --all: %q %v", pod, err)
	}
}

// A route whose tunnel is gone (the sidecar has not yet seen the developer
// leave) fails open: the request, body and all, goes to the app.
func TestGoneTunnelFailsOpen(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Answered-By", "app")
		w.Write(b)
	}))
	defer app.Close()
	table := &Table{}
	table.Add(route.Route{Header: "x-dev", Value: "alice"}, func(context.Context) (net.Conn, error) {
		return nil, errors.New("session shutdown")
	})
	h := NewHandler(table, strings.TrimPrefix(app.URL, "http://"), "p", nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader("payload"))
	req.Header.Set("X-Dev", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Answered-By") != "app" || string(body) != "payload" {
		t.Fatalf("got %d from %q body %q", resp.StatusCode, resp.Header.Get("X-Answered-By"), body)
	}
}

// Forwarding headers an ingress set reach the app as they came through
// net/http too (the path of requests that are not the fast path's): the
// sidecar neither adds nor drops them.
func TestForwardingHeadersKept(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, name := range httpwire.ForwardingHeaders() {
			w.Header()["Seen-"+name] = r.Header[name]
		}
	}))
	defer app.Close()
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), NoFastPath: true})
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	sent := http.Header{
		"Forwarded":         {"for=198.51.100.7;proto=https"},
		"X-Forwarded-For":   {"198.51.100.7, 10.0.0.2"},
		"X-Forwarded-Host":  {"shop.example.com"},
		"X-Forwarded-Proto": {"https"},
	}
	for k, v := range sent {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, v := range sent {
		if got := resp.Header.Values("Seen-" + k); len(got) != 1 || got[0] != v[0] {
			t.Errorf("app saw %s %q, want %q", k, got, v)
		}
	}
}

// A request the proxy could not complete is answered 502 while its caller
// is there, whatever the cause (a cancellation on the way included); only a
// caller who left gets nothing.
func TestErrorsAreErrors(t *testing.T) {
	h := NewHandler(&Table{}, "127.0.0.1:1", "p", nil)
	w := httptest.NewRecorder()
	h.errorHandler(w, httptest.NewRequest(http.MethodGet, "/", nil), context.Canceled)
	if w.Code != http.StatusBadGateway {
		t.Errorf("a canceled upstream request was answered %d, want 502", w.Code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = httptest.NewRecorder()
	h.errorHandler(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx), context.Canceled)
	if w.Body.Len() != 0 {
		t.Errorf("a caller who left was written %q", w.Body.String())
	}
}

// The probe operation fetches only the Service's own address: nothing else
// inside the pod's network is reachable through it.
func TestProbeOnlyTheService(t *testing.T) {
	p := probeOnly("10.96.0.10:80")
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.96.0.10:8080/", "https://10.96.0.10:80/",
		"http://user@10.96.0.10:80/", "http://kubernetes.default.svc/"} {
		if _, err := p(context.Background(), u); !errors.Is(err, tunnel.ErrBadRequest) {
			t.Errorf("probe of %s: %v, want refused", u, err)
		}
	}
	if _, err := probeOnly("")(context.Background(), "http://10.96.0.10:80/"); !errors.Is(err, tunnel.ErrBadRequest) {
		t.Errorf("a sidecar without the Service's address probed: %v", err)
	}
}
