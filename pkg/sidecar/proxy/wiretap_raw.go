package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// A request a wiretap matches stays on the fast path: the heads are
// copied as they are, the bodies teed into the copy as they are relayed
// (up to tap.BodyCap each, counted past it), and once the answer's last
// byte has gone to the caller the raw copy goes to the queues. Reading
// the heads, redacting the credentials and encoding happen in each
// queue's goroutine (tap.AppendRawFrame), off the caller's path. A body
// past the cap still moves socket to socket.

// tapItem is one copy in a queue: an exchange made on net/http's path, or
// the raw heads and bodies the fast path teed, which each queue encodes
// as it is (tap.AppendRawFrame), without header maps.
type tapItem struct {
	size int64 // counted against the queues' bytes
	ex   *tap.Exchange
	raw  *rawExchange
	// refs counts the queues a raw copy was offered to that are not done
	// with it; the last gives its pooled buffers back.
	refs atomic.Int32
}

// unref says a queue is done with the copy (sent, dropped or drained).
func (it *tapItem) unref() {
	if it.raw != nil && it.refs.Add(-1) == 0 {
		for _, b := range it.raw.bufs {
			putTapBuf(b)
		}
	}
}

// appendTo encodes the copy into a queue's batch, naming its route and
// the copies dropped before it.
func (it *tapItem) appendTo(batch []byte, route tap.Route, dropped uint64) ([]byte, error) {
	if it.raw != nil {
		r := it.raw.RawExchange
		r.Route, r.Dropped = route, dropped
		return tap.AppendRawFrame(batch, &r)
	}
	c := *it.ex
	c.Route, c.Dropped = route, dropped
	return tap.AppendFrame(batch, &c)
}

// rawExchange is what the fast path teed of one exchange, and the pooled
// buffers its bodies are in.
type rawExchange struct {
	tap.RawExchange
	bufs [][]byte
}

// fastTap is the copy being made of one exchange on the fast path.
type fastTap struct {
	taps    []*tapRoute
	start   time.Time
	reqHead []byte
	req     tapCapture
	reqLen  int64 // the request's Content-Length; -1: chunked
	reqTE   dechunk
	resp    tapCapture
	respLen int64 // the answer's Content-Length; -1: none
	respTE  dechunk
	respHd  []byte
	// bounds is the sidecar's in-flight budget, which the heads are
	// held out of (heads bytes) as the bodies are; headsOver: it had no
	// room for them, and no copy is made.
	bounds    *tapBounds
	heads     int64
	headsOver bool
	// answered: the answer went out whole; skip: it is not copied (an
	// event stream, which has no end to compare).
	answered, skip bool
}

// withRoom keeps, of the wiretaps a request matched, those whose queue
// has room for a copy; a full one drops (and counts) this request's copy
// at once, so a developer who does not keep up costs callers no tee.
// taps is filtered in place.
func withRoom(taps []*tapRoute) []*tapRoute {
	kept := taps[:0]
	for _, tr := range taps {
		if len(tr.ch) >= cap(tr.ch) || tr.bytes.Load() >= tapQueueBytes || tr.bounds.queued.Load() >= tr.bounds.queueLimit() {
			tr.dropped.Add(1)
			continue
		}
		kept = append(kept, tr)
	}
	return kept
}

func newFastTap(taps []*tapRoute, req fastRequest, bounds *tapBounds) *fastTap {
	ft := &fastTap{taps: taps, start: time.Now(), reqLen: req.length, bounds: bounds}
	if req.chunked {
		ft.reqLen = -1
	}
	if ft.holdHead(len(req.head)) {
		ft.reqHead = bytes.Clone(req.head)
	}
	ft.req.bounds, ft.resp.bounds = bounds, bounds
	ft.req.hint = int(min(req.length, tap.BodyCap))
	ft.reqTE.c, ft.respTE.c = &ft.req, &ft.resp
	return ft
}

// holdHead takes n bytes of a head's copy out of the in-flight budget,
// or says (and notes) that it has no room for them.
func (ft *fastTap) holdHead(n int) bool {
	if ft.headsOver || ft.bounds != nil && !ft.bounds.take(int64(n)) {
		ft.headsOver = true
		return false
	}
	ft.heads += int64(n)
	return true
}

// requestBody notes a part of the request's body that was sent on; nil
// ft notes nothing.
func (ft *fastTap) requestBody(p []byte) {
	if ft != nil && len(p) > 0 {
		ft.req.note(p, false)
	}
}

// requestChunks is where a chunked request body is copied to: w, teed.
func (ft *fastTap) requestChunks(w io.Writer) io.Writer {
	if ft == nil {
		return w
	}
	return chunkTee{w, &ft.reqTE}
}

// requestCapture is the capture of a request body of known length.
func (ft *fastTap) requestCapture() *tapCapture {
	if ft == nil {
		return nil
	}
	return &ft.req
}

// responseHead notes the head of the final answer, and the start of its
// body that went out with it. It returns the capture for the rest of the
// body, nil when the answer is not copied.
func (ft *fastTap) responseHead(head, bodyStart []byte, fr responseFraming, bodyless bool) *tapCapture {
	if ft == nil {
		return nil
	}
	if !ft.holdHead(len(head)) {
		ft.skip = true // counted dropped in finish
		return nil
	}
	ft.respHd, ft.respLen = bytes.Clone(head), fr.length
	if bodyless {
		ft.respLen = 0
	}
	_, fields, _ := bytes.Cut(head, []byte("\r\n"))
	eachField(fields, func(name, value []byte) bool {
		if asciiEqualFold(name, "Content-Type") && strings.HasPrefix(string(value), "text/event-stream") {
			ft.skip = true
		}
		return !ft.skip
	})
	if ft.skip {
		return nil
	}
	ft.resp.hint = int(min(max(fr.length, 0), tap.BodyCap))
	if len(bodyStart) > 0 {
		ft.resp.note(bodyStart, false)
	}
	return &ft.resp
}

