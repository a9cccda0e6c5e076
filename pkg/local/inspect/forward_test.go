package inspect

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The app gets the request as the caller sent it (no X-Forwarded-* added,
// the caller's own kept, query and Host untouched), the caller gets the
// app's answer, and the exchange is recorded.
func TestForwardRecordsExchange(t *testing.T) {
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-App", "laptop")
		w.Header().Set("X-Seen-Query", r.URL.RawQuery)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "created "+string(body))
	})
	base, store := forwarding(t, local)

	req, _ := http.NewRequest(http.MethodPost, base+"/orders?id=7;x=1", strings.NewReader("order-7"))
	req.Host = "orders.shop.svc"
	req.Header.Set("X-Dev", "alice")
	req.Header.Set("X-Forwarded-Proto", "https") // from the cluster's ingress
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	if resp.StatusCode != http.StatusCreated || string(got) != "created order-7" {
		t.Fatalf("caller got %d %q, want 201 %q", resp.StatusCode, got, "created order-7")
	}
	for h, want := range map[string]string{
		"X-App": "laptop", "X-Seen-Query": "id=7;x=1", "X-Seen-Host": "orders.shop.svc",
		"X-Seen-Forwarded-For": "", "X-Seen-Forwarded-Proto": "https",
	} {
		if g := resp.Header.Get(h); g != want {
			t.Errorf("%s = %q, want %q", h, g, want)
		}
	}

	ex := waitDone(t, store, 1)[0]
	if ex.Method != "POST" || ex.Path != "/orders?id=7;x=1" || ex.Proto != "HTTP/1.1" || ex.Host != "orders.shop.svc" || ex.Route != testRoute {
		t.Errorf("recorded %s %s %s host %s route %s", ex.Method, ex.Path, ex.Proto, ex.Host, ex.Route)
	}
	if ex.Status != 201 || ex.RequestHeader.Get("X-Dev") != "alice" || ex.ResponseHeader.Get("X-App") != "laptop" {
		t.Errorf("recorded status %d, request X-Dev %q, response X-App %q", ex.Status, ex.RequestHeader.Get("X-Dev"), ex.ResponseHeader.Get("X-App"))
	}
	if string(ex.RequestBody.Data) != "order-7" || string(ex.ResponseBody.Data) != "created order-7" || ex.RequestBody.Truncated || ex.ResponseBody.Truncated {
		t.Errorf("recorded bodies %q / %q", ex.RequestBody.Data, ex.ResponseBody.Data)
	}
	if ex.RequestSize != 7 || ex.ResponseSize != 15 {
		t.Errorf("recorded sizes %d / %d, want 7 / 15", ex.RequestSize, ex.ResponseSize)
	}
	if ex.Duration <= 0 || ex.Error != "" || ex.Replay {
		t.Errorf("recorded duration %v, error %q, replay %v", ex.Duration, ex.Error, ex.Replay)
	}
}

// patternReader yields n bytes of a repeating pattern without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), p.left)
	for i := range b[:n] {
		b[i] = "0123456789abcdef"[i%16]
	}
	p.left -= n
	return int(n), nil
}

// 8 MiB each way stream through; only the start of each is kept, and the
// forwarder allocates far less than one body.
func TestForwardStreamsLargeBodies(t *testing.T) {
	const size = 8 << 20
	appGot := make(chan int64, 1)
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		appGot <- n
		_, _ = io.Copy(w, &patternReader{left: size})
	})
	base, store := forwarding(t, local)
	// Connections and buffers exist before measuring.
	if resp, err := client.Get(base + "/warm-up"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body) // a warm-up: only the connection matters
		resp.Body.Close()
	}
	<-appGot
	waitDone(t, store, 1)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest(http.MethodPut, base+"/upload", &patternReader{left: size})
	req.ContentLength = -1 // chunked, as a streaming caller sends
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ex := waitDone(t, store, 2)[0]
	runtime.ReadMemStats(&after)

	if err != nil || n != size {
		t.Fatalf("caller read %d bytes (%v), want %d", n, err, size)
	}
	if got := <-appGot; got != size {
		t.Fatalf("app read %d bytes, want %d", got, size)
	}
	if ex.RequestSize != size || ex.ResponseSize != size {
		t.Errorf("recorded sizes %d / %d, want %d each", ex.RequestSize, ex.ResponseSize, size)
	}
	for name, b := range map[string]Body{"request": ex.RequestBody, "response": ex.ResponseBody} {
		if len(b.Data) != BodyCaptureLimit || !b.Truncated {
			t.Errorf("%s body: kept %d bytes, truncated %v; want %d, true", name, len(b.Data), b.Truncated, BodyCaptureLimit)
		}
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > size {
		t.Errorf("streaming 2 × 8 MiB allocated %d MiB: a body was buffered whole", alloc>>20)
	}
	t.Logf("streaming 2 × 8 MiB allocated %d KiB", alloc>>10)
}

