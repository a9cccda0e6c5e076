package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an app that remembers the framing of every request it got.
type recorder struct {
	*httptest.Server
	mu    sync.Mutex
	seen  []string // method path, per request
	bad   []string // requests with both Content-Length and Transfer-Encoding
	conns atomic.Int64
	// state is each open connection's, and since when: bytes sent to the
	// app on a new or active one may still turn into a request.
	state map[net.Conn]connState
}

type connState struct {
	http.ConnState
	since time.Time
}

func newRecorder(t testing.TB) *recorder {
	rec := &recorder{state: map[net.Conn]connState{}}
	rec.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Method+" "+r.URL.Path)
		if len(r.TransferEncoding) > 0 && r.Header.Get("Content-Length") != "" {
			rec.bad = append(rec.bad, r.Method+" "+r.URL.Path)
		}
		rec.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "app")
	}))
	rec.Config.ConnState = func(c net.Conn, s http.ConnState) {
		rec.mu.Lock()
		if s == http.StateClosed || s == http.StateHijacked {
			delete(rec.state, c)
		} else {
			rec.state[c] = connState{s, time.Now()}
		}
		rec.mu.Unlock()
		if s == http.StateNew {
			rec.conns.Add(1)
		}
	}
	rec.Start()
	t.Cleanup(rec.Close)
	return rec
}

// settle waits, up to d, until no connection to the app carries a request
// or has just opened (a pooled connection that never sends stays new), so
// every request sent to the app so far is recorded.
func (r *recorder) settle(d time.Duration) {
	busy := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, st := range r.state {
			if st.ConnState == http.StateActive || st.ConnState == http.StateNew && time.Since(st.since) < 50*time.Millisecond {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(d); busy() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

func (r *recorder) requests() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...), append([]string(nil), r.bad...)
}

// exchange writes raw bytes to addr, half-closes, and returns everything the
// proxy answered before closing; a proxy that neither answers nor closes
// within the deadline fails the test.
func exchange(t testing.TB, addr string, raw []byte, deadline time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(deadline))
	if _, err := c.Write(raw); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("write: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the proxy neither answered nor closed within %s; it sent %q", deadline, out)
	}
	return string(out)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "broken pipe"))
}

func statusOf(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	if f := strings.Fields(line); len(f) >= 2 {
		return f[1]
	}
	return "(closed)"
}

