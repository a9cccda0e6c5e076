package inspect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Tap is the developer's end of intercepted HTTP/1.x on the built-in
// tunnel: each connection's bytes go to the app at local as they came, and
// a copy of them goes, off the path, to a recorder that reads the
// exchanges out of the byte stream for the store. The app sees exactly
// what the caller sent; a recorder that falls behind stops recording that
// connection, never slows it down. HTTP/2 connections (gRPC, h2c ports)
// are served by the forwarder, which records them as it proxies.
type Tap struct {
	local, route string
	store        *Store // nil: record nothing
	h2           *http.Server
	h2ln         *httpwire.ConnListener
	// wiretap takes the sidecar's streams of copies (--wiretap); nil:
	// such a stream is closed unread.
	wiretap atomic.Pointer[Wiretap]
}

// SetWiretap makes the tap hand streams of wiretap copies (they start
// with tap.StreamMagic) to w.
func (t *Tap) SetWiretap(w *Wiretap) { t.wiretap.Store(w) }

// NewTap returns the tap for connections to local, recording into store
// (nil: none) under route; forwarder serves HTTP/2 connections.
func NewTap(local, route string, store *Store, h2 *http.Server) *Tap {
	t := &Tap{local: local, route: route, store: store, h2: h2, h2ln: httpwire.NewConnListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})}
	go func() { _ = h2.Serve(t.h2ln) }()
	return t
}

// Close stops serving HTTP/2 connections.
func (t *Tap) Close() error { return t.h2.Close() }

// h2Preface starts every HTTP/2 connection with prior knowledge; no
// HTTP/1 method is "PRI".
const h2Preface = "PRI"

// ServeConn serves one intercepted connection until either end closes it.
func (t *Tap) ServeConn(c net.Conn) {
	br := bufio.NewReaderSize(c, 4<<10)
	if p, err := br.Peek(1); err == nil && p[0] == tap.StreamMagic[0] {
		// A stream of a wiretap's copies: never for the local port. Its
		// first byte starts no HTTP request, so nothing else waits here
		// for more bytes than a caller sends.
		t.serveCopies(c, br)
		return
	}
	if p, err := br.Peek(len(h2Preface)); err != nil {
		c.Close()
		return
	} else if string(p) == h2Preface {
		t.h2ln.Push(tunnel.WithReader(c, br))
		return
	}
	app, err := net.DialTimeout("tcp", t.local, 5*time.Second)
	if err != nil {
		t.refuse(c, br, err)
		return
	}
	if t.store == nil {
		tunnel.Pipe(tunnel.WithReader(c, br), app)
		return
	}
	rec := newRecording(t)
	pipe(c, br, app, rec.up, rec.down)
}

// serveCopies hands a stream of copies to the wiretap, or closes it when
// there is none.
func (t *Tap) serveCopies(c net.Conn, br *bufio.Reader) {
	defer c.Close()
	w := t.wiretap.Load()
	if w == nil {
		return
	}
	magic, err := br.Peek(len(tap.StreamMagic))
	if err != nil || !tap.IsStream(magic) {
		return
	}
	_ = w.ServeStream(context.Background(), br) // a broken stream ends; the sidecar opens another
}

// refuse answers the first request with a 502 that says nothing listens
// on the local port, and records it.
func (t *Tap) refuse(c net.Conn, br *bufio.Reader, dialErr error) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	msg := failureMessage(t.local, t.route, &net.OpError{Op: "dial", Net: "tcp", Err: dialErr})
	header := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Content-Type-Options": {"nosniff"},
		"Content-Length": {strconv.Itoa(len(msg))}, "Connection": {"close"}}
	if t.store != nil {
		t.store.add(Exchange{Time: time.Now(), Method: req.Method, Path: req.RequestURI, Proto: req.Proto, Host: req.Host,
			Route: t.route, RequestHeader: req.Header, Status: http.StatusBadGateway, ResponseHeader: header,
			ResponseBody: Body{Data: []byte(msg)}, ResponseSize: int64(len(msg)), Done: true, Error: strings.TrimSpace(msg)})
	}
	var b strings.Builder
	b.WriteString("HTTP/1.1 502 Bad Gateway\r\n")
	_ = header.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(msg)
	_, _ = io.WriteString(c, b.String())
}

// pipe copies both ways between the caller's connection (read through br)
// and the app's, handing each chunk to its direction's tee after it is
// written on, then closes both.
func pipe(c net.Conn, br *bufio.Reader, app net.Conn, up, down *feed) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyTee(app, br, up)
		if !tunnel.CloseWrite(app) {
			app.Close()
		}
	}()
	copyTee(c, app, down)
	if !tunnel.CloseWrite(c) {
		c.Close()
	}
	wg.Wait()
	c.Close()
	app.Close()
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyTee(dst io.Writer, src io.Reader, tee *feed) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	defer tee.end()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			tee.push(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// feed carries a copy of one direction's bytes to its parser. It never
// blocks the copy: past feedLimit bytes waiting, it drops the rest and the
// parser learns the recording stopped.
type feed struct {
	mu      sync.Mutex
	cond    sync.Cond
	chunks  []*[]byte
	waiting int
	ended   bool
	dropped bool
	held    *[]byte // the chunk being read, cur its unread part
	cur     []byte
}

const feedLimit = 4 << 20

func newFeed() *feed {
	f := &feed{}
	f.cond.L = &f.mu
	return f
}

func (f *feed) push(p []byte) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropped || f.ended {
		return
	}
	if f.waiting+len(p) > feedLimit {
		for _, c := range f.chunks {
			chunkBufs.Put(c)
		}
		f.dropped, f.chunks = true, nil
		f.cond.Signal()
		return
	}
	chunk := chunkBufs.Get().(*[]byte)
	*chunk = append((*chunk)[:0], p...)
	f.chunks = append(f.chunks, chunk)
	f.waiting += len(p)
	f.cond.Signal()
}

