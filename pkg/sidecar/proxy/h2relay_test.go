package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// h2cApp is an app that speaks h2c only. It names itself, says which
// protocol the request came in on, echoes the body (its SHA-256 in a
// trailer), and streams: each chunk of the body is answered at once.
func h2cApp(t *testing.T, name string) *httptest.Server { return echoApp(t, name, true) }

// h1App is h2cApp speaking HTTP/1.1 only.
func h1App(t *testing.T, name string) *httptest.Server { return echoApp(t, name, false) }

func echoApp(t *testing.T, name string, h2c bool) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answered-By", name)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("Trailer", "X-Body-Sum")
		switch r.URL.Path {
		case "/big":
			w.Write(bytes.Repeat([]byte("b"), 1<<20))
			return
		case "/tall": // a head of 20 KiB
			w.Header().Set("X-Tall", strings.Repeat("t", 20<<10))
			io.WriteString(w, "tall")
			return
		}
		// The head first: the caller may wait for it to send. (HTTP/1.1
		// needs full duplex asked for, to read the body after that.)
		http.NewResponseController(w).EnableFullDuplex()
		w.(http.Flusher).Flush()
		sum := sha256.New()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				sum.Write(buf[:n])
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Body-Sum", hex.EncodeToString(sum.Sum(nil)))
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	s.Config.Protocols = &p
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 20 * time.Second}
}

func hostOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

// Every stream of one connection goes where its header says, HTTP/2 all
// the way, bodies of every size both ways (flow control at both ends),
// with trailers, many at once.
func TestH2CRelayRoutesEachStream(t *testing.T) {
	app, dev := h2cApp(t, "app"), h2cApp(t, "dev")
	addr := startProxy(t, Config{Upstream: hostOf(app), H2C: true,
		Static: []StaticRoute{{Header: "x-dev", Value: "alice", Addr: hostOf(dev)}}})
	c := h2cClient()
	echoMany(t, c, addr, 16, "HTTP/2.0")
	resp, err := c.Get("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 1<<20 {
		t.Fatalf("a 1 MiB answer came as %d bytes", n)
	}
}

