package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sample() *Exchange {
	return &Exchange{
		Time:     time.Unix(1765000000, 123456789),
		Duration: 42 * time.Millisecond,
		Route:    Route{Owner: "c0ffee", Marker: "X-Dev:alice"},
		Request: Request{
			Method: "POST", Target: "/api/orders?id=7", Proto: "HTTP/1.1",
			Header: http.Header{"Host": {"orders"}, "Content-Type": {"application/json"}, "X-Multi": {"a", "b"}},
			Body:   CapBody([]byte(`{"item":"tea"}`), 14),
		},
		Response: Response{
			Status: 201,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   CapBody([]byte(`{"id":7}`), 8),
		},
		Dropped: 3,
	}
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), BodyCap+10)
	cases := map[string]*Exchange{
		"json":  sample(),
		"empty": {Time: time.Unix(0, 0), Request: Request{Method: "GET", Target: "/", Proto: "HTTP/2.0"}, Response: Response{Status: 204}},
		"truncated": func() *Exchange {
			ex := sample()
			ex.Response.Body = CapBody(big, int64(len(big))+5)
			return ex
		}(),
	}
	for name, ex := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			for range 2 {
				if err := w.Write(ex); err != nil {
					t.Fatal(err)
				}
			}
			r := NewReader(&buf)
			for i := range 2 {
				got, err := r.Read()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !got.Time.Equal(ex.Time) {
					t.Fatalf("time %v, sent %v", got.Time, ex.Time)
				}
				got.Time = ex.Time
				norm(got)
				want := *ex
				norm(&want)
				if !reflect.DeepEqual(got, &want) {
					t.Fatalf("got %+v\nsent %+v", got, &want)
				}
			}
			if _, err := r.Read(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last frame: %v, want io.EOF", err)
			}
		})
	}
}

// norm makes nil and empty headers and bodies alike, as the wire does.
func norm(ex *Exchange) {
	for _, h := range []*http.Header{&ex.Request.Header, &ex.Response.Header} {
		if len(*h) == 0 {
			*h = http.Header{}
		}
	}
	for _, b := range []*Body{&ex.Request.Body, &ex.Response.Body} {
		if len(b.Data) == 0 {
			b.Data = nil
		}
	}
}

func TestCapBody(t *testing.T) {
	b := CapBody(make([]byte, BodyCap+1), BodyCap+1)
	if len(b.Data) != BodyCap || !b.Truncated || b.Size != BodyCap+1 {
		t.Fatalf("a body one byte past the cap: %d bytes kept, truncated %v, size %d", len(b.Data), b.Truncated, b.Size)
	}
	if b := CapBody([]byte("abc"), 3); b.Truncated {
		t.Fatal("a whole body marked truncated")
	}
}

// What a sender cannot put on the wire, Marshal refuses, with the reason.
func TestMarshalRefuses(t *testing.T) {
	cases := map[string]func(*Exchange){
		"long target":     func(ex *Exchange) { ex.Request.Target = "/" + strings.Repeat("a", MaxTarget) },
		"bad method":      func(ex *Exchange) { ex.Request.Method = "GE T" },
		"bad proto":       func(ex *Exchange) { ex.Request.Proto = "SPDY/3" },
		"target space":    func(ex *Exchange) { ex.Request.Target = "/a b" },
		"header newline":  func(ex *Exchange) { ex.Request.Header.Set("X-A", "a\r\nb: c") },
		"header name":     func(ex *Exchange) { ex.Response.Header["X A"] = []string{"1"} },
		"status":          func(ex *Exchange) { ex.Response.Status = 1000 },
		"body past cap":   func(ex *Exchange) { ex.Request.Body = Body{Data: make([]byte, BodyCap+1), Size: BodyCap + 1} },
		"size below data": func(ex *Exchange) { ex.Request.Body.Size = 1 },
		"flag wrong":      func(ex *Exchange) { ex.Request.Body.Truncated = true },
		"many headers": func(ex *Exchange) {
			for i := range MaxHeaderLines + 1 {
				ex.Request.Header.Add("X-N", string(rune('a'+i%26)))
			}
		},
		"header bytes": func(ex *Exchange) { ex.Request.Header.Set("X-Big", strings.Repeat("v", MaxHeaderBytes)) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			ex := sample()
			mutate(ex)
			if _, err := Marshal(ex); !errors.Is(err, ErrFormat) {
				t.Fatalf("Marshal: %v, want ErrFormat", err)
			}
		})
	}
}

// A peer that claims more than the bounds allow is refused before the
// reader allocates for the claim.
func TestReaderRefusesHostileFrames(t *testing.T) {
	frame := func(p []byte) []byte {
		b := []byte(StreamMagic)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		return append(b, p...)
	}
	good, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	hugeLen := []byte(StreamMagic)
	hugeLen = binary.BigEndian.AppendUint32(hugeLen, MaxFrame+1)
	// A header count far past the bound, right where the request's
	// headers start.
	var lying []byte
	lying = binary.AppendVarint(lying, 0)
	lying = binary.AppendUvarint(lying, 0)
	lying = binary.AppendUvarint(lying, 0)
	for _, s := range []string{"", "", "GET", "/", "HTTP/1.1"} {
		lying = binary.AppendUvarint(lying, uint64(len(s)))
		lying = append(lying, s...)
	}
	lying = binary.AppendUvarint(lying, 1<<40)

	cases := map[string][]byte{
		"not tap":         []byte("GET / HTTP/1.1\r\n\r\n"),
		"frame too large": hugeLen,
		"short frame":     frame(good)[:len(StreamMagic)+4+len(good)/2],
		"trailing bytes":  frame(append(append([]byte{}, good...), 0)),
		"header count":    frame(lying),
		"half magic":      []byte(StreamMagic[:3]),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(in)).Read()
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Read: %v, want ErrFormat", err)
			}
		})
	}
}

func TestIsStream(t *testing.T) {
	for _, s := range []string{"GET ", "PRI * HTTP/2.0", "\x16\x03\x01", ""} {
		if IsStream([]byte(s)) {
			t.Errorf("%q taken for a tap stream", s)
		}
	}
	if !IsStream([]byte(StreamMagic)) {
		t.Error("the magic itself not recognized")
	}
}

// Frames appended one after the other to one buffer read back as a
// stream; one the format refuses leaves the buffer as it was.
func TestAppendFrameBatches(t *testing.T) {
	buf := []byte(StreamMagic)
	for range 3 {
		var err error
		if buf, err = AppendFrame(buf, sample()); err != nil {
			t.Fatal(err)
		}
	}
	before := len(buf)
	bad := sample()
	bad.Response.Status = 42
	if got, err := AppendFrame(buf, bad); err == nil || len(got) != before {
		t.Fatalf("a refused exchange: %v, the buffer went from %d to %d bytes", err, before, len(got))
	}
	r := NewReader(bytes.NewReader(buf))
	for i := range 3 {
		ex, err := r.Read()
		if err != nil || ex.Request.Target != sample().Request.Target {
			t.Fatalf("frame %d: %+v, %v", i, ex, err)
		}
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the frames: %v, want EOF", err)
	}
}