// chunkBufs lends the feeds their copies: a chunk goes back once its
// parser has read it.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func (f *feed) end() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.ended = true
	f.cond.Signal()
	f.mu.Unlock()
}

// errFellBehind ends a parser whose feed dropped bytes.
var errFellBehind = errors.New("the inspector fell behind this connection and stopped recording it")

func (f *feed) Read(p []byte) (int, error) {
	if len(f.cur) == 0 {
		f.mu.Lock()
		for len(f.chunks) == 0 && !f.ended && !f.dropped {
			f.cond.Wait()
		}
		switch {
		case f.dropped:
			f.mu.Unlock()
			return 0, errFellBehind
		case len(f.chunks) == 0:
			f.mu.Unlock()
			return 0, io.EOF
		}
		if f.held != nil {
			chunkBufs.Put(f.held)
		}
		f.held = f.chunks[0]
		f.cur = *f.held
		f.chunks[0] = nil
		f.chunks = f.chunks[1:]
		f.waiting -= len(f.cur)
		f.mu.Unlock()
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// recording reads one connection's exchanges out of its two feeds.
type recording struct {
	t        *Tap
	up, down *feed
	pending  chan *exchangeInFlight
}

type exchangeInFlight struct {
	id    uint64
	req   *http.Request
	start time.Time
	body  *capture
}

func newRecording(t *Tap) *recording {
	r := &recording{t: t, up: newFeed(), down: newFeed(), pending: make(chan *exchangeInFlight, 64)}
	go r.requests()
	go r.responses()
	return r
}

// requests parses what the caller sent, one request after another.
func (r *recording) requests() {
	defer close(r.pending)
	br := bufio.NewReaderSize(r.up, 4<<10)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			drain(r.up)
			return
		}
		now := time.Now()
		x := &exchangeInFlight{req: req, start: now, body: newCaptureFor(req.ContentLength)}
		x.id = r.t.store.add(Exchange{Time: now, Method: req.Method, Path: req.RequestURI, Proto: req.Proto, Host: req.Host,
			Route: r.t.route, RequestHeader: req.Header})
		r.pending <- x
		_, err = io.Copy(io.Discard, captureReader{ReadCloser: req.Body, c: x.body})
		body, n := x.body.take()
		r.t.store.update(x.id, func(ex *Exchange) { ex.RequestBody, ex.RequestSize = body, n })
		if err != nil || upgrade(req.Header) {
			drain(r.up) // an upgraded connection's bytes are not HTTP
			return
		}
	}
}

// responses pairs each request with the app's answer, in order.
func (r *recording) responses() {
	br := bufio.NewReaderSize(r.down, 4<<10)
	for x := range r.pending {
		resp, err := readFinalResponse(br, x.req)
		if err != nil {
			r.finish(x, nil, 0, fmt.Sprintf("no response recorded: %v", recordErr(err)))
			break
		}
		status, header := resp.StatusCode, resp.Header
		r.t.store.update(x.id, func(ex *Exchange) { ex.Status, ex.ResponseHeader = status, header })
		if status == http.StatusSwitchingProtocols {
			resp.Body.Close()
			n, _ := io.Copy(io.Discard, br)
			r.finish(x, resp, n, "")
			break
		}
		c := newCaptureFor(resp.ContentLength)
		_, err = io.Copy(io.Discard, captureReader{ReadCloser: resp.Body, c: c})
		resp.Body.Close()
		body, n := c.take()
		msg := ""
		if err != nil {
			msg = fmt.Sprintf("the app's response broke off after %d bytes: %v", n, recordErr(err))
		}
		r.t.store.update(x.id, func(ex *Exchange) { ex.ResponseBody = body })
		r.finish(x, resp, n, msg)
		if err != nil {
			break
		}
	}
	for x := range r.pending {
		r.finish(x, nil, 0, "no response recorded: the connection ended")
	}
	drain(r.down)
}

func (r *recording) finish(x *exchangeInFlight, resp *http.Response, n int64, msg string) {
	var trailer http.Header
	if resp != nil && len(resp.Trailer) > 0 {
		trailer = resp.Trailer
	}
	d := time.Since(x.start)
	r.t.store.update(x.id, func(ex *Exchange) {
		ex.ResponseSize, ex.ResponseTrailer = n, trailer
		ex.Duration, ex.Error, ex.Done = d, msg, true
	})
}

// readFinalResponse skips 1xx answers other than 101.
func readFinalResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		resp.Body.Close() // an interim answer has no body
	}
}

func upgrade(h http.Header) bool {
	for _, v := range h.Values("Connection") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return true
			}
		}
	}
	return false
}

func recordErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the connection closed")
	}
	return err
}

func drain(f *feed) { _, _ = io.Copy(io.Discard, f) }