// echoMany runs n callers at once on c, each sending 8 requests of every
// size, half with the developer's header, and checks every answer: from
// the right end, which got it over proto.
func echoMany(t *testing.T, c *http.Client, addr string, n int, proto string) {
	t.Helper()
	sizes := []int{0, 100, 70 << 10, 1 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				want, hdr := "app", "bob"
				if (g+i)%2 == 0 {
					want, hdr = "dev", "alice"
				}
				if err := echo(c, addr, hdr, sizes[(g+i)%len(sizes)], want, proto); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// echo sends size random bytes with x-dev: hdr and checks the answer,
// from want, which got it over proto.
func echo(c *http.Client, addr, hdr string, size int, want, proto string) error {
	body := make([]byte, size)
	rand.Read(body)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/echo", bytes.NewReader(body))
	req.Header.Set("X-Dev", hdr)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%d bytes to %s: reading the answer: %w", size, want, err)
	}
	sum := sha256.Sum256(body)
	switch {
	case resp.Header.Get("X-Answered-By") != want:
		return fmt.Errorf("x-dev: %s answered by %q, want %q", hdr, resp.Header.Get("X-Answered-By"), want)
	case resp.Header.Get("X-Proto") != proto || resp.ProtoMajor != 2:
		return fmt.Errorf("%s at the app (want %s), %s at the caller", resp.Header.Get("X-Proto"), proto, resp.Proto)
	case !bytes.Equal(got, body):
		return fmt.Errorf("%d bytes to %s came back as %d different ones", size, want, len(got))
	case resp.Trailer.Get("X-Body-Sum") != hex.EncodeToString(sum[:]):
		return fmt.Errorf("trailer %q, want the body's sum", resp.Trailer.Get("X-Body-Sum"))
	}
	return nil
}

// A stream goes both ways at once: each chunk the caller sends comes back
// before the next is sent, as gRPC's bidirectional streams need.
func TestH2CRelayFullDuplex(t *testing.T) {
	app := h2cApp(t, "app")
	addr := startProxy(t, Config{Upstream: hostOf(app), H2C: true})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", pr)
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for i := 0; i < 5; i++ {
		msg := fmt.Sprintf("ping %d;", i)
		if _, err := pw.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != msg {
			t.Fatalf("round %d: got %q, %v", i, got, err)
		}
	}
	pw.Close()
}

// A developer's tunnel that fails to open sends the stream to the app; an
// app that does not listen gives a 502 saying so; the probe is answered
// by the sidecar.
func TestH2CRelayFailsOpenAnd502(t *testing.T) {
	dead := closedAddr(t)
	app := h2cApp(t, "app")
	addr := startProxy(t, Config{Upstream: hostOf(app), H2C: true, Pod: "pod-1",
		Static: []StaticRoute{{Header: "x-dev", Value: "alice", Addr: dead}}})
	c := h2cClient()
	if err := echo(c, addr, "alice", 10, "app", "HTTP/2.0"); err != nil {
		t.Fatalf("a gone developer's stream: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set(wire.ProbeHeader, "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get(wire.ProbePodHeader) != "pod-1" {
		t.Fatalf("probe answered %d, pod %q", resp.StatusCode, resp.Header.Get(wire.ProbePodHeader))
	}

	down := startProxy(t, Config{Upstream: dead, H2C: true})
	resp, err = c.Get("http://" + down + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "does not answer") {
		t.Fatalf("app down: got %d %q, want a 502 that says why", resp.StatusCode, body)
	}
}

// While a doctor's watch is live, streams go through net/http, which
// records them, and still reach the app and the developer.
func TestH2CRelayWatchedStreams(t *testing.T) {
	app, dev := h2cApp(t, "app"), h2cApp(t, "dev")
	table, ws := &Table{}, &Watches{Pod: "p"}
	devAddr := hostOf(dev)
	if _, err := table.Add(route.Route{Header: "x-dev", Value: "alice"}, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", devAddr)
	}); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(table, hostOf(app), "p", nil)
	h.H2C, h.Watches = true, ws
	toHTTP := httpwire.NewConnListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p}
	go srv.Serve(toHTTP)
	defer srv.Close()
	f := &fastPath{table: table, watches: ws, upstream: hostOf(app), headerTimeout: 5 * time.Second,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), h2c: true, toHTTP: toHTTP.Push, pod: "p"}
	ln := listenFast(t, f)
	m := tunnel.NewMarker("x-dev", "", "")
	stop, err := ws.Watch(m)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := h2cClient()
	for _, want := range []string{"app", "dev"} {
		hdr := m.Value()
		if want == "dev" {
			hdr = "alice"
		}
		if err := echo(c, ln.Addr().String(), hdr, 70<<10, want, "HTTP/2.0"); err != nil {
			t.Fatalf("through net/http: %v", err)
		}
	}
	if hits, _ := ws.Seen(m.Nonce); len(hits) != 1 {
		t.Fatalf("the watch saw %d requests, want 1", len(hits))
	}
}

// A caller that breaks the rules of HTTP/2 hurts only its own streams or
// connection: more streams than allowed are refused, DATA beyond the
// window ends the connection, and a flood of pings it never reads is cut
// off before the sidecar holds more than a bounded queue.
func TestH2CRelayHostileCaller(t *testing.T) {
	// An app that takes connections and never reads them: the relay can
	// pass on no more than HTTP/2's first window to it.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := startProxy(t, Config{Upstream: silent.Addr().String(), H2C: true})
	dialH2 := func() (*http2.Framer, net.Conn) { return rawH2(t, addr) }
	headers := func(fr *http2.Framer, id uint32, end bool) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: postBlock("/"), EndHeaders: true, EndStream: end})
	}

	t.Run("too many streams", func(t *testing.T) {
		fr, conn := dialH2()
		defer conn.Close()
		for i := 0; i < h2MaxStreams+20; i++ {
			headers(fr, uint32(2*i+1), false)
		}
		refused := 0
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for refused < 20 {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("after %d refused: %v", refused, err)
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		}
	})
	t.Run("data beyond the window", func(t *testing.T) {
		fr, conn := dialH2()
		defer conn.Close()
		headers(fr, 1, false)
		chunk := make([]byte, 16<<10)
		for i := 0; i < 32; i++ { // 512 KiB: the window is 256 KiB, and at most 64 KiB more is granted
			fr.WriteData(1, false, chunk)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no RST_STREAM or GOAWAY for flow control: %v", err)
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.ErrCode == http2.ErrCodeFlowControl {
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok && g.ErrCode == http2.ErrCodeFlowControl {
				return
			}
		}
	})
	t.Run("pings never read", func(t *testing.T) {
		fr, conn := dialH2()
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		deadline := time.Now().Add(20 * time.Second)
		var err error
		for n := 0; err == nil && time.Now().Before(deadline); n++ {
			conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			err = fr.WritePing(false, [8]byte{byte(n)})
		}
		if err == nil {
			t.Fatal("the sidecar kept taking pings it could not answer")
		}
	})
}

