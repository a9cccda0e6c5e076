package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// rawApp is an app that records each request head byte for byte and
// answers with the response its answer function gives.
type rawApp struct {
	ln    net.Listener
	mu    sync.Mutex
	heads []string
	conns atomic.Int64
	open  []net.Conn
}

// kill stops the app as a restart would: listener and connections closed.
func (a *rawApp) kill() {
	a.ln.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.open {
		c.Close()
	}
}

func newRawApp(t *testing.T, answer func(head string) string) *rawApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRaw(t, ln, answer)
}

func serveRaw(t *testing.T, ln net.Listener, answer func(head string) string) *rawApp {
	a := &rawApp{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns.Add(1)
			a.mu.Lock()
			a.open = append(a.open, c)
			a.mu.Unlock()
			go a.serve(c, answer)
		}
	}()
	return a
}

func (a *rawApp) serve(c net.Conn, answer func(head string) string) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		a.mu.Lock()
		a.heads = append(a.heads, head.String())
		a.mu.Unlock()
		out := answer(head.String())
		if _, err := io.WriteString(c, out); err != nil || strings.Contains(out, "Connection: close") {
			return
		}
	}
}

func (a *rawApp) addr() string { return a.ln.Addr().String() }

func (a *rawApp) lastHead() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.heads) == 0 {
		return ""
	}
	return a.heads[len(a.heads)-1]
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// send writes raw to addr and reads n responses back. Each body is read
// whole and closed; the response carries a copy in memory, which needs no
// closing.
//
//bodyclose:handled
func send(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	out := make([]*http.Response, n)
	for i := range out {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out[i] = resp
	}
	return out
}

// What the app receives through the sidecar is what the caller sent: header
// names' case, their order, duplicates, nothing added, nothing dropped.
func TestFastPathIsTransparent(t *testing.T) {
	app := newRawApp(t, func(string) string { return okResponse })
	proxy := startProxy(t, Config{Upstream: app.addr()})
	raw := "GET /a?x=1;y=2 HTTP/1.1\r\n" +
		"host: shop.example\r\n" +
		"x-lower: 1\r\n" +
		"X-UPPER: 2\r\n" +
		"X-Dup: first\r\n" +
		"Accept: */*\r\n" +
		"X-Dup: second\r\n" +
		"X-Forwarded-For: 198.51.100.7\r\n" +
		"x-spaced:   padded value  \r\n" +
		"\r\n"
	send(t, app.addr(), raw, 1)
	direct := app.lastHead()
	send(t, proxy, raw, 1)
	if via := app.lastHead(); via != direct {
		t.Fatalf("the app saw a different head through the sidecar:\ndirect:\n%q\nvia the sidecar:\n%q", direct, via)
	}
}

