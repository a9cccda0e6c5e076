package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// A wiretap route (route.Route.Wiretap) takes no request: the requests it
// matches are served as they would be without it, by the app or an
// intercepting developer, and once the answer's last byte has gone to the
// caller the request and the answer are offered to the route's queue,
// which sends them to its developer on a stream of their own
// (pkg/wire/tap). On the fast path the bytes are teed as they are relayed
// and the queue's goroutine parses them (wiretap_raw.go); the relay hands
// an HTTP/2 stream to net/http, which copies it here (serveTapped). The
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

// The sidecar's bounds over all its wiretaps: how many it holds, the bytes
// all their queues hold together, and the bytes of the copies being made
// of the requests in flight (a request that gets none is served without a
// copy, and counted as dropped).
const (
	tapMaxRoutes       = 32
	tapTotalQueueBytes = 64 << 20
	tapInFlightBytes   = 32 << 20
)

// tapBounds are a sidecar's bounds over all its wiretaps; a zero limit is
// the default above (tests set smaller ones).
type tapBounds struct {
	inFlight atomic.Int64 // bytes held by the copies of requests in flight
	queued   atomic.Int64 // bytes held by all queues
	// maxRoutes, maxQueued and maxInFlight: zero is the default.
	maxRoutes              int
	maxQueued, maxInFlight int64
}

func (b *tapBounds) routes() int {
	if b.maxRoutes > 0 {
		return b.maxRoutes
	}
	return tapMaxRoutes
}

func (b *tapBounds) queueLimit() int64 {
	if b.maxQueued > 0 {
		return b.maxQueued
	}
	return tapTotalQueueBytes
}

func (b *tapBounds) inFlightLimit() int64 {
	if b.maxInFlight > 0 {
		return b.maxInFlight
	}
	return tapInFlightBytes
}

// take reserves n bytes of the in-flight budget, or says there are none.
func (b *tapBounds) take(n int64) bool {
	if b.inFlight.Add(n) > b.inFlightLimit() {
		b.inFlight.Add(-n)
		return false
	}
	return true
}

// tapRoute is a live wiretap route and its developer's queue of copies.
type tapRoute struct {
	lr      *liveRoute
	ch      chan *tapItem
	bounds  *tapBounds    // the sidecar's, for the bytes of all queues
	bytes   atomic.Int64  // held in ch
	dropped atomic.Uint64 // since the last copy sent
	done    chan struct{}
	// mu orders offers with close, so that what close drains from ch
	// no later offer adds to.
	mu     sync.Mutex
	closed bool
}

// addTap installs a wiretap route: no conflict with anything, one queue
// and sender per route. A registration under the same owner key replaces
// the earlier one, as for intercepts; past tapMaxRoutes others, it is
// refused.
func (t *Table) addTap(nr *liveRoute) (func(), error) {
	tr := newTapRoute(nr, &t.tapBounds)
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
	if n := t.tapBounds.routes(); len(kept) >= n {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: this pod holds %d wiretaps, the most it takes; "+
			"wait for one to end, or ask the teammates who wiretap this Service to stop those they no longer need", tunnel.ErrFailed, n)
	}
	t.taps = append(kept, tr)
	t.nTaps.Store(int32(len(t.taps)))
	t.mu.Unlock()
	go tr.run()
	for _, old := range replaced {
		old.close()
	}
	return func() { t.removeTap(tr) }, nil
}