// On a port that does not speak h2c, an HTTP/2 caller's streams reach an
// HTTP/1.1 app (or developer) as HTTP/1.1 requests, bodies of given and
// unknown length both ways, trailers included, many at once on one
// connection; gRPC would stay HTTP/2 (TestProtocolsThroughIntercept).
func TestH2CRelayToHTTP1(t *testing.T) {
	app, dev := h1App(t, "app"), h1App(t, "dev")
	addr := startProxy(t, Config{Upstream: hostOf(app),
		Static: []StaticRoute{{Header: "x-dev", Value: "alice", Addr: hostOf(dev)}}})
	c := h2cClient()
	echoMany(t, c, addr, 8, "HTTP/1.1")

	// A body of unknown length goes chunked, and its answer streams.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", pr)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("chunk %d;", i)
		pw.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != msg {
			t.Fatalf("round %d: got %q, %v", i, got, err)
		}
	}
	pw.Close()
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("X-Body-Sum") == "" {
		t.Fatal("the app's trailer did not arrive")
	}

	// A response head larger than the usual read buffer, twice on one
	// kept connection.
	for i := 0; i < 2; i++ {
		resp, err = c.Get("http://" + addr + "/tall")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "tall" || len(resp.Header.Get("X-Tall")) != 20<<10 {
			t.Fatalf("tall head %d: body %q, X-Tall of %d bytes", i, body, len(resp.Header.Get("X-Tall")))
		}
	}

	// HEAD: a head, no body.
	resp, err = c.Head("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Answered-By") != "app" {
		t.Fatalf("HEAD: %d from %q", resp.StatusCode, resp.Header.Get("X-Answered-By"))
	}
}

// A stream whose DATA is longer than its Content-Length is reset, and the
// extra bytes never reach the app as a request of their own.
func TestH2CRelayToHTTP1NoSmuggling(t *testing.T) {
	rec := newRecorder(t)
	addr := startProxy(t, Config{Upstream: hostOf(rec.Server)})
	fr, conn := rawH2(t, addr)
	defer conn.Close()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: postBlock("/a", "content-length", "5"), EndHeaders: true})
	fr.WriteData(1, true, []byte("hello GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM: %v", err)
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 1 {
			break
		}
	}
	// Less body than its Content-Length, ended by trailers: reset too,
	// rather than leave the app waiting for the rest.
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: postBlock("/b", "content-length", "10"), EndHeaders: true})
	fr.WriteData(3, false, []byte("12345"))
	var tb bytes.Buffer
	hpack.NewEncoder(&tb).WriteField(hpack.HeaderField{Name: "x-sum", Value: "1"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: tb.Bytes(), EndHeaders: true, EndStream: true})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for the short body: %v", err)
		}
		if r, ok := f.(*http2.RSTStreamFrame); ok && r.StreamID == 3 {
			break
		}
	}
	rec.settle(300 * time.Millisecond)
	if seen, _ := rec.requests(); len(seen) > 2 || len(seen) >= 1 && !strings.HasPrefix(seen[0], "POST /") {
		t.Fatalf("the app saw %q", seen)
	}
}

