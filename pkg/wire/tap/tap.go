// Package tap is the wire format of a wiretap's copies: the sidecar sends
// the developer, for each request a wiretap route matched, the request and
// the answer the cluster gave it, once that answer is complete. Both ends
// link this package; the sidecar writes, the CLI reads.
//
// A tap stream starts with StreamMagic, then carries frames: a 4-byte
// big-endian length and that many bytes of one encoded Exchange. Every
// length in a frame is bounded (see the Max constants) before anything is
// allocated for it, so a hostile peer can make a reader hold at most
// MaxFrame bytes at a time.
package tap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/net/http/httpguts"
)

// StreamMagic opens every tap stream. Its first byte is NUL, which starts
// no HTTP/1 request, no HTTP/2 preface and no TLS record, so a developer's
// end tells a tap stream from an intercepted connection by its first bytes;
// the last byte is the format's version.
const StreamMagic = "\x00ktap\x01"

// Bounds of one exchange. A sidecar caps bodies at BodyCap when it copies
// them; the rest are the most any field may claim on the wire.
const (
	// BodyCap is how much of each body a copy carries; the full length
	// travels beside it.
	BodyCap = 1 << 20
	// MaxHeaderBytes bounds one header set: names, values and 4 bytes a
	// line for framing, as net/http counts its DefaultMaxHeaderBytes.
	MaxHeaderBytes = 256 << 10
	// MaxHeaderLines bounds the lines (name, value pairs) of a header set.
	MaxHeaderLines = 1024
	// MaxMethod, MaxTarget, MaxProto, MaxOwner and MaxMarker bound the
	// request line's parts and the route's names.
	MaxMethod = 64
	MaxTarget = 16 << 10
	MaxProto  = 16
	MaxOwner  = 256
	MaxMarker = 4 << 10
	// MaxFrame bounds one encoded exchange.
	MaxFrame = 2*BodyCap + 2*MaxHeaderBytes + MaxMethod + MaxTarget + MaxProto + MaxOwner + MaxMarker + 256
)

// Body is a copied body: at most BodyCap bytes of it, and its full length.
type Body struct {
	Data []byte
	// Size is the whole body's length in bytes.
	Size int64
	// Truncated says Data is only the start of the body (Size > len(Data)).
	Truncated bool
}

// CapBody is the copy of a body whose first bytes are data and whose full
// length is size: data cut to BodyCap.
func CapBody(data []byte, size int64) Body {
	if len(data) > BodyCap {
		data = data[:BodyCap]
	}
	size = max(size, int64(len(data)))
	return Body{Data: data, Size: size, Truncated: size > int64(len(data))}
}

// Request is the request a wiretap route matched, as the caller sent it.
type Request struct {
	Method string
	// Target is the request target as sent: path and query.
	Target string
	// Proto is HTTP/1.1 or HTTP/2.0.
	Proto string
	// Header holds the request's headers, Host among them.
	Header http.Header
	Body   Body
}

// Response is the cluster's answer to it.
type Response struct {
	Status int
	Header http.Header
	Body   Body
}

// Route names the wiretap route a request matched.
type Route struct {
	// Owner is the route's owner tag; Marker what it matches (e.g.
	// "X-Dev:alice"), as route.Route.String prints it.
	Owner, Marker string
}

// Exchange is one copy: a request, the cluster's answer, how long that
// took, and which route matched.
type Exchange struct {
	// Time is when the request arrived at the sidecar.
	Time time.Time
	// Duration runs from the request's arrival to the answer's last byte.
	Duration time.Duration
	Route    Route
	Request  Request
	Response Response
	// Dropped counts the copies for this developer the sidecar dropped
	// (its queue was full) since the one before this.
	Dropped uint64
}

// ErrFormat is a frame that breaks the format or its bounds.
var ErrFormat = errors.New("tap: malformed exchange")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// Marshal encodes ex as one frame's payload. It refuses what a reader
// would refuse: a field past its bound, a header that is not valid HTTP.
func Marshal(ex *Exchange) ([]byte, error) {
	return appendExchange(nil, ex)
}

