package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

const bobKey = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"

// wiretapper is a developer wiretapping through the sidecar's control
// port: it collects the copies the sidecar sends, and counts any other
// stream (which would be a request meant for its local port).
type wiretapper struct {
	mu     sync.Mutex
	copies []*tap.Exchange
	other  int
	// count counts the copies; past keep, they are not kept.
	count int
	keep  int
}

func wiretap(t testing.TB, ctrl string, r route.Route) *wiretapper {
	t.Helper()
	tc := controlClient(t, ctrl)
	if _, err := tc.Register(r); err != nil {
		t.Fatalf("registering %s: %v", r, err)
	}
	w := &wiretapper{keep: 1000}
	go tc.ServeConns(context.Background(), func(c net.Conn) {
		defer c.Close()
		tr := tap.NewReader(c)
		for {
			ex, err := tr.Read()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					w.mu.Lock()
					w.other++
					w.mu.Unlock()
				}
				return
			}
			w.mu.Lock()
			if w.count++; len(w.copies) < w.keep {
				w.copies = append(w.copies, ex)
			}
			w.mu.Unlock()
		}
	})
	return w
}

// waitCopies waits until w holds n copies.
func (w *wiretapper) waitCopies(t *testing.T, n int) []*tap.Exchange {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		got, other := append([]*tap.Exchange(nil), w.copies...), w.other
		w.mu.Unlock()
		if other > 0 {
			t.Fatalf("%d streams that were not copies", other)
		}
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("%d copies, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readingApp answers with the body it read whole (echoApp answers while
// it reads, which HTTP/1.1 through a proxy does not promise to carry).
func readingApp(t *testing.T, name string, h2c bool) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.Header().Set("X-Read-Err", err.Error())
		}
		w.Header().Set("X-Answered-By", name)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(b)
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	s.Config.Protocols = &p
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Two developers wiretap alice's marker, which the app answers: every
// caller gets the app's answer as before, each wiretap gets 20 copies of
// 20 requests with the answer the caller got, and unmarked requests are
// neither copied nor changed; on the fast path, through net/http and per
// HTTP/2 stream. (A marker a teammate intercepts is not copied:
// TestWiretapNeverCopiesWhatATeammatesInterceptTakes.)
func TestWiretapCopiesWithoutChangingAnswers(t *testing.T) {
	for _, mode := range []struct {
		name   string
		h2c    bool
		noFast bool
	}{
		{"fast path", false, false},
		{"net/http", false, true},
		{"h2c", true, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			app := readingApp(t, "app", mode.h2c)
			ctrl := make(chan string, 1)
			addr := startProxyReady(t, Config{Upstream: hostOf(app), H2C: mode.h2c, NoFastPath: mode.noFast, Control: "127.0.0.1:0"}, ctrl)
			ctrlAddr := <-ctrl
			bob := wiretap(t, ctrlAddr, route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Owner: "bob", Client: bobKey})
			eve := wiretap(t, ctrlAddr, route.Route{Header: "X-Dev", Value: "alice", Wiretap: true, Owner: "eve", Client: eveKey})
			c := &http.Client{Timeout: 10 * time.Second}
			if mode.h2c {
				c = h2cClient()
			}
			send := func(dev, body string) (string, string) {
				req, _ := http.NewRequest("POST", "http://"+addr+"/orders?n="+body, strings.NewReader(body))
				if dev != "" {
					req.Header.Set("X-Dev", dev)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				return resp.Header.Get("X-Answered-By"), string(got)
			}
			for i := range 20 {
				if by, body := send("alice", strconv.Itoa(i)); by != "app" || body != strconv.Itoa(i) {
					t.Fatalf("request %d answered by %q with %q, want the app echoing it", i, by, body)
				}
			}
			if by, _ := send("", "x"); by != "app" {
				t.Fatalf("an unmarked request answered by %q", by)
			}
			for name, w := range map[string]*wiretapper{"bob": bob, "eve": eve} {
				copies := w.waitCopies(t, 20)
				seen := map[string]bool{}
				for _, ex := range copies {
					if ex.Request.Method != "POST" || !strings.HasPrefix(ex.Request.Target, "/orders?n=") ||
						ex.Response.Status != 200 || ex.Response.Header.Get("X-Answered-By") != "app" ||
						string(ex.Request.Body.Data) != string(ex.Response.Body.Data) || ex.Route.Marker != "X-Dev:alice (wiretap)" && ex.Route.Marker != "x-dev:alice (wiretap)" {
						t.Fatalf("%s's copy %+v", name, ex)
					}
					seen[string(ex.Request.Body.Data)] = true
				}
				if len(seen) != 20 {
					t.Fatalf("%s got copies of %d distinct requests", name, len(seen))
				}
			}
		})
	}
}