// An app that closes its kept HTTP/1.1 connections (it restarts, or its
// idle timeout is short) costs an HTTP/2 caller nothing: every request
// still gets its answer.
func TestH2CRelayToHTTP1AppClosesKeptConnections(t *testing.T) {
	app := newRawApp(t, func(string) string { return okResponse })
	addr := startProxy(t, Config{Upstream: app.addr()})
	c := h2cClient()
	get := func() {
		t.Helper()
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	get()
	app.kill()
	app2 := newRawAppOn(t, app.addr(), func(string) string { return okResponse })
	for i := 0; i < 20; i++ {
		get() // the first finds the kept connection closed, at once or on its write
	}
	if app2.lastHead() == "" {
		t.Fatal("the restarted app saw nothing")
	}
}

// A sidecar that drains sends its HTTP/2 callers GOAWAY: the stream in
// flight finishes, and the connection closes after it.
func TestH2CRelayDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	app.Config.Protocols = &p
	app.Start()
	defer app.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listen: "127.0.0.1:0", Upstream: hostOf(app), H2C: true,
			Ready: func(data, _ net.Addr) { addrc <- data.String() }}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	addr := <-addrc
	c := h2cClient()
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://" + addr + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel() // SIGTERM
	time.Sleep(200 * time.Millisecond)
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("the stream in flight while draining ended with %q", s)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sidecar did not finish draining once the last stream ended")
	}
}

// A caller that opens streams and resets them at once, without end (the
// "rapid reset" attack), makes the sidecar hold no more HTTP/1.1
// connections to the app than its bound, and its connection still works.
func TestH2CRelayRapidResetBounded(t *testing.T) {
	rec := newRecorder(t)
	addr := startProxy(t, Config{Upstream: hostOf(rec.Server)})
	fr, conn := rawH2(t, addr)
	defer conn.Close()
	refused := make(chan uint32, 16)
	go func() { // read what the sidecar sends, telling of refused streams
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.ErrCode == http2.ErrCodeRefusedStream {
				select {
				case refused <- r.StreamID:
				default:
				}
			}
		}
	}()
	block := func(path string) []byte { return postBlock(path) }
	id := uint32(1)
	for i := 0; i < 2000; i++ {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block("/r"), EndHeaders: true})
		fr.WriteRSTStream(id, http2.ErrCodeCancel)
		id += 2
	}
	// The connection still serves: a stream refused while the flood's
	// connections are being opened goes again, as a client does.
	deadline := time.Now().Add(10 * time.Second)
	last := func() bool {
		seen, _ := rec.requests()
		return len(seen) > 0 && seen[len(seen)-1] == "POST /last"
	}
	for !last() && time.Now().Before(deadline) {
		for len(refused) > 0 {
			<-refused
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block("/last"), EndHeaders: true, EndStream: true})
		for !last() && time.Now().Before(deadline) {
			if len(refused) > 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		id += 2
	}
	if !last() {
		t.Fatal("no request after the resets reached the app")
	}
	// Nothing is left behind: the connections of reset streams close, and
	// at most the kept ones stay.
	open := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.state)
	}
	for time.Now().Before(deadline) && open() > h1Idle {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open(); n > h1Idle {
		t.Fatalf("%d connections to the app still open after the resets, want at most %d kept", n, h1Idle)
	}
}

// Requests one after another on one HTTP/2 connection reuse one kept
// HTTP/1.1 connection to the app, bodies or not.
func TestH2CRelayToHTTP1KeepsConnections(t *testing.T) {
	rec := newRecorder(t)
	addr := startProxy(t, Config{Upstream: hostOf(rec.Server)})
	c := h2cClient()
	for i := 0; i < 20; i++ {
		var body io.Reader
		method := http.MethodGet
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader(strings.Repeat("x", 100*i))
		}
		req, _ := http.NewRequest(method, "http://"+addr+"/", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if n := rec.conns.Load(); n != 1 {
		t.Fatalf("20 requests in a row took %d connections to the app, want 1", n)
	}
}

// rawH2 opens an HTTP/2 connection to addr by hand, for callers that break
// the rules.
func rawH2(t *testing.T, addr string) (*http2.Framer, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	return fr, conn
}

// postBlock is the header block of a POST to path with more fields, name
// and value in turn, encoded on its own (a fresh HPACK state each time).
func postBlock(path string, more ...string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	fields := append([]string{":method", "POST", ":path", path, ":scheme", "http", ":authority", "x"}, more...)
	for i := 0; i+1 < len(fields); i += 2 {
		e.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return b.Bytes()
}