// newTapRoute is a queue for route lr, within the sidecar's bounds; its
// sender is not started.
func newTapRoute(lr *liveRoute, bounds *tapBounds) *tapRoute {
	return &tapRoute{lr: lr, ch: make(chan *tapItem, tapQueueLen), bounds: bounds, done: make(chan struct{})}
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

// tapsHead returns the wiretap routes that match a raw request head (the
// fast path tees the exchange for them).
func (t *Table) tapsHead(head []byte) []*tapRoute {
	if t.nTaps.Load() == 0 {
		return nil
	}
	line, fields, _ := bytes.Cut(head, []byte("\r\n"))
	method, line, _ := bytes.Cut(line, []byte(" "))
	target, _, _ := bytes.Cut(line, []byte(" "))
	path := requestPath(target)
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*tapRoute
	for _, r := range t.taps {
		if r.lr.matchesHead(method, path, fields) {
			out = append(out, r)
		}
	}
	return out
}

// tapsFields says whether a wiretap route matches an HTTP/2 request's header fields.
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

// offer queues a copy made on net/http's path.
func (tr *tapRoute) offer(ex *tap.Exchange) {
	tr.offerItem(&tapItem{ex: ex, size: copySize(ex)})
}

// offerItem queues a copy, or drops and counts it when the queue, or all
// the queues together, hold too much.
func (tr *tapRoute) offerItem(it *tapItem) {
	n := it.size
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.closed {
		it.unref()
		return
	}
	tr.bytes.Add(n)
	if tr.bounds.queued.Add(n) > tr.bounds.queueLimit() || tr.bytes.Load() > tapQueueBytes {
		tr.release(n)
		tr.dropped.Add(1)
		it.unref()
		return
	}
	select {
	case tr.ch <- it:
	default:
		tr.release(n)
		tr.dropped.Add(1)
		it.unref()
	}
}

// release gives back the bytes of a copy that left the queue.
func (tr *tapRoute) release(n int64) {
	tr.bytes.Add(-n)
	tr.bounds.queued.Add(-n)
}

// copySize is what a copy made on net/http's path is counted as against
// the queues: its bodies, its target and its parsed headers.
func copySize(ex *tap.Exchange) int64 {
	return int64(len(ex.Request.Body.Data)+len(ex.Response.Body.Data)+len(ex.Request.Target)) + 1024 +
		headerWeight(ex.Request.Header) + headerWeight(ex.Response.Header)
}

// tapFieldWeight is what a header line weighs in a parsed copy beyond its
// bytes: its map slot, its strings' and its slice's headers (net/http's
// parse of a 64 KiB head of empty fields keeps about 100 bytes a line).
// A head of many short lines weighs far more parsed than sent.
const tapFieldWeight = 112

// headerWeight is what a parsed header holds in memory, as the queues
// count it.
func headerWeight(h http.Header) int64 {
	var n int64
	for k, vs := range h {
		n += int64(len(k))
		for _, v := range vs {
			n += int64(len(v)) + tapFieldWeight
		}
	}
	return n
}

// close stops the sender and gives back what its queue held.
func (tr *tapRoute) close() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.closed {
		return
	}
	tr.closed = true
	close(tr.done)
	for {
		select {
		case it := <-tr.ch:
			tr.release(it.size)
			it.unref()
		default:
			return
		}
	}
}

// run sends the queue's copies to the developer, on one stream while it
// lasts. A copy the fast path teed is parsed here, off the caller's path.
// Copies are encoded one after the other into one buffer, written when it
// holds tapBatchBytes or tapFlushDelay after its first copy: under load
// the stream costs a write per batch rather than per copy, and a copy
// reaches the developer that much later at most.
func (tr *tapRoute) run() {
	var conn net.Conn
	var batch []byte
	var pending uint64 // copies in batch, and the drops they carry
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	var flushDue <-chan time.Time
	defer func() {
		flush.Stop()
		if conn != nil {
			conn.Close()
		}
	}()
	send := func() {
		flushDue = nil
		if len(batch) == 0 {
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(tapWriteWait))
		if _, err := conn.Write(batch); err != nil {
			tr.dropped.Add(pending)
			conn.Close()
			conn = nil
		}
		batch, pending = batch[:0], 0
		if cap(batch) > tapBatchKeep {
			batch = nil // a large copy's buffer is not kept
		}
	}
	route := tap.Route{Owner: cutTo(tr.lr.Owner, tap.MaxOwner), Marker: cutTo(tr.lr.String(), tap.MaxMarker)}
	for {
		var it *tapItem
		select {
		case <-tr.done:
			return
		case <-flushDue:
			send()
			continue
		case it = <-tr.ch:
		}
		tr.release(it.size)
		dropped := tr.dropped.Swap(0)
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), tapDialWait)
			dc, err := tr.lr.dialFast(ctx) // raw writes on TCP, as the fast path's legs
			cancel()
			if err != nil {
				tr.dropped.Add(1 + dropped)
				it.unref()
				continue
			}
			conn, batch = dc, append(batch[:0], tap.StreamMagic...)
		}
		var err error
		batch, err = it.appendTo(batch, route, dropped)
		it.unref() // its bodies are copied into the batch, or refused
		if err != nil {
			tr.dropped.Add(1 + dropped) // nothing of a copy that breaks the format was kept
			continue
		}
		pending += 1 + dropped
		switch {
		case len(batch) >= tapBatchBytes:
			send()
		case flushDue == nil:
			flush.Reset(tapFlushDelay)
			flushDue = flush.C
		}
	}
}