// Requests built to confuse framing or exhaust the proxy: each is refused
// (or framed unambiguously) before anything reaches the app, and the app
// never sees a request whose length it could read differently.
func TestHostileRequests(t *testing.T) {
	app := newRecorder(t)
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), HeaderTimeout: time.Second})
	big := strings.Repeat("a", 2*MaxHeaderBytes)
	var refused []string // paths the app must never see

	for _, tc := range []struct {
		name, raw  string
		status     string // the first response's status
		appReached bool
	}{
		{"two different Content-Lengths",
			"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "400", false},
		{"Content-Length and chunked, smuggled request in the body",
			"POST /te HTTP/1.1\r\nHost: x\r\nContent-Length: 46\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "", true},
		{"unknown transfer coding",
			"POST /xte HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "501", false},
		{"chunked not last",
			"POST /te2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "501", false},
		{"bad chunk size",
			"POST /chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "", true},
		{"space before the colon",
			"GET /sp HTTP/1.1\r\nHost: x\r\nX-Dev : alice\r\n\r\n", "400", false},
		// Obsolete line folding is unfolded into one value (RFC 9112
		// 5.2 allows it) and forwarded re-serialized: no ambiguity left.
		{"header folding",
			"GET /fold HTTP/1.1\r\nHost: x\r\nX-Dev: a\r\n lice\r\n\r\n", "", true},
		{"NUL in a header value",
			"GET /nul HTTP/1.1\r\nHost: x\r\nX-Dev: a\x00lice\r\n\r\n", "400", false},
		{"no Host on HTTP/1.1",
			"GET /nohost HTTP/1.1\r\n\r\n", "400", false},
		{"oversized header",
			"GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", "431", false},
		{"garbage",
			"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := exchange(t, addr, []byte(tc.raw), 5*time.Second)
			if tc.status != "" && statusOf(resp) != tc.status {
				t.Errorf("status %s, want %s; response %.200q", statusOf(resp), tc.status, resp)
			}
		})
		if !tc.appReached {
			path := strings.Fields(tc.raw + " /(garbage)")[1]
			refused = append(refused, path)
		}
	}

	// Forwarded requests may still be on their way: wait until no
	// connection to the app carries one, then look at everything it got.
	app.settle(5 * time.Second)
	seen, bad := app.requests()
	if len(bad) > 0 {
		t.Errorf("the app got ambiguously framed requests: %v", bad)
	}
	for _, r := range seen {
		for _, p := range refused {
			if strings.HasSuffix(r, " "+p) {
				t.Errorf("the app got %s, which the proxy should have refused", r)
			}
		}
		if strings.HasSuffix(r, "/smuggled") && !slices.Contains(seen, "POST /te") {
			// Only as its own request after the chunked body ended:
			// the same view the proxy had.
			t.Errorf("the smuggled request reached the app without the request that carried it: %v", seen)
		}
	}
}

// Slow callers that trickle a request head hold nothing beyond their own
// socket: no connection to the app, a close after the header timeout, and
// other callers are served meanwhile.
func TestSlowlorisIsBounded(t *testing.T) {
	app := newRecorder(t)
	const timeout = time.Second
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), HeaderTimeout: timeout})

	const slow = 100
	var conns []net.Conn
	for range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		conns = append(conns, c)
	}
	resp, err := http.Get("http://" + addr + "/fast")
	if err != nil {
		t.Fatalf("a normal caller during the slowloris: %v", err)
	}
	resp.Body.Close()
	if got := app.conns.Load(); got != 1 {
		t.Errorf("the proxy opened %d connections to the app for 1 real request and %d slow ones", got, slow)
	}

	deadline := time.Now().Add(timeout + 5*time.Second)
	for i, c := range conns {
		c.SetReadDeadline(deadline)
		_, err := bufio.NewReader(c).ReadString('\n')
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow connection %d still open %s after the header timeout", i, time.Until(deadline)+timeout+5*time.Second)
		}
	}
}

// Oversized heads are refused without the proxy keeping them: heap growth
// stays bounded however many arrive.
func TestOversizedHeadersMemoryBounded(t *testing.T) {
	app := newRecorder(t)
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), HeaderTimeout: time.Second})
	raw := []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 4*MaxHeaderBytes) + "\r\n\r\n")

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	exchange(t, addr, raw, 5*time.Second) // warm up buffers
	start := heap()
	for range 20 {
		if s := statusOf(exchange(t, addr, raw, 5*time.Second)); s != "431" && s != "(closed)" {
			t.Fatalf("status %s for a 4 MiB header", s)
		}
	}
	if grew := int64(heap()) - int64(start); grew > 8<<20 {
		t.Errorf("heap grew %d MiB over 20 oversized requests (80 MiB sent)", grew>>20)
	}
	if seen, _ := app.requests(); len(seen) != 0 {
		t.Errorf("the app got %v", seen)
	}
}