// AppendFrame appends ex to dst as one frame, its length and its payload,
// refusing what Marshal refuses (dst is then returned as it was). A
// writer that batches frames, or reuses its buffer, copies each once.
func AppendFrame(dst []byte, ex *Exchange) ([]byte, error) {
	start := len(dst)
	b, err := appendExchange(append(dst, 0, 0, 0, 0), ex)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

func appendExchange(b []byte, ex *Exchange) ([]byte, error) {
	b = binary.AppendVarint(b, ex.Time.UnixNano())
	if ex.Duration < 0 {
		return nil, formatErr("negative duration %v", ex.Duration)
	}
	b = binary.AppendUvarint(b, uint64(ex.Duration))
	b = binary.AppendUvarint(b, ex.Dropped)
	var err error
	for _, f := range []struct {
		s     string
		limit int
		what  string
	}{
		{ex.Route.Owner, MaxOwner, "route owner"},
		{ex.Route.Marker, MaxMarker, "route marker"},
		{ex.Request.Method, MaxMethod, "method"},
		{ex.Request.Target, MaxTarget, "request target"},
		{ex.Request.Proto, MaxProto, "protocol"},
	} {
		if b, err = appendString(b, f.s, f.limit, f.what); err != nil {
			return nil, err
		}
	}
	if err := checkRequestLine(&ex.Request); err != nil {
		return nil, err
	}
	if b, err = appendHeader(b, ex.Request.Header); err != nil {
		return nil, err
	}
	if b, err = appendBody(b, ex.Request.Body); err != nil {
		return nil, err
	}
	if ex.Response.Status < 100 || ex.Response.Status > 999 {
		return nil, formatErr("status %d", ex.Response.Status)
	}
	b = binary.AppendUvarint(b, uint64(ex.Response.Status))
	if b, err = appendHeader(b, ex.Response.Header); err != nil {
		return nil, err
	}
	if b, err = appendBody(b, ex.Response.Body); err != nil {
		return nil, err
	}
	return b, nil
}

func appendString(b []byte, s string, limit int, what string) ([]byte, error) {
	if len(s) > limit {
		return nil, formatErr("%s of %d bytes, past %d", what, len(s), limit)
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...), nil
}

func appendHeader(b []byte, h http.Header) ([]byte, error) {
	lines, size := 0, 0
	for name, vs := range h {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, formatErr("header name %q", name)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, formatErr("value of header %s", name)
			}
			lines++
			size += len(name) + len(v) + 4
		}
	}
	if lines > MaxHeaderLines || size > MaxHeaderBytes {
		return nil, formatErr("%d header lines of %d bytes, past %d lines or %d bytes", lines, size, MaxHeaderLines, MaxHeaderBytes)
	}
	b = binary.AppendUvarint(b, uint64(lines))
	for name, vs := range h {
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(name)))
			b = append(b, name...)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return b, nil
}

func appendBody(b []byte, body Body) ([]byte, error) {
	if err := checkBody(body); err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(body.Size))
	trunc := byte(0)
	if body.Truncated {
		trunc = 1
	}
	b = append(b, trunc)
	b = binary.AppendUvarint(b, uint64(len(body.Data)))
	return append(b, body.Data...), nil
}

func checkBody(body Body) error {
	switch {
	case len(body.Data) > BodyCap:
		return formatErr("body copy of %d bytes, past %d", len(body.Data), BodyCap)
	case body.Size < int64(len(body.Data)):
		return formatErr("body of %d bytes with %d copied", body.Size, len(body.Data))
	case body.Truncated != (body.Size > int64(len(body.Data))):
		return formatErr("body of %d bytes with %d copied, truncated %v", body.Size, len(body.Data), body.Truncated)
	}
	return nil
}

func checkRequestLine(r *Request) error {
	switch {
	case r.Method == "" || !httpguts.ValidHeaderFieldName(r.Method): // a method is a token
		return formatErr("method %q", r.Method)
	case r.Target == "" || !printableASCII(r.Target):
		return formatErr("request target %q", r.Target)
	case r.Proto != "HTTP/1.0" && r.Proto != "HTTP/1.1" && r.Proto != "HTTP/2.0":
		return formatErr("protocol %q", r.Proto)
	}
	return nil
}

// printableASCII is what a request target may hold on the wire.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Unmarshal decodes one frame's payload. Everything it returns passed the
// checks Marshal makes; Data slices are fresh copies.
func Unmarshal(p []byte) (*Exchange, error) {
	d := decoder{p: p}
	ex := &Exchange{}
	nanos := d.varint("time")
	ex.Time = time.Unix(0, nanos)
	dur := d.uvarint("duration")
	if dur > 1<<62 {
		d.fail(formatErr("duration %d", dur))
	}
	ex.Duration = time.Duration(dur)
	ex.Dropped = d.uvarint("dropped count")
	ex.Route.Owner = d.str(MaxOwner, "route owner")
	ex.Route.Marker = d.str(MaxMarker, "route marker")
	ex.Request.Method = d.str(MaxMethod, "method")
	ex.Request.Target = d.str(MaxTarget, "request target")
	ex.Request.Proto = d.str(MaxProto, "protocol")
	if d.err == nil {
		d.fail(checkRequestLine(&ex.Request))
	}
	ex.Request.Header = d.header()
	ex.Request.Body = d.body()
	status := d.uvarint("status")
	if d.err == nil && (status < 100 || status > 999) {
		d.fail(formatErr("status %d", status))
	}
	ex.Response.Status = int(status)
	ex.Response.Header = d.header()
	ex.Response.Body = d.body()
	if d.err == nil && len(d.p) != 0 {
		d.fail(formatErr("%d bytes after the exchange", len(d.p)))
	}
	if d.err != nil {
		return nil, d.err
	}
	return ex, nil
}

