package proxy

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The relay's flow control: a stream's header blocks and DATA pass from
// one leg to another as far as the receiver's windows allow, what cannot
// go yet waits (counted in h2Held), and what was passed on is granted back
// to its sender, the connection windows growing only from the budget.

// h2item is a header block or DATA waiting to be passed on; buf holds a
// copy of the DATA from a pool, to go back there, and held is what the
// copy counts in h2Held.
type h2item struct {
	head   bool
	fields []hpack.HeaderField
	data   []byte
	buf    *[]byte
	held   int
	end    bool
}

// The relay's buffers are pooled: allocated per batch or per frame they
// kept the garbage collector busy (a fifth of the CPU of 64 KiB answers).
// A piece of DATA that waits goes in a pooled buffer only if it fills most
// of it: what the relay holds stays within a third more than the windows
// it gave.
var (
	outPool   = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
	chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, fastHeadMax); return &b }}
	framePool = sync.Pool{New: func() any { b := make([]byte, 0, h2Frame); return &b }}
)

// h2Held is how many bytes of DATA the relay holds waiting to be passed
// on, over every connection of the process.
var h2Held atomic.Int64

// keep copies DATA that must wait, into a pooled buffer when the piece
// nearly fills one, else into one its size: thousands of streams waiting
// with a few bytes each must not hold a pooled buffer apiece.
func (it *h2item) keep() {
	n := len(it.data)
	var pool *sync.Pool
	switch {
	case n > fastHeadMax*3/4 && n <= fastHeadMax:
		pool = &chunkPool
	case n > h2Frame*3/4 && n <= h2Frame:
		pool = &framePool
	}
	if pool == nil {
		it.data = bytes.Clone(it.data)
		it.held = n
	} else {
		it.buf = pool.Get().(*[]byte)
		*it.buf = append((*it.buf)[:0], it.data...)
		it.data = *it.buf
		it.held = cap(*it.buf)
	}
	h2Held.Add(int64(it.held))
}

// release gives its buffer back.
func (it *h2item) release() {
	if it.held != 0 {
		h2Held.Add(-int64(it.held))
		it.held = 0
	}
	if it.buf != nil {
		if cap(*it.buf) == h2Frame {
			framePool.Put(it.buf)
		} else {
			chunkPool.Put(it.buf)
		}
		it.buf = nil
	}
}

// data passes on a DATA frame of n bytes (padding included) on half h.
func (c *h2conn) data(h *h2half, f *http2.DataFrame, n int64) error {
	if h.recvWin -= n; h.recvWin < 0 {
		c.credit(h.from, n)
		c.reset(h.s, http2.ErrCodeFlowControl, true, true)
		return nil
	}
	p := f.Data()
	if pad := n - int64(len(p)); pad > 0 {
		c.grant(h, pad)
	}
	h.gotEnd = f.StreamEnded()
	if len(p) == 0 && !h.gotEnd {
		return nil
	}
	c.send(h, h2item{data: p, end: h.gotEnd})
	return nil
}

// send passes it on along h, at once if nothing waits before it and the
// windows allow, else queued (DATA copied: the framer reuses its buffer).
func (c *h2conn) send(h *h2half, it h2item) {
	if h.s.gone {
		c.grant(h, int64(len(it.data)))
		return
	}
	if len(h.q) == 0 && c.forward(h, &it) {
		return
	}
	if len(it.data) > 0 {
		it.keep()
	}
	h.q = append(h.q, it)
}

// pump passes on what waits on h, as far as the windows allow.
func (c *h2conn) pump(h *h2half) {
	for len(h.q) > 0 && !h.s.gone {
		if !c.forward(h, &h.q[0]) || h.s.gone {
			return // waiting, or the stream ended (and forgot its queue)
		}
		h.q[0].release()
		h.q[0] = h2item{}
		h.q = h.q[1:]
	}
	if len(h.q) == 0 {
		h.q = nil
		if h.from != nil && h.from.h1 {
			c.cond.Broadcast() // its reader waits for the queue to empty
		}
	}
}

// forward writes it, or as much of its DATA as fits, to h's leg; true when
// it is all gone.
func (c *h2conn) forward(h *h2half, it *h2item) bool {
	l := h.to
	if l == nil {
		// The sidecar answered: what the caller still sends is dropped.
		c.grant(h, int64(len(it.data)))
		if it.end {
			h.sentEnd = true
			c.closed(h.s)
		}
		return true
	}
	if l.dead {
		return false
	}
	if h.toID == 0 && !c.open(h) {
		return false
	}
	if it.head {
		c.forwardHead(h, it)
		return true
	}
	return c.forwardData(h, it)
}

// forwardHead writes the header block it to h's leg, as HTTP/2 or as an
// HTTP/1.1 request head or trailers.
func (c *h2conn) forwardHead(h *h2half, it *h2item) {
	l := h.to
	switch {
	case !l.h1:
		l.headers(h.toID, it.fields, it.end)
	case !l.requested:
		l.h1Request(h.s, it.fields, it.end)
		if it.end {
			h.s.retry = it.fields
		}
	case !l.h1Trailers(it.fields):
		c.reset(h.s, http2.ErrCodeProtocol, true, true) // less body than its Content-Length
		return
	}
	if h == &h.s.resp {
		h.s.answered = true
	}
	if it.end {
		h.sentEnd = true
		c.closed(h.s)
	}
}

