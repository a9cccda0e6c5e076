package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// handApp answers each request by hand (so its framing is the test's:
// chunked with a trailer, a HEAD's length, a body past the copy's cap),
// and keeps every byte it received.
type handApp struct {
	addr string
	mu   sync.Mutex
	got  bytes.Buffer
}

func (a *handApp) received() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got.String()
}

func (a *handApp) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got.Write(p)
}

func startHandApp(t *testing.T) *handApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := &handApp{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.serve(c)
		}
	}()
	return a
}

func (a *handApp) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, a))
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(r.Body)
		var resp string
		switch r.URL.Path {
		case "/chunked":
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-Answered-By: app\r\n\r\n" +
				"3\r\ngot\r\n" + "1;ext=1\r\n \r\n" + strconv.FormatInt(int64(len(body)), 16) + "\r\n" + string(body) + "\r\n" +
				"0\r\nX-Sum: 42\r\n\r\n"
		case "/head":
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Answered-By: app\r\n\r\n"
		case "/big":
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 1572864\r\nX-Answered-By: app\r\n\r\n" + strings.Repeat("b", 3<<19)
		default:
			resp = "HTTP/1.1 201 Created\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nSet-Cookie: s=secret\r\nX-Answered-By: app\r\n\r\n" + string(body)
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// Pipelined requests a wiretap matches stay on the fast path (the app sees
// the header names' case as sent, which net/http would change), each
// caller gets the app's answer byte for byte, and each copy follows its
// request's framing: a Content-Length body, a chunked one (decoded), a
// HEAD answer's length without a body, a chunked answer with its trailer
// among the headers, and an answer past the cap, cut and said so;
// credentials redacted as on net/http's path.
func TestWiretapTeesOnTheFastPath(t *testing.T) {
	app := startHandApp(t)
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: app.addr, Control: "127.0.0.1:0"}, ctrl)
	bob := wiretap(t, <-ctrl, route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Owner: "bob", Client: bobKey})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqs := "POST /orders?n=1 HTTP/1.1\r\nHost: shop\r\nx-dev: alice\r\nx-lower: yes\r\nAuthorization: Bearer alice-secret\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /chunked HTTP/1.1\r\nHost: shop\r\nX-Dev: alice\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n" +
		"HEAD /head HTTP/1.1\r\nHost: shop\r\nX-Dev: alice\r\n\r\n" +
		"GET /big HTTP/1.1\r\nHost: shop\r\nX-Dev: alice\r\n\r\n" +
		"GET /unmarked HTTP/1.1\r\nHost: shop\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, want := range []struct {
		method, body string
		trailer      string
	}{
		{"POST", "hello", ""},
		{"POST", "got wikipedia", "42"},
		{"HEAD", "", ""},
		{"GET", strings.Repeat("b", 3<<19), ""},
		{"GET", "", ""},
	} {
		resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != want.body || resp.Header.Get("X-Answered-By") != "app" || resp.Trailer.Get("X-Sum") != want.trailer {
			t.Fatalf("answer %d: %v %q (%v), trailer %v", i, resp.Status, shorten(string(body)), err, resp.Trailer)
		}
	}
	if !strings.Contains(app.received(), "\r\nx-lower: yes\r\n") {
		t.Fatalf("the app did not see the head as sent (the request left the fast path):\n%s", shorten(app.received()))
	}
	copies := bob.waitCopies(t, 4)
	post, chunked, head, big := copies[0], copies[1], copies[2], copies[3]
	if post.Request.Method != "POST" || post.Request.Target != "/orders?n=1" || post.Request.Proto != "HTTP/1.1" ||
		post.Request.Header.Get("Host") != "shop" || post.Request.Header.Get("X-Lower") != "yes" ||
		!tap.AllRedacted(post.Request.Header.Values("Authorization")) || string(post.Request.Body.Data) != "hello" ||
		post.Response.Status != 201 || string(post.Response.Body.Data) != "hello" || !tap.AllRedacted(post.Response.Header.Values("Set-Cookie")) ||
		post.Route.Marker != "X-Dev:alice (wiretap)" || post.Route.Owner != "bob" {
		t.Fatalf("the copy of the POST: %+v", post)
	}
	if string(chunked.Request.Body.Data) != "wikipedia" || chunked.Request.Body.Truncated || chunked.Request.Header.Get("Transfer-Encoding") != "" ||
		string(chunked.Response.Body.Data) != "got wikipedia" || chunked.Response.Body.Size != 13 || chunked.Response.Header.Get("X-Sum") != "42" {
		t.Fatalf("the copy of the chunked exchange: request %q, answer %q (%d bytes), headers %v",
			chunked.Request.Body.Data, chunked.Response.Body.Data, chunked.Response.Body.Size, chunked.Response.Header)
	}
	if head.Request.Method != "HEAD" || head.Response.Body.Size != 0 || head.Response.Header.Get("Content-Length") != "10" {
		t.Fatalf("the copy of the HEAD: %+v", head)
	}
	if !big.Response.Body.Truncated || big.Response.Body.Size != 3<<19 || len(big.Response.Body.Data) != tap.BodyCap {
		t.Fatalf("the copy of the 1.5 MiB answer: %d bytes of %d, truncated %v", len(big.Response.Body.Data), big.Response.Body.Size, big.Response.Body.Truncated)
	}
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// However copyChunked's writes split a chunked body (each size line,
// piece of data, CRLF and trailer line as it comes, or the bytes cut
// anywhere), the copy holds the body decoded, its length and its
// trailers, as net/http decodes the same bytes.
func TestDechunkFollowsTheFraming(t *testing.T) {
	body := strings.Repeat("abcdefghij", 700) // 7000 bytes
	var wire strings.Builder
	for rest := body; rest != ""; {
		n := min(len(rest), 1+len(rest)%1500)
		wire.WriteString(strconv.FormatInt(int64(n), 16) + ";ext=a\r\n" + rest[:n] + "\r\n")
		rest = rest[n:]
	}
	wire.WriteString("0\r\nX-Sum: 42\r\nX-Other: b\r\n\r\n")
	raw := wire.String()
	want, err := io.ReadAll(httpChunkedReader(raw))
	if err != nil || string(want) != body {
		t.Fatalf("net/http reads %d bytes: %v", len(want), err)
	}
	for _, step := range []int{1, 2, 3, 7, 64, 1000, len(raw)} {
		c := &tapCapture{}
		d := &dechunk{c: c}
		for p := raw; p != ""; {
			n := min(step, len(p))
			d.write([]byte(p[:n]))
			p = p[n:]
		}
		got := c.result(-1)
		if string(got.Data) != body || got.Size != int64(len(body)) || got.Truncated {
			t.Fatalf("in writes of %d bytes: %d bytes kept of %d, truncated %v", step, len(got.Data), got.Size, got.Truncated)
		}
		if string(d.trailers) != "X-Sum: 42\r\nX-Other: b\r\n" {
			t.Fatalf("in writes of %d bytes: trailers %q", step, d.trailers)
		}
	}
}

// httpChunkedReader decodes a chunked body as net/http's client does.
func httpChunkedReader(raw string) io.Reader {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+raw)), nil)
	if err != nil {
		return iotest.ErrReader(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return iotest.ErrReader(err)
	}
	return bytes.NewReader(b)
}
