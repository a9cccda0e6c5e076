package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"
)

// The fast path's reading of HTTP/1 framing, case by case. Where the fast
// path takes a message, net/http's reading of the same bytes is checked
// too: it must frame the message the same way, or the case names the
// error with which net/http refuses those bytes (a difference known and
// judged harmless: the framing the fast path passes on is the one any
// reader that accepts the bytes finds).

// crlf joins a head's lines and ends it with the blank line.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

func TestParseRequestHead(t *testing.T) {
	type want = reqFraming
	cases := []struct {
		name string
		head string
		ok   bool
		want want
		// netHTTP: net/http refuses the head with this error although the
		// fast path takes it; empty: net/http reads the same framing.
		netHTTP string
	}{
		// Methods and request targets.
		{name: "GET", head: crlf("GET / HTTP/1.1", "Host: x"), ok: true},
		{name: "POST with a body", head: crlf("POST /a HTTP/1.1", "Host: x", "Content-Length: 5"), ok: true, want: want{length: 5}},
		{name: "HEAD", head: crlf("HEAD / HTTP/1.1", "Host: x"), ok: true, want: want{head1: true}},
		{name: "HEAD is case-sensitive", head: crlf("head / HTTP/1.1", "Host: x"), ok: true},
		{name: "extension method", head: crlf("PURGE /cache HTTP/1.1", "Host: x"), ok: true},
		{name: "OPTIONS asterisk", head: crlf("OPTIONS * HTTP/1.1", "Host: x"), ok: true},
		{name: "CONNECT", head: crlf("CONNECT x:443 HTTP/1.1", "Host: x:443")}, // a 2xx makes a tunnel
		{name: "absolute-form", head: crlf("GET http://x/a?b=c HTTP/1.1", "Host: x"), ok: true},
		{name: "absolute-form HEAD", head: crlf("HEAD http://x/ HTTP/1.1", "Host: x"), ok: true, want: want{head1: true}},
		{name: "method not a token", head: crlf("GE(T / HTTP/1.1", "Host: x")},
		{name: "empty method", head: crlf(" / HTTP/1.1", "Host: x")},
		{name: "two spaces", head: crlf("GET  / HTTP/1.1", "Host: x")},
		{name: "space in target", head: crlf("GET /a b HTTP/1.1", "Host: x")},
		{name: "tab in target", head: crlf("GET /a\tb HTTP/1.1", "Host: x")},
		{name: "control byte in target", head: crlf("GET /\x01 HTTP/1.1", "Host: x")},
		{name: "DEL in target", head: crlf("GET /\x7f HTTP/1.1", "Host: x")},
		{name: "non-ASCII target", head: crlf("GET /\xc3\xa9 HTTP/1.1", "Host: x"), ok: true},
		{name: "nothing", head: ""},
		{name: "request line only", head: "GET / HTTP/1.1\r\n\r\n"},

		// Versions: only HTTP/1.1 stays on the fast path.
		{name: "HTTP/1.0", head: crlf("GET / HTTP/1.0", "Host: x")},
		{name: "HTTP/1.0 keep-alive", head: crlf("GET / HTTP/1.0", "Host: x", "Connection: keep-alive")},
		{name: "HTTP/2 preface", head: "PRI * HTTP/2.0\r\n\r\n"},
		{name: "lower-case version", head: crlf("GET / http/1.1", "Host: x")},
		{name: "HTTP/1.2", head: crlf("GET / HTTP/1.2", "Host: x")},
		{name: "missing version", head: crlf("GET /", "Host: x")},
		{name: "HTTP/0.9 request line", head: "GET /\r\n\r\n"},
		{name: "space after version", head: crlf("GET / HTTP/1.1 ", "Host: x")},

		// Keep-alive and close.
		{name: "Connection: close", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: close"), ok: true, want: want{close: true}},
		{name: "Connection: keep-alive", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: keep-alive"), ok: true},
		{name: "close among tokens", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: Keep-Alive ,\tCLOSE"), ok: true, want: want{close: true}},
		{name: "close in a second Connection", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: keep-alive", "connection: close"), ok: true, want: want{close: true}},
		{name: "closed is not close", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: closed"), ok: true},
		{name: "Connection names a header", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: X-Hop", "X-Hop: 1"), ok: true},

		// Host: exactly one.
		{name: "no Host", head: crlf("GET / HTTP/1.1", "X: y")},
		{name: "two Hosts", head: crlf("GET / HTTP/1.1", "Host: x", "Host: y")},
		{name: "two Hosts, same value", head: crlf("GET / HTTP/1.1", "Host: x", "host: x")},
		{name: "Host in any case", head: crlf("GET / HTTP/1.1", "hOsT: x"), ok: true},
		{name: "empty Host", head: crlf("GET / HTTP/1.1", "Host:"), ok: true},

		// Content-Length.
		{name: "Content-Length 0", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 0"), ok: true},
		{name: "Content-Length with blanks", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: \t 5 \t"), ok: true, want: want{length: 5}},
		{name: "Content-Length leading zeros", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 007"), ok: true, want: want{length: 7}},
		{name: "Content-Length max", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 9223372036854775807"), ok: true, want: want{length: 1<<63 - 1}},
		{name: "Content-Length overflow", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 9223372036854775808")},
		{name: "Content-Length negative", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: -1")},
		{name: "Content-Length plus sign", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: +5")},
		{name: "Content-Length minus zero", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: -0")},
		{name: "Content-Length empty", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length:")},
		{name: "Content-Length hex", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 0x5")},
		{name: "Content-Length list", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 5, 5")},
		{name: "Content-Length twice, same", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 5", "content-length: 5"), ok: true, want: want{length: 5}},
		{name: "Content-Length twice, conflicting", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 6")},
		{name: "Content-Length twice, conflicting to 0", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 0", "Content-Length: 6")},
		{name: "Content-Length twice, same number spelt otherwise", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 5", "Content-Length: 05"), ok: true, want: want{length: 5},
			netHTTP: "message cannot contain multiple Content-Length headers"},
		{name: "Content-Length on GET", head: crlf("GET / HTTP/1.1", "Host: x", "Content-Length: 3"), ok: true, want: want{length: 3}},

		// Transfer-Encoding: only chunked, alone.
		{name: "chunked", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"), ok: true, want: want{chunked: true}},
		{name: "Chunked in any case", head: crlf("POST / HTTP/1.1", "Host: x", "transfer-encoding: CHUNKED"), ok: true, want: want{chunked: true}},
		{name: "chunked after a tab", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding:\tchunked"), ok: true, want: want{chunked: true}},
		{name: "chunked with close", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Connection: close"), ok: true, want: want{chunked: true, close: true}},
		{name: "gzip, chunked", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: gzip, chunked")},
		{name: "identity", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: identity")},
		{name: "empty Transfer-Encoding", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding:")},
		{name: "chunked twice", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked")},
		{name: "chunked then identity", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: identity")},
		{name: "chunked, comma", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked,")},
		{name: "TE and CL", head: crlf("POST / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked", "Content-Length: 4")},
		{name: "CL and TE", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 4", "Transfer-Encoding: chunked")},
		{name: "CL 0 and TE", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 0", "Transfer-Encoding: chunked")},

		// Header fields: names are tokens, values have no control bytes
		// but tab, every line has a colon.
		{name: "obs-fold", head: crlf("GET / HTTP/1.1", "Host: x", "X: a", " b")},
		{name: "obs-fold with a colon", head: crlf("GET / HTTP/1.1", "Host: x", "X: a", "\tY: b")},
		{name: "folded Content-Length", head: crlf("POST / HTTP/1.1", "Host: x", "Content-Length: 5", " 6")},
		{name: "bare LF everywhere", head: "GET / HTTP/1.1\nHost: x\n\n\r\n\r\n"},
		{name: "bare LF between fields", head: crlf("POST / HTTP/1.1", "Host: x\nContent-Length: 5")},
		{name: "bare LF ends the request line", head: crlf("GET / HTTP/1.1\nHost: x")},
		{name: "bare CR in a value", head: crlf("GET / HTTP/1.1", "Host: x", "X: a\rb")},
		{name: "NUL in a value", head: crlf("GET / HTTP/1.1", "Host: x", "X: a\x00b")},
		{name: "DEL in a value", head: crlf("GET / HTTP/1.1", "Host: x", "X: a\x7fb")},
		{name: "tab in a value", head: crlf("GET / HTTP/1.1", "Host: x", "X: a\tb"), ok: true},
		{name: "obs-text in a value", head: crlf("GET / HTTP/1.1", "Host: x", "X: caf\xe9"), ok: true},
		{name: "empty value", head: crlf("GET / HTTP/1.1", "Host: x", "X:"), ok: true},
		{name: "colon in a value", head: crlf("GET / HTTP/1.1", "Host: x:8080", "X: a:b"), ok: true},
		{name: "header without colon", head: crlf("GET / HTTP/1.1", "Host: x", "X-No-Colon")},
		{name: "empty name", head: crlf("GET / HTTP/1.1", "Host: x", ": v")},
		{name: "space before colon", head: crlf("GET / HTTP/1.1", "Host: x", "Content-Length : 5")},
		{name: "space in a name", head: crlf("GET / HTTP/1.1", "Host: x", "X Y: z")},
		{name: "non-token name", head: crlf("GET / HTTP/1.1", "Host: x", "X(Y): z")},

		// Left to net/http: Expect, upgrades, the probe.
		{name: "Expect: 100-continue", head: crlf("POST / HTTP/1.1", "Host: x", "Expect: 100-continue", "Content-Length: 5")},
		{name: "any Expect", head: crlf("GET / HTTP/1.1", "Host: x", "expect: something")},
		{name: "WebSocket upgrade", head: crlf("GET /ws HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade")},
		{name: "Upgrade alone", head: crlf("GET / HTTP/1.1", "Host: x", "Upgrade: websocket")},
		{name: "Connection: upgrade alone", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: keep-alive, upgrade")},
		{name: "h2c upgrade", head: crlf("GET / HTTP/1.1", "Host: x", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA")},
		{name: "probe", head: crlf("GET / HTTP/1.1", "Host: x", wire.ProbeHeader+": 1")},

		// Size: the head is bounded where it is read (peekHead), not here.
		{name: "large head", head: crlf("GET / HTTP/1.1", "Host: x", "X-Big: "+strings.Repeat("b", 4*fastHeadMax)), ok: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, ok := parseRequestHead([]byte(tc.head))
			got := framingOf(req)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				if req.head != nil || got != (reqFraming{}) {
					t.Fatalf("refused, yet returned %+v", req)
				}
				return
			}
			if string(req.head) != tc.head {
				t.Errorf("head %q, want the input", req.head)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			nh, err := netHTTPRequest(tc.head)
			switch {
			case tc.netHTTP != "" && (err == nil || !strings.Contains(err.Error(), tc.netHTTP)):
				t.Errorf("net/http: %v, want it to refuse with %q", err, tc.netHTTP)
			case tc.netHTTP == "" && err != nil:
				t.Errorf("net/http refuses what the fast path takes: %v", err)
			case tc.netHTTP == "" && nh != got:
				t.Errorf("net/http reads %+v, the fast path %+v", nh, got)
			}
		})
	}
}

// reqFraming is a fastRequest but its head.
type reqFraming struct {
	head1, chunked, close bool
	length                int64
}

func framingOf(r fastRequest) reqFraming {
	return reqFraming{head1: r.head1, chunked: r.chunked, close: r.close, length: r.length}
}

// netHTTPRequest is net/http's reading of a request head's framing.
func netHTTPRequest(head string) (reqFraming, error) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		return reqFraming{}, err
	}
	req := reqFraming{head1: r.Method == http.MethodHead, close: r.Close, length: r.ContentLength}
	if slices.Equal(r.TransferEncoding, []string{"chunked"}) {
		req.chunked, req.length = true, 0
	}
	return req, nil
}

// peekHead finds the end of a head in the read buffer; what does not fit
// the buffer, or stops short, is for net/http.
func TestPeekHead(t *testing.T) {
	cases := []struct {
		name, in, head string
		err            error
	}{
		{name: "head and body", in: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", head: "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"},
		{name: "pipelined", in: crlf("GET /1 HTTP/1.1", "Host: x") + crlf("GET /2 HTTP/1.1", "Host: x"), head: crlf("GET /1 HTTP/1.1", "Host: x")},
		{name: "nothing", in: "", err: io.EOF},
		{name: "cut short", in: "GET / HTTP/1.1\r\nHost: x\r\n", err: errNotFast},
		{name: "bare LF", in: "GET / HTTP/1.1\nHost: x\n\n", err: errNotFast},
		{name: "just fits", in: crlf("GET / HTTP/1.1", "Host: x", "X: "+strings.Repeat("b", fastHeadMax-len(crlf("GET / HTTP/1.1", "Host: x", "X: ")))),
			head: crlf("GET / HTTP/1.1", "Host: x", "X: "+strings.Repeat("b", fastHeadMax-len(crlf("GET / HTTP/1.1", "Host: x", "X: "))))},
		{name: "oversize", in: crlf("GET / HTTP/1.1", "Host: x", "X: "+strings.Repeat("b", fastHeadMax)), err: errNotFast},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				head, err := peekHead(bufio.NewReaderSize(r, fastHeadMax))
				if string(head) != tc.head || !errors.Is(err, tc.err) {
					t.Fatalf("%d bytes, %v; want %d bytes, %v", len(head), err, len(tc.head), tc.err)
				}
			}
		})
	}
}

func TestParseResponseHead(t *testing.T) {
	type want = responseFraming
	cases := []struct {
		name   string
		head   string
		toHEAD bool // the request was HEAD
		ok     bool
		status int
		want   want
		// bodyless: the response has no body whatever its head says.
		bodyless bool
		// netHTTP: net/http refuses the head with this error although the
		// fast path takes it; netReads: net/http frames the body so; both
		// empty: net/http reads the same framing.
		netHTTP  string
		netReads *bodyView
	}{
		// Status lines.
		{name: "200 with a length", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5"), ok: true, status: 200, want: want{length: 5}},
		{name: "no reason phrase", head: crlf("HTTP/1.1 200", "Content-Length: 0"), ok: true, status: 200},
		{name: "empty reason phrase", head: crlf("HTTP/1.1 404 ", "Content-Length: 0"), ok: true, status: 404},
		{name: "odd status", head: crlf("HTTP/1.1 599 Whatever", "Content-Length: 0"), ok: true, status: 599},
		{name: "status below 100", head: crlf("HTTP/1.1 099 Low", "Content-Length: 0")},
		{name: "status not a number", head: crlf("HTTP/1.1 2x0 OK", "Content-Length: 0")},
		{name: "status signed", head: crlf("HTTP/1.1 +20 OK", "Content-Length: 0")},
		{name: "status too short", head: "HTTP/1.1 20\r\n\r\n"},
		{name: "four-digit status", head: crlf("HTTP/1.1 2040 X", "Content-Length: 5")},
		{name: "status run into the reason", head: crlf("HTTP/1.1 200OK", "Content-Length: 0")},
		{name: "tab after the status", head: crlf("HTTP/1.1 200\tOK", "Content-Length: 0")},
		{name: "two spaces before the status", head: crlf("HTTP/1.1  200 OK", "Content-Length: 0")},
		{name: "HTTP/1.x", head: crlf("HTTP/1.x 200 OK", "Content-Length: 0")},
		{name: "HTTP/1.2", head: crlf("HTTP/1.2 200 OK", "Content-Length: 0"), ok: true, status: 200},
		{name: "HTTP/2.0", head: crlf("HTTP/2.0 200 OK", "Content-Length: 0")},
		{name: "lower-case version", head: crlf("http/1.1 200 OK", "Content-Length: 0")},
		{name: "ICY", head: crlf("ICY 200 OK", "Content-Length: 0")},
		{name: "no status line", head: "\r\n\r\n"},

		// Bodies delimited by length, chunks, or the app closing.
		{name: "close-delimited", head: crlf("HTTP/1.1 200 OK", "Content-Type: text/plain"), ok: true, status: 200, want: want{length: -1}},
		{name: "close-delimited, said so", head: crlf("HTTP/1.1 200 OK", "Connection: close"), ok: true, status: 200, want: want{length: -1, close: true}},
		{name: "length and close", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", "Connection: keep-alive, close"), ok: true, status: 200, want: want{length: 5, close: true}},
		{name: "closed is not close", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", "Connection: closed"), ok: true, status: 200, want: want{length: 5}},
		{name: "chunked", head: crlf("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), ok: true, status: 200, want: want{chunked: true, length: -1}},
		{name: "Chunked in any case", head: crlf("HTTP/1.1 200 OK", "transfer-encoding: Chunked"), ok: true, status: 200, want: want{chunked: true, length: -1}},
		{name: "chunked and a length", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked"), ok: true, status: 200, want: want{chunked: true, length: -1}},
		{name: "chunked twice", head: crlf("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), ok: true, status: 200, want: want{chunked: true, length: -1},
			netHTTP: "too many transfer encodings"},
		{name: "gzip, chunked", head: crlf("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, chunked")},
		{name: "identity", head: crlf("HTTP/1.1 200 OK", "Transfer-Encoding: identity")},
		{name: "length twice, same", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 5"), ok: true, status: 200, want: want{length: 5}},
		{name: "length twice, conflicting", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6")},
		{name: "length negative", head: crlf("HTTP/1.1 200 OK", "Content-Length: -1")},
		{name: "length plus sign", head: crlf("HTTP/1.1 200 OK", "Content-Length: +5")},
		{name: "length empty", head: crlf("HTTP/1.1 200 OK", "Content-Length:")},
		{name: "length not a number", head: crlf("HTTP/1.1 200 OK", "Content-Length: five")},

		// HTTP/1.0: the connection closes after the response.
		{name: "HTTP/1.0 with a length", head: crlf("HTTP/1.0 200 OK", "Content-Length: 5"), ok: true, status: 200, want: want{length: 5, close: true}},
		{name: "HTTP/1.0 close-delimited", head: crlf("HTTP/1.0 200 OK", "Server: old"), ok: true, status: 200, want: want{length: -1, close: true}},
		{name: "HTTP/1.0 keep-alive", head: crlf("HTTP/1.0 200 OK", "Content-Length: 5", "Connection: keep-alive"), ok: true, status: 200, want: want{length: 5, close: true},
			netReads: &bodyView{status: 200, length: 5}},
		{name: "HTTP/1.0 chunked", head: crlf("HTTP/1.0 200 OK", "Transfer-Encoding: chunked"), ok: true, status: 200, want: want{chunked: true, length: -1, close: true},
			netReads: &bodyView{status: 200, length: -1, close: true}},

		// No body whatever the head says.
		{name: "100 Continue", head: "HTTP/1.1 100 Continue\r\n\r\n", ok: true, status: 100, want: want{length: -1}, bodyless: true},
		{name: "103 Early Hints", head: crlf("HTTP/1.1 103 Early Hints", "Link: </s.css>; rel=preload"), ok: true, status: 103, want: want{length: -1}, bodyless: true},
		{name: "101 Switching Protocols", head: crlf("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"), ok: true, status: 101, want: want{length: -1}, bodyless: true},
		{name: "204", head: "HTTP/1.1 204 No Content\r\n\r\n", ok: true, status: 204, want: want{length: -1}, bodyless: true},
		{name: "204 with a length", head: crlf("HTTP/1.1 204 No Content", "Content-Length: 5"), ok: true, status: 204, want: want{length: 5}, bodyless: true},
		{name: "204 chunked", head: crlf("HTTP/1.1 204 No Content", "Transfer-Encoding: chunked"), ok: true, status: 204, want: want{chunked: true, length: -1}, bodyless: true},
		{name: "304 with the GET's length", head: crlf("HTTP/1.1 304 Not Modified", "Content-Length: 1000", "ETag: \"x\""), ok: true, status: 304, want: want{length: 1000}, bodyless: true},
		{name: "204 with a bad length", head: crlf("HTTP/1.1 204 No Content", "Content-Length: x")},
		{name: "HEAD, a length", head: crlf("HTTP/1.1 200 OK", "Content-Length: 1000"), toHEAD: true, ok: true, status: 200, want: want{length: 1000}, bodyless: true},
		{name: "HEAD, chunked", head: crlf("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), toHEAD: true, ok: true, status: 200, want: want{chunked: true, length: -1}, bodyless: true},
		{name: "HEAD, no length", head: crlf("HTTP/1.1 200 OK", "Server: x"), toHEAD: true, ok: true, status: 200, want: want{length: -1}, bodyless: true},
		{name: "HEAD, 404 with a length", head: crlf("HTTP/1.1 404 Not Found", "Content-Length: 9"), toHEAD: true, ok: true, status: 404, want: want{length: 9}, bodyless: true},

		// Header fields: each has a colon and a value without control
		// bytes but tab; names are not checked (nor by net/http).
		{name: "header without colon", head: crlf("HTTP/1.1 200 OK", "Content-Length: 0", "Broken")},
		{name: "empty value", head: crlf("HTTP/1.1 200 OK", "X:", "Content-Length: 0"), ok: true, status: 200},
		{name: "obs-fold", head: crlf("HTTP/1.1 200 OK", "X: a", " b: c", "Content-Length: 0"), ok: true, status: 200},
		{name: "folded length", head: crlf("HTTP/1.1 200 OK", "Content-Length: 5", " 6")},
		{name: "space before colon", head: crlf("HTTP/1.1 200 OK", "Content-Length : 5"), ok: true, status: 200, want: want{length: -1}},
		{name: "bare LF between fields", head: crlf("HTTP/1.1 200 OK", "X: a\nContent-Length: 5")},
		{name: "bare CR in a value", head: crlf("HTTP/1.1 200 OK", "X: a\rb", "Content-Length: 0")},
		{name: "NUL in a value", head: crlf("HTTP/1.1 200 OK", "X: a\x00b", "Content-Length: 0")},
		{name: "tab and obs-text in a value", head: crlf("HTTP/1.1 200 OK", "X: a\tcaf\xe9", "Content-Length: 0"), ok: true, status: 200},
		{name: "space in a name", head: crlf("HTTP/1.1 200 OK", "X Y: z", "Content-Length: 0"), ok: true, status: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, got, ok := parseResponseHead([]byte(tc.head))
			if ok != tc.ok || status != tc.status {
				t.Fatalf("status %d, ok %v; want %d, %v", status, ok, tc.status, tc.ok)
			}
			if !ok {
				return
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			req := fastRequest{head1: tc.toHEAD}
			if bodyless := req.bodyless(status); bodyless != tc.bodyless {
				t.Errorf("bodyless %v, want %v", bodyless, tc.bodyless)
			}
			fast := bodyFraming(status, got, req.bodyless(status))
			nh, err := netHTTPResponse(tc.head, tc.toHEAD)
			if tc.netReads == nil {
				tc.netReads = &fast
			}
			switch {
			case tc.netHTTP != "" && (err == nil || !strings.Contains(err.Error(), tc.netHTTP)):
				t.Errorf("net/http: %v, want it to refuse with %q", err, tc.netHTTP)
			case tc.netHTTP == "" && err != nil:
				t.Errorf("net/http refuses what the fast path takes: %v", err)
			case tc.netHTTP == "" && nh != *tc.netReads:
				t.Errorf("net/http reads %+v, want %+v (the fast path: %+v)", nh, *tc.netReads, fast)
			}
		})
	}
}

// A response's body framing, as the fast path and net/http see it.
type bodyView struct {
	status  int
	chunked bool
	length  int64 // -1: chunked or until the connection closes; 0 for no body
	close   bool  // the connection closes after the response
}

// bodyFraming is how the fast path passes on a response's body.
func bodyFraming(status int, fr responseFraming, bodyless bool) bodyView {
	switch {
	case bodyless:
		return bodyView{status: status, close: fr.close}
	case fr.chunked:
		return bodyView{status: status, chunked: true, length: -1, close: fr.close}
	case fr.length < 0:
		return bodyView{status: status, length: -1, close: true}
	}
	return bodyView{status: status, length: fr.length, close: fr.close}
}

// netHTTPResponse is net/http's reading of a response head's framing.
func netHTTPResponse(head string, toHEAD bool) (bodyView, error) {
	method := http.MethodGet
	if toHEAD {
		method = http.MethodHead
	}
	r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head)), &http.Request{Method: method})
	if err != nil {
		return bodyView{}, err
	}
	defer r.Body.Close()
	v := bodyView{status: r.StatusCode, close: r.Close}
	switch {
	case toHEAD || r.StatusCode/100 == 1 || r.StatusCode == 204 || r.StatusCode == 304:
	case slices.Equal(r.TransferEncoding, []string{"chunked"}):
		v.chunked, v.length = true, -1
	default:
		v.length = r.ContentLength
	}
	return v, nil
}

func TestCopyChunked(t *testing.T) {
	long := strings.Repeat("x", 4096)
	cases := []struct {
		name string
		in   string
		// rest: what follows the body, left unread. With err empty the
		// body before it is copied verbatim.
		rest string
		// err and out: the error, and what was copied before it.
		err, out string
		// netHTTP: net/http refuses the body with this error although the
		// fast path copies it; empty: net/http reads the same body.
		netHTTP string
	}{
		{name: "one chunk", in: "5\r\nhello\r\n0\r\n\r\nGET /next", rest: "GET /next"},
		{name: "no chunk", in: "0\r\n\r\n", rest: ""},
		{name: "chunks", in: "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\nnext", rest: "next"},
		{name: "upper-case hex", in: "A\r\n0123456789\r\n0\r\n\r\n"},
		{name: "lower-case hex", in: "a\r\n0123456789\r\n0\r\n\r\n"},
		{name: "leading zeros", in: "0005\r\nhello\r\n000\r\n\r\n"},
		{name: "CRLF in the data", in: "4\r\n\r\n\r\n\r\n0\r\n\r\nnext", rest: "next"},
		{name: "a body that looks like a request", in: "23\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"},
		{name: "extension", in: "5;name=value\r\nhello\r\n0;last\r\n\r\n"},
		{name: "quoted extension", in: "5;ext=\"a; b\"\r\nhello\r\n0\r\n\r\n"},
		{name: "blank before an extension", in: "5 ;ext\r\nhello\r\n0\r\n\r\n", netHTTP: "invalid byte in chunk length"},
		{name: "blank after the size", in: "5 \t\r\nhello\r\n0\r\n\r\n"},
		{name: "trailers", in: "5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Other: a\r\n\r\nnext", rest: "next"},
		{name: "trailer without colon", in: "0\r\nBroken\r\n\r\n", netHTTP: "missing colon"},
		{name: "size line as long as allowed", in: "5;" + long[:4092] + "\r\nhello\r\n0\r\n\r\n"},

		{name: "bad size", in: "x\r\nhello\r\n", err: `bad chunk size "x"`},
		{name: "empty size", in: "\r\nhello\r\n", err: `bad chunk size ""`},
		{name: "negative size", in: "-5\r\nhello\r\n", err: `bad chunk size "-5"`},
		{name: "0x size", in: "0x5\r\nhello\r\n", err: `bad chunk size "0x5"`},
		{name: "blank before the size", in: " 5\r\nhello\r\n", err: `bad chunk size " 5"`},
		{name: "size too large", in: "4000000000000000\r\n", err: `bad chunk size "4000000000000000"`},
		{name: "largest size, cut short", in: "3fffffffffffffff\r\nab", out: "3fffffffffffffff\r\nab", err: "EOF"},
		{name: "17 hex digits", in: "00000000000000005\r\nhello\r\n0\r\n\r\n", netHTTP: "http chunk length too large"},
		{name: "size line too long", in: "5;" + long[:4093] + "\r\nhello\r\n0\r\n\r\n", err: "malformed line"},
		{name: "size line over the buffer", in: "5;" + strings.Repeat("x", fastHeadMax) + "\r\n", err: bufio.ErrBufferFull.Error()},
		{name: "bare LF after the size", in: "5\nhello\r\n0\r\n\r\n", err: "malformed line"},
		{name: "CR in the size line", in: "5;a\rb\r\nhello\r\n0\r\n\r\n", err: "malformed line"},
		{name: "CR before the CRLF", in: "5\r\r\nhello\r\n0\r\n\r\n", err: "malformed line"},
		{name: "data longer than its size", in: "5\r\nhello!\r\n0\r\n\r\n", out: "5\r\nhello", err: "chunk not followed by CRLF"},
		{name: "bare LF after the data", in: "5\r\nhello\n0\r\n\r\n", out: "5\r\nhello", err: "chunk not followed by CRLF"},
		{name: "bare LF in a trailer", in: "0\r\nX: a\n\r\n", out: "0\r\n", err: "malformed line"},
		{name: "CR in a trailer", in: "0\r\nX: a\rb\r\n\r\n", out: "0\r\n", err: "malformed line"},
		{name: "trailer too long", in: "0\r\nX: " + long + "\r\n\r\n", out: "0\r\n", err: "malformed line"},

		{name: "empty", in: "", err: "EOF"},
		{name: "cut in the size line", in: "5", err: "EOF"},
		{name: "cut in the data", in: "5\r\nhel", out: "5\r\nhel", err: "EOF"},
		{name: "cut before the CRLF", in: "5\r\nhello", out: "5\r\nhello", err: "chunk not followed by CRLF"},
		{name: "cut after a chunk", in: "5\r\nhello\r\n", out: "5\r\nhello\r\n", err: "EOF"},
		{name: "cut after the last chunk", in: "5\r\nhello\r\n0\r\n", out: "5\r\nhello\r\n0\r\n", err: "EOF"},
		{name: "cut in the trailers", in: "0\r\nX: a\r\n", out: "0\r\nX: a\r\n", err: "EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == "" {
				if !strings.HasSuffix(tc.in, tc.rest) {
					t.Fatal("bad case: rest is not the input's end")
				}
				tc.out = strings.TrimSuffix(tc.in, tc.rest)
			}
			// Whole, and a byte per read as from a slow sender.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				src := bufio.NewReaderSize(r, fastHeadMax)
				var out strings.Builder
				err := copyChunked(&out, src)
				if gotErr := errString(err); gotErr != tc.err {
					t.Fatalf("error %q, want %q", gotErr, tc.err)
				}
				if out.String() != tc.out {
					t.Fatalf("copied %q, want %q", out.String(), tc.out)
				}
				if rest, _ := io.ReadAll(src); err == nil && string(rest) != tc.rest {
					t.Fatalf("left %q, want %q", rest, tc.rest)
				}
			}
			if tc.err != "" {
				return
			}
			rest, err := netHTTPChunked(tc.in)
			switch {
			case tc.netHTTP != "" && (err == nil || !strings.Contains(err.Error(), tc.netHTTP)):
				t.Errorf("net/http: %v, want it to refuse with %q", err, tc.netHTTP)
			case tc.netHTTP == "" && err != nil:
				t.Errorf("net/http refuses what the fast path copies: %v", err)
			case tc.netHTTP == "" && rest != tc.rest:
				t.Errorf("net/http leaves %q, the fast path %q", rest, tc.rest)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// netHTTPChunked reads a chunked request body with net/http and returns
// what follows it.
func netHTTPChunked(body string) (rest string, err error) {
	br := bufio.NewReader(strings.NewReader("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
	r, err := http.ReadRequest(br)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return "", err
	}
	b, _ := io.ReadAll(br)
	return string(b), nil
}