// Pipelined requests are answered in order over one connection to the app.
func TestFastPathPipeliningAndKeepAlive(t *testing.T) {
	app := newRawApp(t, func(head string) string {
		path := strings.Fields(head)[1]
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(path), path)
	})
	proxy := startProxy(t, Config{Upstream: app.addr()})
	var raw strings.Builder
	for i := range 5 {
		fmt.Fprintf(&raw, "GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
	}
	fmt.Fprintf(&raw, "POST /r5 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	resps := send(t, proxy, raw.String(), 6)
	for i, r := range resps {
		body, _ := io.ReadAll(r.Body)
		if want := fmt.Sprintf("/r%d", i); string(body) != want {
			t.Errorf("response %d is %q, want %q", i, body, want)
		}
	}
	if n := app.conns.Load(); n != 1 {
		t.Errorf("the app got %d connections for one caller's connection, want 1", n)
	}
}

// Framing the app chose reaches the caller intact: chunked with trailers,
// HEAD with a length but no body, 204, a 103 before the answer, and a body
// delimited by the app closing.
func TestFastPathResponseFraming(t *testing.T) {
	app := newRawApp(t, func(head string) string {
		switch strings.Fields(head)[1] {
		case "/chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
		case "/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
		case "/empty":
			return "HTTP/1.1 204 No Content\r\n\r\n"
		case "/hints":
			return "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + okResponse
		}
		return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close"
	})
	proxy := startProxy(t, Config{Upstream: app.addr()})
	resps := send(t, proxy, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /hints HTTP/1.1\r\nHost: x\r\n\r\n", 4)
	if body, _ := io.ReadAll(resps[0].Body); string(body) != "hello world" || resps[0].Trailer.Get("X-Sum") != "42" {
		t.Errorf("chunked: body %q trailer %v", body, resps[0].Trailer)
	}
	if resps[1].StatusCode != 204 || resps[2].StatusCode != 103 || resps[3].StatusCode != 200 {
		t.Errorf("statuses %d %d %d, want 204, then 103 and its 200", resps[1].StatusCode, resps[2].StatusCode, resps[3].StatusCode)
	}
	// HEAD: the length of the body a GET would get, and no body, so the
	// next response on the connection is read right.
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /empty HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	head, err := http.ReadResponse(br, &http.Request{Method: http.MethodHead})
	if err != nil || head.ContentLength != 1000 {
		t.Fatalf("HEAD: %v, Content-Length %d, want 1000", err, head.ContentLength)
	}
	head.Body.Close()
	next, err := http.ReadResponse(br, nil)
	if err != nil || next.StatusCode != 204 {
		t.Fatalf("the response after HEAD: %v %v", err, next)
	}
	next.Body.Close()
	r := send(t, proxy, "GET /close HTTP/1.1\r\nHost: x\r\n\r\n", 1)[0]
	if body, _ := io.ReadAll(r.Body); string(body) != "until close" {
		t.Errorf("close-delimited body %q", body)
	}
}

// CONNECT is left to net/http, which refuses it as with --no-fast-path: a
// 2xx would make the connection a tunnel, which the fast path's framing
// cannot carry (it read the app's answer as a body delimited by closing and
// passed nothing of the caller's on, holding both connections open). The
// CONNECT names an address of the test's own, by IP: nothing is resolved,
// and a sidecar that dialed it would be seen here, not wait on the host's
// network.
func TestFastPathLeavesConnectToNetHTTP(t *testing.T) {
	established := func(string) string { return "HTTP/1.1 200 Connection established\r\n\r\n" }
	app := newRawApp(t, established)
	target := newRawApp(t, established)
	for _, noFastPath := range []bool{false, true} {
		proxy := startProxy(t, Config{Upstream: app.addr(), NoFastPath: noFastPath})
		r := send(t, proxy, "CONNECT "+target.addr()+" HTTP/1.1\r\nHost: "+target.addr()+"\r\n\r\n", 1)[0]
		if r.StatusCode != http.StatusBadGateway {
			t.Errorf("no fast path %v: status %d, want net/http's 502", noFastPath, r.StatusCode)
		}
	}
	if n := app.conns.Load(); n != 0 {
		t.Errorf("the app got %d connections", n)
	}
	if n := target.conns.Load(); n != 0 {
		t.Errorf("the CONNECT's target got %d connections", n)
	}
}

// An app that closes idle kept connections (as many do after a few
// seconds) costs the caller nothing: the request goes again on a new one.
func TestFastPathAppClosedKeptConnection(t *testing.T) {
	app := newRawApp(t, func(string) string { return okResponse })
	proxy := startProxy(t, Config{Upstream: app.addr()})
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() int {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if get() != 200 {
		t.Fatal("first request failed")
	}
	// The app restarts: every kept connection to it is closed.
	app.kill()
	app2 := newRawAppOn(t, app.addr(), func(string) string { return okResponse })
	time.Sleep(50 * time.Millisecond)
	if code := get(); code != 200 || app2.lastHead() == "" {
		t.Fatalf("after the app closed the kept connection: status %d", code)
	}
}

// newRawAppOn starts an app on addr, once the port is free again.
func newRawAppOn(t *testing.T, addr string, answer func(string) string) *rawApp {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return serveRaw(t, ln, answer)
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A 32 MiB upload echoed back while it is still being sent: the body and
// the response stream at once, nothing is held whole.
func TestFastPathFullDuplexEcho(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		io.Copy(w, r.Body)
	}))
	defer app.Close()
	proxy := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://")})
	const size = 32 << 20
	src := io.LimitReader(rand.Reader, size)
	sent := sha256.New()
	req, _ := http.NewRequest(http.MethodPost, "http://"+proxy+"/echo", io.TeeReader(src, sent))
	req.ContentLength = size
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatalf("echo: %d bytes, err %v, same bytes %v", n, err, bytes.Equal(got.Sum(nil), sent.Sum(nil)))
	}
}

// Server-sent events reach the caller as they are written, not when the
// response ends.
func TestFastPathStreamsAsWritten(t *testing.T) {
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	}))
	defer app.Close()
	defer close(release)
	proxy := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://")})
	resp, err := http.Get("http://" + proxy + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
}

