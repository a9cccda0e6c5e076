package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// A wiretap route (route.Route.Wiretap) takes no request: the requests it
// matches are served as they would be without it, by the app or an
// intercepting developer, through net/http (the fast path and the relay
// hand them over), and once the answer's last byte has gone to the caller
// the request and the answer are offered to the route's queue, which sends
// them to its developer on a stream of their own (pkg/wire/tap). The
// caller never waits for the queue: a copy that does not fit is dropped
// and counted. HTTP/1.x and HTTP/2 exchanges are copied; upgrades
// (WebSocket), CONNECT and event streams are served and not copied.

// Bounds of a developer's queue of copies, and how long one copy may take
// to write before the stream is given up (the next copy opens another).
const (
	tapQueueLen   = 64
	tapQueueBytes = 16 << 20
	tapWriteWait  = 10 * time.Second
	tapDialWait   = 10 * time.Second
)

// tapRoute is a live wiretap route and its developer's queue of copies.
type tapRoute struct {
	lr      *liveRoute
	ch      chan *tap.Exchange
	bytes   atomic.Int64  // held in ch
	dropped atomic.Uint64 // since the last copy sent
	done    chan struct{}
	stop    sync.Once
}

// addTap installs a wiretap route: no conflict with anything, one queue
// and sender per route. A registration under the same owner key replaces
// the earlier one, as for intercepts.
func (t *Table) addTap(nr *liveRoute) func() {
	tr := &tapRoute{lr: nr, ch: make(chan *tap.Exchange, tapQueueLen), done: make(chan struct{})}
	go tr.run()
	t.mu.Lock()
	var replaced []*tapRoute
	kept := make([]*tapRoute, 0, len(t.taps)+1)
	for _, old := range t.taps {
		if nr.Client != "" && subtle.ConstantTimeCompare([]byte(old.lr.Client), []byte(nr.Client)) == 1 {
			replaced = append(replaced, old)
			continue
		}
		kept = append(kept, old)
	}
	t.taps = append(kept, tr)
	t.nTaps.Store(int32(len(t.taps)))
	t.mu.Unlock()
	for _, old := range replaced {
		old.close()
	}
	return func() { t.removeTap(tr) }
}

func (t *Table) removeTap(tr *tapRoute) {
	t.mu.Lock()
	kept := make([]*tapRoute, 0, len(t.taps))
	for _, x := range t.taps {
		if x != tr {
			kept = append(kept, x)
		}
	}
	t.taps = kept
	t.nTaps.Store(int32(len(t.taps)))
	t.mu.Unlock()
	tr.close()
}

// tapsHead says whether a wiretap route matches a raw request head (which
// then goes to net/http to be copied).
func (t *Table) tapsHead(head []byte) bool {
	if t.nTaps.Load() == 0 {
		return false
	}
	line, fields, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, _ := bytes.Cut(line, []byte(" "))
	target, _, _ := bytes.Cut(line, []byte(" "))
	path := requestPath(target)
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.taps {
		if r.lr.matchesHead(method, path, fields) {
			return true
		}
	}
	return false
}

// tapsFields is tapsHead for an HTTP/2 request's header fields.
func (t *Table) tapsFields(fields []hpack.HeaderField) bool {
	if t.nTaps.Load() == 0 {
		return false
	}
	var method, path string
	for _, f := range fields {
		if !strings.HasPrefix(f.Name, ":") {
			break
		}
		switch f.Name {
		case ":method":
			method = f.Value
		case ":path":
			path = requestPath(f.Value)
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.taps {
		if r.lr.matchesFields(method, path, fields) {
			return true
		}
	}
	return false
}

// matchTaps returns the wiretap routes a request matches.
func (t *Table) matchTaps(method, target string, h http.Header) []*tapRoute {
	if t.nTaps.Load() == 0 {
		return nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*tapRoute
	for _, r := range t.taps {
		if r.lr.matches(method, target, h) {
			out = append(out, r)
		}
	}
	return out
}

// offer queues a copy, or drops and counts it when the queue is full.
func (tr *tapRoute) offer(ex *tap.Exchange) {
	n := copySize(ex)
	if tr.bytes.Add(n) > tapQueueBytes {
		tr.bytes.Add(-n)
		tr.dropped.Add(1)
		return
	}
	select {
	case tr.ch <- ex:
	default:
		tr.bytes.Add(-n)
		tr.dropped.Add(1)
	}
}

func copySize(ex *tap.Exchange) int64 {
	return int64(len(ex.Request.Body.Data)+len(ex.Response.Body.Data)+len(ex.Request.Target)) + 1024
}

func (tr *tapRoute) close() { tr.stop.Do(func() { close(tr.done) }) }

// run sends the queue's copies to the developer, on one stream while it
// lasts.
func (tr *tapRoute) run() {
	var conn net.Conn
	var w *tap.Writer
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		var ex *tap.Exchange
		select {
		case <-tr.done:
			return
		case ex = <-tr.ch:
		}
		tr.bytes.Add(-copySize(ex))
		ex.Dropped = tr.dropped.Swap(0)
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), tapDialWait)
			c, err := tr.lr.dial(ctx)
			cancel()
			if err != nil {
				tr.dropped.Add(1 + ex.Dropped)
				continue
			}
			conn, w = c, tap.NewWriter(c)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(tapWriteWait))
		if err := w.Write(ex); err != nil {
			tr.dropped.Add(1 + ex.Dropped)
			if !errors.Is(err, tap.ErrFormat) { // nothing was written of a copy that breaks the format
				conn.Close()
				conn = nil
			}
		}
	}
}

