package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

const testPod = "demo-pod-0"

// newTestServer starts the demo on a real listener with HTTP/1.1 and h2c.
func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(Config{Pod: testPod, Message: "hello", Log: io.Discard})
	ts := httptest.NewUnstartedServer(s)
	ts.Config = s.HTTPServer("")
	ts.Start()
	t.Cleanup(ts.Close)
	return s, ts
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// getEcho sends a GET and decodes the echo; the caller closes resp.Body.
func getEcho(t *testing.T, c *http.Client, url string, hdr http.Header) (*http.Response, EchoResponse) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body EchoResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		resp.Body.Close()
		t.Fatal(err)
	}
	return resp, body
}

func TestJSONEcho(t *testing.T) {
	_, ts := newTestServer(t)
	resp, body := getEcho(t, ts.Client(), ts.URL+"/some/path?x=1", http.Header{"X-C6o-Intercept": {"alice"}})
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get(PodHeader); got != testPod {
		t.Errorf("%s = %q", PodHeader, got)
	}
	if body.Pod != testPod || body.Message != "hello" || body.Method != "GET" ||
		body.Path != "/some/path" || body.Query != "x=1" || body.Proto != "HTTP/1.1" {
		t.Errorf("unexpected body %+v", body)
	}
	if got := body.Headers["X-C6o-Intercept"]; got != "alice" {
		t.Errorf("header X-C6o-Intercept = %q", got)
	}
}

func TestH2C(t *testing.T) {
	_, ts := newTestServer(t)
	resp, body := getEcho(t, h2cClient(), ts.URL+"/", http.Header{"X-Test": {"a", "b"}})
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || body.Proto != "HTTP/2.0" {
		t.Fatalf("response proto %s, server saw %s", resp.Proto, body.Proto)
	}
	if body.Pod != testPod || body.Headers["X-Test"] != "a, b" {
		t.Errorf("unexpected body %+v", body)
	}
}

func TestHealthzAndStatus(t *testing.T) {
	_, ts := newTestServer(t)
	for path, want := range map[string]int{"/healthz": 200, "/status/418": 418, "/status/204": 204, "/status/abc": 400} {
		resp, err := ts.Client().Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/healthz" && string(b) != "ok" {
			t.Errorf("/healthz body %q", b)
		}
	}
}

func dialGRPC(t *testing.T, ts *httptest.Server) *EchoClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+ts.Listener.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return NewEchoClient(conn)
}