// responseChunks is where a chunked answer is copied to: w, teed.
func (ft *fastTap) responseChunks(w io.Writer) io.Writer {
	if ft == nil || ft.skip {
		return w
	}
	return chunkTee{w, &ft.respTE}
}

// finish offers the copy to the queues once the answer went out whole,
// or counts it dropped when the in-flight budget had no room for it.
func (ft *fastTap) finish() {
	defer ft.req.recycle()
	defer ft.resp.recycle()
	defer ft.req.release()
	defer ft.resp.release()
	defer ft.releaseHeads()
	if ft.headsOver {
		for _, tr := range ft.taps {
			tr.dropped.Add(1)
		}
		return
	}
	if !ft.answered || ft.skip || ft.respHd == nil {
		return
	}
	if ft.req.short() || ft.resp.short() {
		for _, tr := range ft.taps {
			tr.dropped.Add(1)
		}
		return
	}
	raw := &rawExchange{RawExchange: tap.RawExchange{Time: ft.start, Duration: time.Since(ft.start),
		RequestHead: ft.reqHead, ResponseHead: ft.respHd, Trailers: ft.respTE.trailers}}
	if ft.reqLen != 0 {
		raw.RequestBody = ft.req.result(ft.reqLen)
	}
	raw.ResponseBody = ft.resp.result(ft.respLen)
	// Counted as held: a pooled buffer whole, whatever of it a body fills.
	size := int64(len(raw.RequestHead)+len(raw.ResponseHead)+len(raw.Trailers)) + 1024
	for i, c := range []*tapCapture{&ft.req, &ft.resp} {
		if c.handed && c.pooled && c.data != nil {
			raw.bufs = append(raw.bufs, c.data)
			size += int64(cap(c.data))
		} else {
			size += int64(len([]tap.Body{raw.RequestBody, raw.ResponseBody}[i].Data))
		}
	}
	it := &tapItem{raw: raw, size: size}
	it.refs.Store(int32(len(ft.taps)))
	for _, tr := range ft.taps {
		tr.offerItem(it)
	}
}

// releaseHeads gives back what the heads' copies held of the budget (the
// copy made of them is the queues' to count).
func (ft *fastTap) releaseHeads() {
	if ft.bounds != nil {
		ft.bounds.inFlight.Add(-ft.heads)
	}
	ft.heads = 0
}

// teeBody copies n bytes (-1: until EOF) of a body as copyBody does,
// noting the first tap.BodyCap of them in c (nil: copyBody itself); what
// is past the cap still moves socket to socket.
func teeBody(dst net.Conn, src *bufio.Reader, srcConn net.Conn, n int64, c *tapCapture) error {
	if c == nil {
		return copyBody(dst, src, srcConn, n)
	}
	if n < 0 {
		err := copyN(teeWriter{dst, c}, src, -1)
		if err == nil {
			c.note(nil, true)
		}
		return err
	}
	first := min(n, max(int64(tap.BodyCap)-c.kept(), 0))
	if err := copyN(teeWriter{dst, c}, src, first); err != nil {
		return err
	}
	c.count(n-first, true) // counted before the last byte goes, as teeWriter notes
	return copyBody(dst, src, srcConn, n-first)
}

// teeWriter writes to the caller or the app and notes what went.
type teeWriter struct {
	io.Writer
	c *tapCapture
}

// Write notes p first: once the last byte is written the other end may
// answer, and the exchange must not wait for the copy.
func (t teeWriter) Write(p []byte) (int, error) {
	t.c.note(p, false)
	return t.Writer.Write(p)
}

// chunkTee writes a chunked body on and has d note it.
type chunkTee struct {
	io.Writer
	d *dechunk
}

func (t chunkTee) Write(p []byte) (int, error) {
	t.d.write(p)
	return t.Writer.Write(p)
}

// dechunk keeps the data and the trailers of a chunked body from the
// bytes copyChunked wrote on, which it has checked already.
type dechunk struct {
	c        *tapCapture
	state    int
	left     uint64 // of the chunk's data
	line     []byte // a size or trailer line so far
	trailers []byte
}

// dechunk's states.
const (
	chunkSizeLine = iota
	chunkData
	chunkDataEnd
	chunkTrailers
	chunkDone
)

// maxTapTrailers bounds the trailer lines a copy keeps.
const maxTapTrailers = 16 << 10

func (d *dechunk) write(p []byte) {
	for len(p) > 0 && d.state != chunkDone {
		switch d.state {
		case chunkData:
			k := min(uint64(len(p)), d.left)
			d.c.note(p[:k], false)
			p, d.left = p[k:], d.left-k
			if d.left == 0 {
				d.state = chunkDataEnd
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(d.line) < 8<<10 {
				d.line = append(d.line, p...)
			}
			return
		}
		d.line = append(d.line, p[:i]...)
		p = p[i+1:]
		line := bytes.TrimSuffix(d.line, []byte("\r"))
		switch d.state {
		case chunkDataEnd:
			d.state = chunkSizeLine
		case chunkSizeLine:
			n, err := chunkSize(line)
			switch {
			case err != nil:
				d.state = chunkDone // copyChunked stops too
			case n == 0:
				d.state = chunkTrailers
			default:
				d.left, d.state = n, chunkData
			}
		case chunkTrailers:
			if len(line) == 0 {
				d.state = chunkDone
				d.c.note(nil, true)
			} else if len(d.trailers)+len(line)+2 <= maxTapTrailers {
				d.trailers = append(append(d.trailers, line...), "\r\n"...)
			}
		}
		d.line = d.line[:0]
	}
}