// decoder reads fields off a payload; after the first error it reads
// nothing and keeps that error.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil && err != nil {
		d.err = err
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail(formatErr("%s: bad varint", what))
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail(formatErr("%s: bad varint", what))
		return 0
	}
	d.p = d.p[n:]
	return v
}

// bytes reads a length and that many bytes, the length bounded by limit
// and by what is left.
func (d *decoder) bytes(limit int, what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.p)) {
		d.fail(formatErr("%s of %d bytes, past %d or the %d left", what, n, limit, len(d.p)))
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *decoder) str(limit int, what string) string { return string(d.bytes(limit, what)) }

func (d *decoder) header() http.Header {
	lines := d.uvarint("header lines")
	if d.err != nil {
		return nil
	}
	if lines > MaxHeaderLines {
		d.fail(formatErr("%d header lines, past %d", lines, MaxHeaderLines))
		return nil
	}
	h := make(http.Header, min(lines, 64))
	size := 0
	for range lines {
		name := d.str(MaxHeaderBytes, "header name")
		value := d.str(MaxHeaderBytes, "header value")
		if d.err != nil {
			return nil
		}
		size += len(name) + len(value) + 4
		switch {
		case size > MaxHeaderBytes:
			d.fail(formatErr("headers past %d bytes", MaxHeaderBytes))
		case !httpguts.ValidHeaderFieldName(name):
			d.fail(formatErr("header name %q", name))
		case !httpguts.ValidHeaderFieldValue(value):
			d.fail(formatErr("value of header %s", name))
		}
		if d.err != nil {
			return nil
		}
		// As sent: the sender's http.Header already holds canonical names
		// where net/http made them so.
		h[name] = append(h[name], value)
	}
	return h
}

func (d *decoder) body() Body {
	size := d.uvarint("body size")
	if d.err != nil {
		return Body{}
	}
	if size > 1<<62 {
		d.fail(formatErr("body size %d", size))
		return Body{}
	}
	if len(d.p) == 0 {
		d.fail(formatErr("body: truncated flag missing"))
		return Body{}
	}
	trunc := d.p[0]
	d.p = d.p[1:]
	if trunc > 1 {
		d.fail(formatErr("body: truncated flag %d", trunc))
		return Body{}
	}
	data := d.bytes(BodyCap, "body copy")
	if d.err != nil {
		return Body{}
	}
	b := Body{Size: int64(size), Truncated: trunc == 1}
	if len(data) > 0 {
		b.Data = bytes.Clone(data)
	}
	d.fail(checkBody(b))
	return b
}

// Writer writes a tap stream: the magic once, then one frame per Write.
// It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	started bool
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends ex as one frame (after the stream's magic, the first time).
func (w *Writer) Write(ex *Exchange) error {
	var buf []byte
	if !w.started {
		buf = append(buf, StreamMagic...)
	}
	buf, err := AppendFrame(buf, ex)
	if err != nil {
		return err
	}
	if _, err := w.w.Write(buf); err != nil {
		return err
	}
	w.started = true
	return nil
}

// Reader reads a tap stream.
type Reader struct {
	r       *bufio.Reader
	started bool
}

// NewReader returns a Reader of r, which must start with StreamMagic.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &Reader{r: br}
}

// IsStream says whether a stream's first bytes are a tap stream's.
func IsStream(first []byte) bool { return string(first) == StreamMagic }

// Read returns the next exchange, io.EOF at the stream's clean end, and an
// error wrapping ErrFormat for anything else that breaks the format.
func (r *Reader) Read() (*Exchange, error) {
	if !r.started {
		magic := make([]byte, len(StreamMagic))
		if _, err := io.ReadFull(r.r, magic); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, formatErr("the stream ended inside its magic")
			}
			return nil, err
		}
		if !IsStream(magic) {
			return nil, formatErr("the stream does not start with the tap magic (%q)", magic)
		}
		r.started = true
	}
	var head [4]byte
	if _, err := io.ReadFull(r.r, head[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, formatErr("the stream ended inside a frame's length")
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > MaxFrame {
		return nil, formatErr("a frame of %d bytes, past %d", n, MaxFrame)
	}
	// Read in pieces: a peer that claims a large frame and sends little
	// makes this hold what it sent, not what it claimed.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r.r, int64(n)); err != nil {
		return nil, formatErr("the stream ended inside a frame (%d of %d bytes)", buf.Len(), n)
	}
	return Unmarshal(buf.Bytes())
}