func TestGRPCEcho(t *testing.T) {
	_, ts := newTestServer(t)
	client := dialGRPC(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ctx = metadata.AppendToOutgoingContext(ctx, InterceptMetadataKey, "alice")
	var hdr metadata.MD
	out, err := client.Echo(ctx, &Message{Message: "ping"}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if out.Message != "ping" || out.Pod != testPod {
		t.Errorf("reply %+v", out)
	}
	if got := hdr.Get(SeenInterceptMetadataKey); len(got) != 1 || got[0] != "alice" {
		t.Errorf("%s = %v", SeenInterceptMetadataKey, got)
	}
	if got := hdr.Get(PodMetadataKey); len(got) != 1 || got[0] != testPod {
		t.Errorf("%s = %v", PodMetadataKey, got)
	}
}

func TestGRPCChat(t *testing.T) {
	_, ts := newTestServer(t)
	client := dialGRPC(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stream, err := client.Chat(metadata.AppendToOutgoingContext(ctx, InterceptMetadataKey, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(SeenInterceptMetadataKey); len(got) != 1 || got[0] != "bob" {
		t.Errorf("%s = %v", SeenInterceptMetadataKey, got)
	}
	for _, m := range []string{"one", "two", "three"} {
		if err := stream.Send(&Message{Message: m}); err != nil {
			t.Fatal(err)
		}
		out, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if out.Message != m || out.Pod != testPod {
			t.Errorf("reply %+v", out)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

func TestWebSocket(t *testing.T) {
	_, ts := newTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil) //nolint:bodyclose // websocket.Dial leaves resp.Body nil on success: nothing to close
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if got := resp.Header.Get(PodHeader); got != testPod {
		t.Errorf("%s = %q", PodHeader, got)
	}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(data) != testPod {
		t.Fatalf("first message %v %q %v", typ, data, err)
	}
	msgs := []struct {
		typ  websocket.MessageType
		data []byte
	}{
		{websocket.MessageText, []byte("hello")},
		{websocket.MessageBinary, bytes.Repeat([]byte{0, 1, 2, 255}, 50000)},
	}
	for _, m := range msgs {
		if err := c.Write(ctx, m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, data, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != m.typ || !bytes.Equal(data, m.data) {
			t.Errorf("echo mismatch: type %v len %d", typ, len(data))
		}
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

func patternSHA(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, Pattern(n))
	return hex.EncodeToString(h.Sum(nil))
}

func TestBytesAndUpload(t *testing.T) {
	_, ts := newTestServer(t)
	const n = 3<<20 + 17
	for name, c := range map[string]*http.Client{"http1": ts.Client(), "h2c": h2cClient()} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Get(ts.URL + "/bytes?n=" + strconv.Itoa(n))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			got, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || got != n {
				t.Fatalf("read %d bytes, err %v", got, err)
			}
			if sum := hex.EncodeToString(h.Sum(nil)); sum != patternSHA(n) {
				t.Errorf("bytes sha %s, want %s", sum, patternSHA(n))
			}

			// Without a length the body is sent chunked / as a stream.
			resp, err = c.Post(ts.URL+"/upload", "application/octet-stream", struct{ io.Reader }{Pattern(n)})
			if err != nil {
				t.Fatal(err)
			}
			var up UploadResponse
			err = json.NewDecoder(resp.Body).Decode(&up)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if up.Bytes != n || up.SHA256 != patternSHA(n) || up.Pod != testPod {
				t.Errorf("upload %+v", up)
			}
		})
	}
	resp, err := ts.Client().Get(ts.URL + "/upload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /upload: %d", resp.StatusCode)
	}
}

func TestSSE(t *testing.T) {
	_, ts := newTestServer(t)
	resp, err := ts.Client().Get(ts.URL + "/sse?interval=10ms&count=3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content-type %q", ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := "id: 1\ndata: " + testPod + "\n\nid: 2\ndata: " + testPod + "\n\nid: 3\ndata: " + testPod + "\n\n"
	if string(b) != want {
		t.Errorf("events %q", b)
	}
}

func TestLineEcho(t *testing.T) {
	s := NewServer(Config{Pod: testPod, Log: io.Discard})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeLineEcho(ln) }()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "hello\r\nworld\n"); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	for _, want := range []string{testPod + ": hello\n", testPod + ": world\n"} {
		got, err := rd.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeLineEcho: %v", err)
	}
}

// TestShutdownEndsStreams checks that Shutdown does not wait for a stream
// that would otherwise never end.
func TestShutdownEndsStreams(t *testing.T) {
	s := NewServer(Config{Pod: testPod})
	srv := s.HTTPServer("")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }() // returns when the test's listener closes

	resp, err := http.Get("http://" + ln.Addr().String() + "/sse?interval=10ms&count=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// /bytes?cut=M is an app that dies mid-response: the client gets the first
// M bytes, then an unexpected end, with or without a Content-Length.
func TestBytesCut(t *testing.T) {
	_, ts := newTestServer(t)
	for _, q := range []string{"n=100000&cut=4096", "n=100000&cut=4096&chunked=1"} {
		for name, c := range map[string]*http.Client{"http1": ts.Client(), "h2c": h2cClient()} {
			resp, err := c.Get(ts.URL + "/bytes?" + q)
			if err != nil {
				t.Fatalf("%s %s: %v", name, q, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil || len(got) > 4096 {
				t.Errorf("%s %s: read %d bytes, err %v; want at most 4096 and an error", name, q, len(got), err)
			}
		}
	}
}

// The raw head echo answers with the request head byte for byte.
func TestRawHead(t *testing.T) {
	s := NewServer(Config{Pod: "p"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = s.ServeRawHead(ln) }() // returns when ln closes
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	head := "GET /x HTTP/1.1\r\nhost: a\r\nX-Dup: 1\r\nx-MIXED: y\r\nX-Dup: 2\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != head || resp.Header.Get(PodHeader) != "p" {
		t.Fatalf("answered %q from %q", body, resp.Header.Get(PodHeader))
	}
}