// A developer's route added while a caller's connection is kept alive
// applies to that connection's next request.
func TestFastPathHandsMatchingRequestsToTheRoute(t *testing.T) {
	app := named("app")
	defer app.Close()
	dev := named("dev")
	defer dev.Close()
	ctrl := make(chan string, 1)
	cfg := Config{Upstream: strings.TrimPrefix(app.URL, "http://"), Control: "127.0.0.1:0", Listen: "127.0.0.1:0"}
	proxyAddr := startProxyReady(t, cfg, ctrl)
	c := &http.Client{}
	if got := answeredBy(t, c, "http://"+proxyAddr+"/", map[string]string{"X-Dev": "alice"}); got != "app" {
		t.Fatalf("before the route: %q", got)
	}
	tc := controlClient(t, <-ctrl)
	if _, err := tc.Register(route.Route{Header: "x-dev", Value: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	go tc.Serve(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", strings.TrimPrefix(dev.URL, "http://"))
	}, nil)
	if got := answeredBy(t, c, "http://"+proxyAddr+"/", map[string]string{"X-Dev": "alice"}); got != "dev" {
		t.Fatalf("with the route, on the kept connection: %q", got)
	}
	if got := answeredBy(t, c, "http://"+proxyAddr+"/", nil); got != "app" {
		t.Fatalf("others after the hand-over: %q", got)
	}
}

// A developer's requests take the fast path too: the developer's side
// sees the head byte for byte as the caller sent it, and one caller
// connection alternating between the app and the developer keeps one
// connection to each rather than dialing per request.
func TestFastPathToTheDeveloper(t *testing.T) {
	answer := func(name string) func(string) string {
		return func(string) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(name)) + "\r\n\r\n" + name
		}
	}
	app := newRawApp(t, answer("app"))
	dev := newRawApp(t, answer("dev"))
	proxy := startProxy(t, Config{Upstream: app.addr(),
		Static: []StaticRoute{{Header: "X-Dev", Value: "alice", Addr: dev.addr()}}})

	raw := "POST /orders?x=1;y=2 HTTP/1.1\r\n" +
		"host: shop.example\r\n" +
		"x-dev: alice\r\n" +
		"X-Dup: first\r\n" +
		"X-Dup: second\r\n" +
		"X-Forwarded-For: 198.51.100.7\r\n" +
		"Content-Length: 5\r\n" +
		"\r\n"
	send(t, dev.addr(), raw+"hello", 1)
	direct := dev.lastHead()
	send(t, proxy, raw+"hello", 1)
	if via := dev.lastHead(); via != direct {
		t.Fatalf("the developer saw a different head through the sidecar:\ndirect:\n%q\nvia the sidecar:\n%q", direct, via)
	}

	appConns, devConns := app.conns.Load(), dev.conns.Load()
	get := func(header string) string { return "GET / HTTP/1.1\r\nHost: shop\r\n" + header + "\r\n" }
	var pipelined strings.Builder
	want := []string{"app", "dev", "app", "dev", "dev", "app"}
	for _, to := range want {
		if to == "dev" {
			pipelined.WriteString(get("X-Dev: alice\r\n"))
		} else {
			pipelined.WriteString(get(""))
		}
	}
	for i, resp := range send(t, proxy, pipelined.String(), len(want)) {
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want[i] {
			t.Errorf("request %d answered by %s, want %s", i+1, body, want[i])
		}
	}
	if n := app.conns.Load() - appConns; n != 1 {
		t.Errorf("the app got %d connections for one caller connection, want 1", n)
	}
	if n := dev.conns.Load() - devConns; n != 1 {
		t.Errorf("the developer got %d connections for one caller connection, want 1", n)
	}
}

// A route whose developer cannot be reached (gone a moment ago) fails open
// on the fast path: the request reaches the app, whole.
func TestFastPathDeveloperGoneFailsOpen(t *testing.T) {
	app := newRawApp(t, func(string) string { return okResponse })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	proxy := startProxy(t, Config{Upstream: app.addr(),
		Static: []StaticRoute{{Header: "X-Dev", Value: "alice", Addr: gone}}})
	resp := send(t, proxy, "PUT /a HTTP/1.1\r\nHost: shop\r\nX-Dev: alice\r\nContent-Length: 3\r\n\r\nabc", 1)[0]
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want the app's 200", resp.StatusCode)
	}
	if head := app.lastHead(); !strings.Contains(head, "X-Dev: alice") {
		t.Fatalf("the app did not get the request: %q", head)
	}
}

// While draining, each response tells the caller to close, so clients move
// to other endpoints.
func TestFastPathDrainSaysClose(t *testing.T) {
	app := newRawApp(t, func(string) string { return okResponse })
	f := &fastPath{table: &Table{}, upstream: app.addr(), headerTimeout: 5 * time.Second,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), handoff: func(c net.Conn) { c.Close() }}
	ln := listenFast(t, f)
	f.draining.Store(true)
	r := send(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1)[0]
	if !r.Close {
		t.Fatalf("a response while draining lacks Connection: close: %v", r.Header)
	}
}

// listenFast serves f's fast path on a loopback listener, closed when the
// test ends.
func listenFast(t *testing.T, f *fastPath) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return ln
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

// 64 MiB down and 64 MiB up through the sidecar, with a slow caller
// holding a connection open meanwhile: the heap stays flat (nothing is
// held whole) and the slow caller holds up nobody.
func TestFastPathMemoryFlatAndSlowCallerAlone(t *testing.T) {
	const size = 64 << 20
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.CopyN(w, zeros{}, size)
	}))
	defer app.Close()
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://")})

	// The slow caller: half a head, then nothing.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	start := heap()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/up", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != fmt.Sprint(size) {
		t.Fatalf("upload: the app read %s bytes", got)
	}
	close(stop)
	<-sampled
	if grew := int64(peak.Load()) - int64(start); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB while 128 MiB went through", grew>>20)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