// tappable says whether a request's exchange can be copied: not an
// upgrade or CONNECT, whose bytes after the head are no HTTP exchange.
func tappable(r *http.Request) bool {
	return r.Method != http.MethodConnect && r.Header.Get("Upgrade") == ""
}

// serveTapped serves r as ServeHTTP would, then offers the exchange to
// the wiretap routes it matched.
func (h *Handler) serveTapped(w http.ResponseWriter, r *http.Request, taps []*tapRoute) {
	start := time.Now()
	req := tap.Request{Method: r.Method, Target: r.RequestURI, Proto: r.Proto, Header: r.Header.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if r.Host != "" {
		req.Header.Set("Host", r.Host)
	}
	var body *tapCapture
	if r.Body != nil && r.Body != http.NoBody {
		body = &tapCapture{}
		r.Body = tapBody{ReadCloser: r.Body, c: body}
	}
	tw := &tapWriter{ResponseWriter: w}
	h.rp.ServeHTTP(tw, r)
	if tw.status == 0 || strings.HasPrefix(tw.header.Get("Content-Type"), "text/event-stream") {
		return // no answer went out, or an event stream: nothing to compare
	}
	req.Body = body.result(r.ContentLength)
	ex := &tap.Exchange{
		Time: start, Duration: time.Since(start), Request: req,
		Response: tap.Response{Status: tw.status, Header: tw.final(), Body: tw.body.whole()},
	}
	for _, tr := range taps {
		c := *ex
		c.Route = tap.Route{Owner: cutTo(tr.lr.Owner, tap.MaxOwner), Marker: cutTo(tr.lr.String(), tap.MaxMarker)}
		tr.offer(&c)
	}
}

// cutTo keeps a name within a bound of the tap's format (a long path
// regex), rather than have the copy refused.
func cutTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// tapCapture keeps the first tap.BodyCap bytes of a body and counts them
// all; the transport may read a request body from its own goroutine.
type tapCapture struct {
	mu   sync.Mutex
	data []byte
	n    int64
	eof  bool
	err  error // how a request body ended
}

func (c *tapCapture) note(p []byte, eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := tap.BodyCap - len(c.data); room > 0 {
		c.data = append(c.data, p[:min(room, len(p))]...)
	}
	c.n += int64(len(p))
	c.eof = c.eof || eof
}

// ended is how the body ended: io.EOF, the error that cut it, or nil
// while it goes on.
func (c *tapCapture) ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *tapCapture) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// result is the copy of the body; declared is its Content-Length (-1:
// unknown). A body not read to its end counts as cut short.
func (c *tapCapture) result(declared int64) tap.Body {
	if c == nil {
		return tap.Body{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := max(c.n, declared)
	if !c.eof && declared < 0 && size == int64(len(c.data)) {
		size++ // more may have followed
	}
	return tap.CapBody(bytes.Clone(c.data), size)
}

// whole is the copy of a body that went through to its end.
func (c *tapCapture) whole() tap.Body {
	c.note(nil, true)
	return c.result(-1)
}

type tapBody struct {
	io.ReadCloser
	c *tapCapture
}

// Read passes the body on; once it has ended it answers as it ended
// (io.EOF, or the error that cut it) itself.
// The transport reads once more after a body's last byte to see that
// nothing follows, and by then net/http's server may have closed the body
// it had seen to its end (it tidies a request's body as the answer's head
// goes out): an error there would make the transport drop the app's
// connection in the middle of its answer.
func (b tapBody) Read(p []byte) (int, error) {
	if err := b.c.ended(); err != nil {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	b.c.note(p[:n], err != nil)
	if err != nil {
		b.c.end(err)
	}
	return n, err
}

// tapWriter passes the answer to the caller, keeping its status, headers
// and the start of its body.
type tapWriter struct {
	http.ResponseWriter
	status int
	header http.Header
	body   tapCapture
}

func (w *tapWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status, w.header = code, w.ResponseWriter.Header().Clone()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tapWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.body.note(p[:n], false)
	return n, err
}

// Unwrap lets http.ResponseController reach the caller's writer (Flush).
func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// final is the answer's headers with the trailers that came after the
// body.
func (w *tapWriter) final() http.Header {
	h := w.header.Clone()
	for name, vs := range w.Header() {
		if t, ok := strings.CutPrefix(name, http.TrailerPrefix); ok {
			h[http.CanonicalHeaderKey(t)] = vs
		} else if _, had := w.header[name]; !had {
			h[name] = vs
		}
	}
	return h
}
