package tap

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A raw exchange reads back as the Exchange net/http parses its heads to:
// names canonical, each value in order, Transfer-Encoding left out, the
// trailers among the answer's headers, credentials redacted by name.
func TestAppendRawFrameReadsAsTheParsedExchange(t *testing.T) {
	reqHead := "POST /orders?n=1 HTTP/1.1\r\nHost: shop\r\nx-dev: alice\r\nAUTHORIZATION: Bearer s\r\nX-Api-Key: k\r\nAccept: a\r\naccept: b\r\nTransfer-Encoding: chunked\r\nX-Empty:\r\n\r\n"
	respHead := "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nset-cookie: s=1\r\nTrailer: X-Sum\r\n\r\n"
	raw := &RawExchange{Time: time.Unix(1700000000, 5), Duration: time.Millisecond, Route: Route{Owner: "bob", Marker: "X-Dev:alice (wiretap)"}, Dropped: 3,
		RequestHead: []byte(reqHead), ResponseHead: []byte(respHead), Trailers: []byte("X-Sum: 42\r\n"),
		RequestBody: Body{Data: []byte("hello"), Size: 5}, ResponseBody: Body{Data: []byte("wor"), Size: 10, Truncated: true}}
	frame, err := AppendRawFrame([]byte("keep"), raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(frame[:4]) != "keep" {
		t.Fatalf("the frame did not go after what dst held: %q", frame[:8])
	}
	got, err := NewReader(bytes.NewReader(append([]byte(StreamMagic), frame[4:]...))).Read()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(reqHead)))
	if err != nil {
		t.Fatal(err)
	}
	wantReq := req.Header.Clone()
	wantReq.Set("Host", req.Host)
	Redact(wantReq)
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(respHead)), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantResp := resp.Header.Clone()
	wantResp.Set("X-Sum", "42")
	Redact(wantResp)
	want := &Exchange{Time: raw.Time, Duration: raw.Duration, Route: raw.Route, Dropped: 3,
		Request:  Request{Method: "POST", Target: "/orders?n=1", Proto: "HTTP/1.1", Header: wantReq, Body: raw.RequestBody},
		Response: Response{Status: 201, Header: wantResp, Body: raw.ResponseBody}}
	norm(got)
	norm(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
}

// What the format or its bounds refuse is refused, and dst is left as it
// was; a batch with room takes a frame without allocating.
func TestAppendRawFrameRefuses(t *testing.T) {
	good := func() *RawExchange {
		return &RawExchange{RequestHead: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ResponseHead: []byte("HTTP/1.1 200 OK\r\n\r\n")}
	}
	for name, mutate := range map[string]func(*RawExchange){
		"a bad method":         func(r *RawExchange) { r.RequestHead = []byte("G(T / HTTP/1.1\r\n\r\n") },
		"HTTP/2 in a raw head": func(r *RawExchange) { r.RequestHead = []byte("GET / HTTP/2.0\r\n\r\n") },
		"a bad status line":    func(r *RawExchange) { r.ResponseHead = []byte("HTTP/1.1 2x0 OK\r\n\r\n") },
		"a header name":        func(r *RawExchange) { r.RequestHead = []byte("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n") },
		"a line without colon": func(r *RawExchange) { r.ResponseHead = []byte("HTTP/1.1 200 OK\r\nnocolon\r\n\r\n") },
		"a control byte":       func(r *RawExchange) { r.Trailers = []byte("X-Sum: 4\x012\r\n") },
		"a body past the cap":  func(r *RawExchange) { r.ResponseBody = Body{Data: make([]byte, BodyCap+1), Size: BodyCap + 1} },
		"a long owner":         func(r *RawExchange) { r.Route.Owner = strings.Repeat("o", MaxOwner+1) },
	} {
		r := good()
		mutate(r)
		if got, err := AppendRawFrame([]byte("x"), r); err == nil || string(got) != "x" {
			t.Errorf("%s: %v, dst %q", name, err, got)
		}
	}
	batch := make([]byte, 0, 4096)
	r := good()
	r.RequestHead = []byte("GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s\r\nX-Auth-Token: t\r\n\r\n")
	if allocs := testing.AllocsPerRun(100, func() { batch, _ = AppendRawFrame(batch[:0], r) }); allocs != 0 {
		t.Errorf("%.0f allocations a frame into a batch with room", allocs)
	}
}

// Whatever heads a sidecar relays, AppendRawFrame either refuses them or
// writes a frame every reader takes, holding no credential's value.
func FuzzAppendRawFrame(f *testing.F) {
	f.Add("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\n\r\n", "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", "X-Sum: 1\r\n")
	f.Add("POST /a?b HTTP/1.0\r\nx-api-key:  k \r\n\r\n", "HTTP/1.0 404\r\n\r\n", "")
	f.Add("GET / HTTP/1.1\r\n:\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n", "Set-Cookie: s\r\n")
	f.Fuzz(func(t *testing.T, req, resp, trailers string) {
		frame, err := AppendRawFrame(nil, &RawExchange{RequestHead: []byte(req), ResponseHead: []byte(resp), Trailers: []byte(trailers)})
		if err != nil {
			if len(frame) != 0 {
				t.Fatalf("refused (%v) but wrote %d bytes", err, len(frame))
			}
			return
		}
		ex, err := NewReader(bytes.NewReader(append([]byte(StreamMagic), frame...))).Read()
		if err != nil {
			t.Fatalf("a frame the reader refuses: %v", err)
		}
		for _, h := range []http.Header{ex.Request.Header, ex.Response.Header} {
			for name, vs := range h {
				if SecretHeader(name) && !AllRedacted(vs) {
					t.Fatalf("credential %s copied: %q", name, vs)
				}
			}
		}
	})
}