// forwardData writes as much of its DATA to h's leg as the windows and
// the leg's queue allow; true when it is all gone.
func (c *h2conn) forwardData(h *h2half, it *h2item) bool {
	l := h.to
	for {
		room := min(h.window, l.window, int64(l.maxFrame))
		if len(l.out) >= h2OutSoft {
			room = 0
		}
		n := int64(len(it.data))
		if n > 0 && room <= 0 {
			c.block(h)
			return false
		}
		n = min(n, room)
		end := it.end && n == int64(len(it.data))
		if !l.h1 {
			l.dataFrame(h.toID, it.data[:n], end)
		} else if !l.h1Body(it.data[:n], end) {
			// More body than its Content-Length, or less: the rest
			// would be read as another request.
			c.reset(h.s, http2.ErrCodeProtocol, true, true)
			return true
		}
		if !l.h1 { // HTTP/1.1 has no windows; h2OutSoft bounds what waits
			h.window -= n
			l.window -= n
		}
		c.grant(h, n)
		it.data = it.data[n:]
		if end {
			h.sentEnd = true
			c.closed(h.s)
			return true
		}
		if len(it.data) == 0 {
			return true
		}
	}
}

// open gives a caller's stream an id on its leg, if the leg is up and has
// room for another stream; else the stream waits for it.
func (c *h2conn) open(h *h2half) bool {
	l, s := h.to, h.s
	if !l.ready || l.goingAway || len(l.byID) >= l.maxStreams {
		if !s.waiting {
			s.waiting = true
			l.waiting = append(l.waiting, s)
		}
		return false
	}
	h.toID = l.nextID
	l.nextID += 2
	l.byID[h.toID] = s
	if l.h1 {
		l.cur = s
	}
	h.window = l.initWin
	s.resp.fromID, s.resp.recvWin = h.toID, h2Window
	return true
}

// startWaiting opens the streams that wait for l, in order, while it has
// room.
func (c *h2conn) startWaiting(l *h2leg) {
	w := l.waiting
	l.waiting = nil
	for _, s := range w {
		s.waiting = false
		if !s.gone && s.req.to == l {
			c.pump(&s.req)
		}
	}
	if l.h1 && l.ready && l.cur == nil && !l.dead && !l.idle {
		// Dialed for a stream that was reset meanwhile: keep it for the
		// next.
		c.h1Release(l, nil, true)
	}
}

func (c *h2conn) block(h *h2half) {
	if !h.isBlocked {
		h.isBlocked = true
		h.to.blocked = append(h.to.blocked, h)
	}
}

// unblock passes on what waited for room on l.
func (c *h2conn) unblock(l *h2leg) {
	b := l.blocked
	l.blocked = nil
	for _, h := range b {
		h.isBlocked = false
		if h.to == l {
			c.pump(h)
		}
	}
}

// grant gives h's sender back n bytes it sent and the relay passed on.
func (c *h2conn) grant(h *h2half, n int64) {
	from := h.from
	if n == 0 || from == nil || from.dead || from.h1 {
		return
	}
	if !h.gotEnd && !h.s.gone {
		h.unacked += n
		if h.unacked >= h2Window/2 {
			from.windowUpdate(h.fromID, h.unacked)
			h.recvWin += h.unacked
			h.unacked = 0
		}
	}
	c.credit(from, n)
}

// credit gives l back n bytes of its connection's window. A connection
// grows towards h2ConnWindow as its DATA is passed on, as far as the
// budget has window left: what the relay holds, requests from callers and
// answers for them alike, over every connection, stays within it, and a
// peer that finds none left sends at HTTP/2's default pace.
func (c *h2conn) credit(l *h2leg, n int64) {
	if l.dead || l.h1 {
		return
	}
	l.unacked += n
	if l.unacked >= l.recvMax/4 {
		inc := l.unacked
		if l.recvMax < h2ConnWindow && !c.done {
			more := c.f.budget.takeWindow(h2ConnWindow - l.recvMax)
			l.recvMax += more
			inc += more
		}
		l.windowUpdate(0, inc)
		l.recvWin += inc
		l.unacked = 0
	}
}

// giveWindow gives back to the budget what l's window drew from it.
func (c *h2conn) giveWindow(l *h2leg) {
	if !l.h1 {
		c.f.budget.giveWindow(l.recvMax - h2Default)
		l.recvMax = h2Default
	}
}

func (c *h2conn) windowUpdate(l *h2leg, f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if l == c.caller {
			c.callerWin = time.Now()
		}
		if l.window += inc; l.window > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.unblock(l)
		return nil
	}
	var h *h2half
	if l == c.caller {
		if s := c.streams[f.StreamID]; s != nil {
			h = &s.resp
		}
	} else if s := l.byID[f.StreamID]; s != nil {
		h = &s.req
	}
	if h == nil {
		return c.calm(l) // for a stream that is gone
	}
	if l == c.caller {
		h.s.callerAt = time.Now()
	}
	if h.window += inc; h.window > 1<<31-1 {
		c.reset(h.s, http2.ErrCodeFlowControl, true, true)
		return nil
	}
	c.pump(h)
	return nil
}