// A queue's batches: written at this size, or this long after their first
// copy; a buffer grown past tapBatchKeep by a large copy is let go.
const (
	tapBatchBytes = 64 << 10
	tapFlushDelay = 2 * time.Millisecond
	tapBatchKeep  = 256 << 10
)

// tappable says whether a request's exchange can be copied: not an
// upgrade or CONNECT, whose bytes after the head are no HTTP exchange.
func tappable(r *http.Request) bool {
	return r.Method != http.MethodConnect && r.Header.Get("Upgrade") == ""
}

// serveTapped serves r as ServeHTTP would, then offers the exchange to
// the wiretap routes it matched. A request a developer's intercept took
// is copied only to that developer's wiretaps; a request whose copy finds
// no room in the in-flight budget is served, and counted as dropped.
func (h *Handler) serveTapped(w http.ResponseWriter, r *http.Request, taps []*tapRoute) {
	d, _ := r.Context().Value(ctxKey{}).(decision)
	if taps = tapsOf(d.route, taps); len(taps) == 0 {
		h.rp.ServeHTTP(w, r)
		return
	}
	bounds := &h.Table.tapBounds
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
		body = &tapCapture{bounds: bounds}
		defer body.release()
		r.Body = tapBody{ReadCloser: r.Body, c: body}
	}
	tw := &tapWriter{ResponseWriter: w, body: tapCapture{bounds: bounds}}
	defer tw.body.release()
	h.rp.ServeHTTP(tw, r)
	if tw.status == 0 || strings.HasPrefix(tw.header.Get("Content-Type"), "text/event-stream") {
		return // no answer went out, or an event stream: nothing to compare
	}
	if body.short() || tw.body.short() {
		for _, tr := range taps {
			tr.dropped.Add(1)
		}
		return
	}
	req.Body = body.result(r.ContentLength)
	tap.Redact(req.Header)
	resp := tap.Response{Status: tw.status, Header: tw.final(), Body: tw.body.whole()}
	tap.Redact(resp.Header)
	ex := &tap.Exchange{Time: start, Duration: time.Since(start), Request: req, Response: resp}
	it := &tapItem{ex: ex, size: copySize(ex)} // each queue names its route as it sends
	for _, tr := range taps {
		tr.offerItem(it)
	}
}

// tapsOf keeps the wiretaps that may see a request the route took has
// taken (nil: the app has). A request one developer's intercept takes goes
// to their laptop, and neither it nor the laptop's answer is for a
// teammate: only the wiretaps under that route's owner key see it.
func tapsOf(took *liveRoute, taps []*tapRoute) []*tapRoute {
	if took == nil {
		return taps
	}
	var out []*tapRoute
	for _, tr := range taps {
		if took.Client != "" && subtle.ConstantTimeCompare([]byte(tr.lr.Client), []byte(took.Client)) == 1 {
			out = append(out, tr)
		}
	}
	return out
}

// cutTo keeps a name within a bound of the tap's format (a long path
// regex), rather than have the copy refused.
func cutTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
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