func TestForwardKeepsTrailers(t *testing.T) {
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc123")
	})
	base, store := forwarding(t, local)
	resp, err := client.Get(base + "/report")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("caller's trailer X-Checksum = %q, want abc123", got)
	}
	if got := waitDone(t, store, 1)[0].ResponseTrailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("recorded trailer X-Checksum = %q, want abc123", got)
	}
}

// The app gets a request in the HTTP version it came through the tunnel in:
// the sidecar sends HTTP/2 only for gRPC (which needs its trailers) or a
// port declared h2c, and HTTP/1.1 otherwise.
func TestForwardChoosesProtocol(t *testing.T) {
	local := serveBoth(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-App-Saw", r.Proto)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			w.Write([]byte{0, 0, 0, 0, 2, '{', '}'})
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set("Grpc-Message", "ok")
			return
		}
		_, _ = io.WriteString(w, "plain")
	}))
	base, store := forwarding(t, local)

	cases := []struct {
		name, contentType string
		client            *http.Client
		appSees           string
	}{
		{"grpc over h2c", "application/grpc+json", h2cClient(), "HTTP/2.0"},
		{"json over h2c (a port declared h2c)", "application/json", h2cClient(), "HTTP/2.0"},
		{"grpc content type over HTTP/1.1", "application/grpc", client, "HTTP/1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+"/demo.Echo/Echo", bytes.NewReader([]byte{0, 0, 0, 0, 2, '{', '}'}))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("Te", "trailers")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-App-Saw"); got != tc.appSees {
				t.Errorf("the app saw %s, want %s", got, tc.appSees)
			}
			if strings.HasPrefix(tc.contentType, "application/grpc") && tc.appSees == "HTTP/2.0" && resp.Trailer.Get("Grpc-Status") != "0" {
				t.Errorf("caller's grpc-status trailer = %q, want 0 (trailers: %v)", resp.Trailer.Get("Grpc-Status"), resp.Trailer)
			}
		})
	}
	list := waitDone(t, store, len(cases))
	grpc := list[len(list)-1]
	if grpc.Proto != "HTTP/2.0" || grpc.ResponseTrailer.Get("Grpc-Status") != "0" || grpc.ResponseSize != 7 {
		t.Errorf("recorded gRPC exchange: %s, trailer %v, %d bytes", grpc.Proto, grpc.ResponseTrailer, grpc.ResponseSize)
	}
}

// Server-sent events reach the caller as the app writes them, not when the
// response ends.
func TestForwardFlushesAtOnce(t *testing.T) {
	release := make(chan struct{})
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: last\n\n")
	})
	base, store := forwarding(t, local)
	defer close(release)
	resp, err := client.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func(body io.Reader) {
		l, _ := bufio.NewReader(body).ReadString('\n')
		line <- l
	}(resp.Body)
	select {
	case l := <-line:
		if l != "data: first\n" {
			t.Errorf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the stream was open: the forwarder buffers")
	}
	waitFor(t, store, "the stream recorded as 200 while open", func(l []Exchange) bool {
		return len(l) == 1 && l[0].Status == 200 && !l[0].Done
	})
}

// With nothing listening on the local port, the caller learns why and what
// to do.
func TestForwardNothingListening(t *testing.T) {
	local := freeAddr(t)
	base, store := forwarding(t, local)
	resp, err := client.Get(base + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, port, _ := strings.Cut(local, ":")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	for _, want := range []string{"nothing answers on " + local, "Start your service on port " + port, testRoute} {
		if !strings.Contains(string(body), want) {
			t.Errorf("502 body lacks %q:\n%s", want, body)
		}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	ex := waitDone(t, store, 1)[0]
	if ex.Status != 502 || !strings.Contains(ex.Error, "nothing answers") || string(ex.ResponseBody.Data) != string(body) {
		t.Errorf("recorded status %d, error %q, body %q", ex.Status, ex.Error, ex.ResponseBody.Data)
	}
}

// An app that dies mid-response leaves a recorded error, not a stuck or
// lost exchange.
func TestForwardAppBreaksOff(t *testing.T) {
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "only part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // closes the connection
	})
	base, store := forwarding(t, local)
	resp, err := client.Get(base + "/partial")
	if err == nil {
		_, _ = io.ReadAll(resp.Body) // fails: the app breaks off mid-body
		resp.Body.Close()
	}
	ex := waitDone(t, store, 1)[0]
	if ex.Error == "" || ex.ResponseSize != int64(len("only part")) {
		t.Errorf("recorded error %q after %d bytes, want an error after 9", ex.Error, ex.ResponseSize)
	}
}