// A developer whose end does not read the copies never slows a caller:
// the queue drops what does not fit and says how many on the next copy.
func TestWiretapQueueDropsAndCounts(t *testing.T) {
	tr := newTapRoute(nil, &tapBounds{})
	ex := &tap.Exchange{Request: tap.Request{Method: "GET", Target: "/", Proto: "HTTP/1.1"}, Response: tap.Response{Status: 200}}
	for range tapQueueLen + 5 {
		tr.offer(ex) // nobody sends: every offer returns at once
	}
	if got := tr.dropped.Load(); got != 5 {
		t.Fatalf("dropped %d, want 5", got)
	}
	big := &tap.Exchange{Response: tap.Response{Body: tap.Body{Data: make([]byte, tapQueueBytes)}}}
	tr2 := newTapRoute(nil, &tapBounds{})
	tr2.offer(big)
	if tr2.dropped.Load() != 1 || len(tr2.ch) != 0 {
		t.Fatal("a copy past the queue's bytes was queued")
	}
}

// A wiretap conflicts with nothing: a second developer may wiretap the
// marker alice intercepts, and alice may intercept it after them.
func TestWiretapRegistersBesideIntercepts(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	if _, err := table.Add(route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Client: bobKey}, dial); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Add(route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Client: eveKey}, dial); err != nil {
		t.Fatal(err)
	}
	if _, err := table.Add(route.Route{Header: "x-dev", Value: "alice", Client: aliceKey}, dial); err != nil {
		t.Fatalf("an intercept beside wiretaps refused: %v", err)
	}
	if r := table.match("GET", "/", http.Header{"X-Dev": {"alice"}}); r == nil || r.Wiretap {
		t.Fatalf("the request matched %v, want alice's intercept", r)
	}
	if n := len(table.List()); n != 3 {
		t.Fatalf("%d routes listed, want 3", n)
	}
}

// A gRPC unary call is copied with its trailers among the answer's
// headers (grpc-status is the answer a diff needs).
func TestWiretapCopiesGRPCTrailers(t *testing.T) {
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.Write([]byte{0, 0, 0, 0, 2, 8, 1})
		w.Header().Set("Grpc-Status", "0")
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	app.Config.Protocols = &p
	app.Start()
	t.Cleanup(app.Close)
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: hostOf(app), H2C: true, Control: "127.0.0.1:0"}, ctrl)
	bob := wiretap(t, <-ctrl, route.Route{All: true, PathPrefix: "/pkg.Svc/", Wiretap: true, Client: bobKey})
	req, _ := http.NewRequest("POST", "http://"+addr+"/pkg.Svc/Get", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("the caller's trailers: %v", resp.Trailer)
	}
	ex := bob.waitCopies(t, 1)[0]
	if ex.Request.Proto != "HTTP/2.0" || ex.Response.Header.Get("Grpc-Status") != "0" || len(ex.Response.Body.Data) != 7 || ex.Request.Body.Size != 5 {
		t.Fatalf("copy %+v", ex)
	}
}

// A developer whose end stops reading never holds a caller up: every
// request is answered while the copies pile up, and those past the queue
// are dropped; the first copy read afterwards says how many.
func TestWiretapStalledDeveloperDoesNotHoldCallers(t *testing.T) {
	for _, noFast := range []bool{false, true} {
		t.Run("noFastPath="+strconv.FormatBool(noFast), func(t *testing.T) { stalledDeveloper(t, noFast) })
	}
}

func stalledDeveloper(t *testing.T, noFast bool) {
	app := readingApp(t, "app", false)
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0", NoFastPath: noFast}, ctrl)
	tc := controlClient(t, <-ctrl)
	if _, err := tc.Register(route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Client: bobKey}); err != nil {
		t.Fatal(err)
	}
	streams := make(chan net.Conn, 4)
	go tc.ServeConns(context.Background(), func(c net.Conn) { streams <- c }) // read by nobody, for now

	c := &http.Client{Timeout: 10 * time.Second}
	body := strings.Repeat("x", 16<<10)
	for i := range 300 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(body))
		req.Header.Set("X-Dev", "alice")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d while the developer reads nothing: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(got) != len(body) {
			t.Fatalf("request %d answered with %d bytes: %v", i, len(got), resp.Header)
		}
	}
	// Read the stream now: the copies that fit, then one that says how
	// many were dropped before it.
	tr := tap.NewReader(<-streams)
	var dropped uint64
	for n := 0; n < 300 && dropped == 0; n++ {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("last"))
		req.Header.Set("X-Dev", "alice")
		if n == 0 {
			// One more request, whose copy comes after the drops.
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		ex, err := tr.Read()
		if err != nil {
			t.Fatalf("after %d copies: %v", n, err)
		}
		dropped = ex.Dropped
	}
	if dropped == 0 {
		t.Fatal("no copy said any was dropped")
	}
	t.Logf("dropped %d of 301 copies", dropped)
}

// controlClient is a CLI's control session with the sidecar at addr,
// closed at the test's end.
func controlClient(t testing.TB, addr string) *tunnel.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