// Whatever bytes a caller sends, the proxy answers or closes (never hangs,
// never crashes), the app never gets an ambiguously framed request, and the
// next caller is served.
func FuzzProxyRawRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX-Dev: alice\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	app := newRecorder(f)
	laptop := newRecorder(f)
	var addr string
	f.Fuzz(func(t *testing.T, raw []byte) {
		if addr == "" {
			addr = startProxy(fuzzT{t}, Config{
				Upstream:      strings.TrimPrefix(app.URL, "http://"),
				Static:        []StaticRoute{{Header: "X-Dev", Value: "alice", Addr: strings.TrimPrefix(laptop.URL, "http://")}},
				HeaderTimeout: time.Second,
			})
		}
		appBefore, laptopBefore := len(app.seenNow()), len(laptop.seenNow())
		exchange(t, addr, raw, 10*time.Second)
		if s := statusOf(exchange(t, addr, []byte("GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 10*time.Second)); s != "200" {
			t.Fatalf("the next caller got %s", s)
		}
		app.settle(2 * time.Second)
		laptop.settle(2 * time.Second)
		for _, r := range []*recorder{app, laptop} {
			if _, bad := r.requests(); len(bad) > 0 {
				t.Fatalf("ambiguous framing reached the upstream: %v", bad)
			}
		}
		if bytes.HasPrefix(raw, []byte("PRI * HTTP/2.0")) {
			return // HTTP/2 frames: what they carry is not read here
		}
		// Every request an upstream got is one net/http's reading of the
		// bytes finds: nothing smuggled inside a body or past a refusal.
		want := append(requestsIn(raw), "GET /next")
		got := append(app.seenNow()[appBefore:], laptop.seenNow()[laptopBefore:]...)
		for _, r := range got {
			i := slices.Index(want, r)
			if i < 0 {
				t.Fatalf("an upstream got %q, which is not a request of %q (those are %q)", r, raw, want)
			}
			want = slices.Delete(want, i, i+1)
		}
	})
}

func (r *recorder) seenNow() []string {
	seen, _ := r.requests()
	return seen
}

// requestsIn is the method and path of each request net/http reads from
// raw, in order, up to the first it refuses.
func requestsIn(raw []byte) []string {
	var out []string
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		out = append(out, req.Method+" "+req.URL.Path)
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return out
		}
	}
}

// fuzzT keeps the proxy started by the first fuzz input running for the
// whole fuzz run instead of stopping it at that input's end.
type fuzzT struct{ *testing.T }

func (fuzzT) Cleanup(func()) {}

// Beyond MaxConns open connections, the one that has waited longest for
// its caller (here an unfinished head) is closed to make room; when every
// connection is busy, new ones are refused at once; when some close,
// callers are served again; the sidecar itself stays up.
func TestConnectionCapRefusesNotDies(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	var holding atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			holding.Add(1)
			<-release
		}
		io.WriteString(w, "app")
	}))
	defer app.Close()
	defer free()
	const maxConns = 20
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), HeaderTimeout: 5 * time.Second, MaxConns: maxConns})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	closedSoon := func(c net.Conn, what string) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("%s: %v, want it closed", what, err)
		}
	}
	unfinished := dial()
	_, _ = io.WriteString(unfinished, "GET / HTTP/1.1\r\nHost: x\r\nX-Unfinished: ")
	time.Sleep(50 * time.Millisecond) // it waits longest
	var held []net.Conn
	for range maxConns - 1 {
		c := dial()
		_, _ = io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
		held = append(held, c)
	}
	// The next one makes the unfinished head go.
	next := dial()
	defer next.Close()
	closedSoon(unfinished, "the unfinished head, when the cap is reached")
	_, _ = io.WriteString(next, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
	for deadline := time.Now().Add(5 * time.Second); holding.Load() < maxConns && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// Now every connection is busy: a new one is refused.
	c := dial()
	closedSoon(c, "a connection beyond the cap, all busy")
	_ = c.Close()
	free()
	for _, h := range held {
		_ = h.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/again")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served again after the held connections closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A kept-alive connection that sends nothing more is closed after the idle
// timeout, on the fast path (HTTP/1.1) and on net/http (HTTP/2).
func TestIdleConnectionsClosed(t *testing.T) {
	app := newRecorder(t)
	addr := startProxy(t, Config{Upstream: strings.TrimPrefix(app.URL, "http://"), HeaderTimeout: 5 * time.Second, IdleTimeout: 500 * time.Millisecond})
	for name, first := range map[string]string{
		"HTTP/1.1": "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"h2c":      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, first)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: an idle connection was still open after 5 s", name)
		} else if waited := time.Since(start); waited < 400*time.Millisecond {
			t.Errorf("%s: closed after %s, before the idle timeout", name, waited)
		}
		_ = c.Close()
	}
}
