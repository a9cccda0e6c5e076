package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// The sidecar relays HTTP/2 (prior knowledge) stream by stream instead of
// ending it in an HTTP/2 server and starting it again in a client. On a
// port that speaks h2c (appProtocol h2c), and for gRPC on any port, a
// stream stays HTTP/2 frame by frame: each caller's connection gets a
// connection of its own to the app, opened with its first such stream, and
// one through the tunnel of each developer one of its streams goes to. Any
// other stream goes on as HTTP/1.1 (h2h1.go). A stream keeps its frames: its
// header block is decoded (to pick the route) and encoded again for the
// connection it goes on, since each connection has its own HPACK state;
// its DATA frames are passed on as they come; its RST_STREAM, and the
// END_STREAM flag, go to the other side.
//
// Flow control ends at the sidecar on both sides: it grants a sender what
// it has passed on, so it never holds more of a stream than the window it
// gave (256 KiB) nor more of a connection than its window, and it sends no
// more than the receiver allows. Every connection's window, the caller's
// and those to the app and developers, starts at HTTP/2's default and
// grows towards 1 MiB only from the budget's Window: what callers send and
// what is sent to them alike. There is one goroutine per connection reading,
// and the writing is done by whichever goroutine queued frames, one write
// per batch: frames that arrive together go out together.
//
// What the relay does not take, it hands to net/http on an in-memory
// connection (the "handler" leg): a remote endpoint's route, a connection
// an --all route owns, and every stream while a doctor's watch is live.

// The relay's bounds.
const (
	// h2MaxStreams is how many streams a caller may have open at once,
	// and, until its settings say otherwise, how many the relay opens on
	// a connection to the app.
	h2MaxStreams = 100
	// h2OutSoft is how much a connection may have queued for writing
	// before DATA waits; h2OutHard, past which a peer that does not read
	// its connection is dropped (control frames, answered to a flood).
	// Two full DATA frames: while one write is out, the streams queue the
	// next ones, and with the writer and the streams on two cores every
	// connection's queue filled to the bound (256 KiB took the sidecar to
	// 29 MiB at 160 streams of 64 KiB; 32 KiB to 20, at the same rate).
	h2OutSoft = 32 << 10
	h2OutHard = 1 << 20
	// h2MaxResponseHeaders bounds a response's header list from the app
	// or a developer.
	h2MaxResponseHeaders = 1 << 20
	// h2Frame is the frame size every HTTP/2 peer accepts.
	h2Frame = 16 << 10
	// h2Default is HTTP/2's initial window before any settings.
	h2Default = 65535
	// h2Window is the window the relay gives each stream, on both sides:
	// a 64 KiB answer needs no stream WINDOW_UPDATE. What it holds of a
	// connection is still bounded by h2ConnWindow.
	h2Window = 256 << 10
	// h2WriteTimeout bounds a write to a peer that does not read.
	h2WriteTimeout = 30 * time.Second
	// h2Calm is how many frames about the connection itself (SETTINGS,
	// PING, and RST_STREAM or WINDOW_UPDATE for streams that are gone) a
	// caller may send in a second; beyond it the relay answers GOAWAY
	// (ENHANCE_YOUR_CALM) and closes. Each is cheap now, but none does
	// anything for the caller but make the sidecar work.
	h2Calm = 500
	// h2MaxLegs bounds the connections the relay opens for one caller's
	// connection (to the app, developers, net/http): an HTTP/1.1 app needs
	// one per stream in flight, and streams beyond wait for one.
	h2MaxLegs = 8
)

// h2conn is one caller's connection and the connections its streams go on.
type h2conn struct {
	f      *fastPath
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the legs' dials and readers

	mu      sync.Mutex
	caller  *h2leg
	app     *h2leg
	devs    map[*liveRoute]*h2leg
	h1idle  map[*liveRoute][]*h2leg // kept HTTP/1.1 legs; nil: the app's
	handler *h2leg
	cond    *sync.Cond           // an HTTP/1.1 leg's reader waits on it for the caller
	legs    []*h2leg             // every live leg
	pending []*h2leg             // legs with frames queued, for writing
	streams map[uint32]*h2stream // by the caller's stream id
	lastID  uint32               // the caller's highest stream id
	goAway  bool                 // draining: no new streams
	done    bool
	// idle checks, every idle timeout, whether the connection has had no
	// stream since idleSince for that long, and whether a stream keeps the
	// caller's pace; quietSince is idleSince for a budget looking for room
	// (unix nanoseconds), 0 while a stream is open.
	idle       *time.Timer
	idleSince  time.Time
	quietSince atomic.Int64
	// Frames about the connection in the current second, from when.
	calmFrames int
	calmSince  time.Time
	// callerWin is when the caller last gave the connection's window.
	callerWin time.Time
	// dialed counts the legs the relay opened, the first of which is the
	// caller's own and the rest drawn from the budget; h1wait, the
	// streams waiting for an HTTP/1.1 leg.
	dialed   int
	h1wait   []h1waiter
	inH1Next bool
}

// h1waiter is a stream waiting for an HTTP/1.1 leg to r (nil: the app).
type h1waiter struct {
	s *h2stream
	r *liveRoute
}

// h2leg is one HTTP/2 connection of the relay: the caller's, or one the
// relay opened (to the app, a developer, or net/http).
type h2leg struct {
	name  string     // for the caller's 502 and the log
	route *liveRoute // the developer's route; nil otherwise
	conn  net.Conn   // nil while dialing
	br    *bufio.Reader
	fr    *http2.Framer

	c       *h2conn
	out     []byte // frames to write, from outPool
	queued  bool   // in c.pending
	writing bool
	enc     *hpack.Encoder
	hbuf    bytes.Buffer

	// Sending: the connection's window and the peer's settings.
	window     int64
	initWin    int64
	maxFrame   int
	maxStreams int

	// Receiving: what the peer may still send on the connection, and what
	// was passed on and not yet granted back; recvMax, the window in all
	// (for the caller's connection, h2Default and what the budget gave).
	recvWin, unacked, recvMax int64

	// The relay's own connections: streams on it by their id there, those
	// waiting to be opened, and those with DATA waiting for room.
	nextID  uint32
	byID    map[uint32]*h2stream
	waiting []*h2stream
	blocked []*h2half

	ready, dead, goingAway bool
	// paid: drawn from the budget; dialedLeg: one the relay opened.
	paid, dialedLeg bool

	// An HTTP/1.1 leg (h2h1.go) carries one stream at a time, cur, whose
	// request head went (requested) and whose body is chunked or has
	// bodyLeft bytes to go; served counts the exchanges it finished.
	h1, requested, chunked, idle bool
	cur                          *h2stream
	bodyLeft                     int64
	served                       int
}

// h2stream is a caller's stream and where it went.
type h2stream struct {
	id        uint32
	req, resp h2half
	answered  bool // response headers went to the caller
	waiting   bool // in its leg's waiting list
	stopBody  bool // the app answered and wants no more of the body
	gone      bool
	isHead    bool                // a HEAD request: its answer has no body
	retry     []hpack.HeaderField // a bodiless HTTP/1.1 request, to send again
	// The caller's pace: when the stream began, what its body brought,
	// and when the caller last sent it something.
	start, callerAt time.Time
	got             int64
}

// h2half is one direction of a stream: from one leg to another.
type h2half struct {
	s            *h2stream
	from, to     *h2leg // to is nil when the sidecar answered itself
	fromID, toID uint32 // toID is 0 until the stream is opened on to
	window       int64  // what to still accepts on this stream
	recvWin      int64  // what from may still send on this stream
	unacked      int64
	q            []h2item
	gotEnd       bool // END_STREAM (or a reset) came from the sender
	sentEnd      bool // END_STREAM went on to the receiver
	isBlocked    bool
}

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

// release gives it's buffer back.
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

// room gives l a pooled queue to append frames to, and puts l among the
// legs with something to write.
func (l *h2leg) room() {
	if l.out == nil {
		l.out = (*outPool.Get().(*[]byte))[:0]
	}
	if !l.queued {
		l.queued = true
		l.c.pending = append(l.c.pending, l)
	}
}

// serveH2 relays the h2c connection in fc, whose preface is in its buffer.
func (f *fastPath) serveH2(fc *fastConn) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &h2conn{f: f, ctx: ctx, cancel: cancel, devs: map[*liveRoute]*h2leg{}, h1idle: map[*liveRoute][]*h2leg{},
		streams: map[uint32]*h2stream{}}
	c.cond = sync.NewCond(&c.mu)
	c.caller = c.newLeg("the caller", nil, false)
	c.caller.conn, c.caller.ready = fc.c, true
	c.idleSince = time.Now()
	c.callerWin = c.idleSince
	c.quietSince.Store(c.idleSince.UnixNano())
	c.idle = time.AfterFunc(f.h2Tick(), c.idleClose)
	f.mu.Lock()
	fc.h2 = c
	f.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.finish()
		c.giveWindow(c.caller)
		c.mu.Unlock()
		c.flush()
		c.idle.Stop()
		c.wg.Wait()
	}()

	fc.c.SetReadDeadline(time.Now().Add(f.headerTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(fc.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return
	}
	c.caller.fr = newH2Framer(fc.br, MaxHeaderBytes)
	c.mu.Lock()
	c.caller.settings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: MaxHeaderBytes})
	c.mu.Unlock()
	c.flush()
	first, err := c.caller.fr.ReadFrame()
	if sf, ok := first.(*http2.SettingsFrame); err != nil || !ok || sf.IsAck() {
		c.fail(http2.ErrCodeProtocol)
		return
	}
	fc.c.SetReadDeadline(time.Time{})
	for fr := first; ; {
		c.mu.Lock()
		err = c.fromCaller(fr)
		more := frameBuffered(fc.br)
		c.mu.Unlock()
		if err != nil {
			c.fail(codeOf(err))
			return
		}
		if !more {
			c.flush()
		}
		fr, err = c.caller.fr.ReadFrame()
		var se http2.StreamError
		for errors.As(err, &se) {
			c.mu.Lock()
			c.streamError(se.StreamID, se.Code)
			c.mu.Unlock()
			c.flush()
			fr, err = c.caller.fr.ReadFrame()
		}
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.fail(http2.ErrCode(ce))
			}
			return
		}
	}
}

// newH2Framer reads frames from r, header blocks decoded up to maxList.
func newH2Framer(r io.Reader, maxList uint32) *http2.Framer {
	fr := http2.NewFramer(nil, r)
	fr.SetReuseFrames()
	fr.SetMaxReadFrameSize(h2Frame)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = maxList
	return fr
}

// frameBuffered reports whether a whole frame is already in br, so writes
// can wait for it and go out together.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// codeOf is the GOAWAY code for an error handling a frame.
func codeOf(err error) http2.ErrCode {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return http2.ErrCode(ce)
	}
	return http2.ErrCodeInternal
}

// fail ends the connection with GOAWAY code.
func (c *h2conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	c.caller.goAwayFrame(c.lastID, code)
	c.mu.Unlock()
	c.flush()
}

// newLeg adds a leg. Every HTTP/2 connection, the caller's and the
// relay's own, starts with HTTP/2's default window, which needs no
// WINDOW_UPDATE; more comes from the budget as the relay passes its DATA
// on (credit). What a peer can make the relay hold, in either direction,
// is that default a connection and the budget's Window over the process.
func (c *h2conn) newLeg(name string, route *liveRoute, h1 bool) *h2leg {
	l := &h2leg{c: c, name: name, route: route, window: h2Default, initWin: h2Default, maxFrame: h2Frame,
		maxStreams: h2MaxStreams, recvWin: h2Default, recvMax: h2Default, nextID: 1, byID: map[uint32]*h2stream{}, h1: h1}
	if h1 {
		// No flow control: what waits is bounded by h2OutSoft.
		l.window, l.initWin, l.maxFrame, l.maxStreams = 1<<30, 1<<30, 1<<20, 1
	}
	l.enc = hpack.NewEncoder(&l.hbuf)
	c.legs = append(c.legs, l)
	return l
}

// control handles the frames about the connection l itself (settings,
// pings, windows); false if fr is none of them.
func (c *h2conn) control(l *h2leg, fr http2.Frame) (bool, error) {
	switch f := fr.(type) {
	case *http2.SettingsFrame:
		if err := c.calm(l); err != nil {
			return true, err
		}
		if err := c.settingsFrom(l, f); err != nil {
			return true, err
		}
		return true, c.overflow(l)
	case *http2.PingFrame:
		if err := c.calm(l); err != nil {
			return true, err
		}
		if !f.IsAck() {
			l.ping(f.Data)
		}
		return true, c.overflow(l)
	case *http2.WindowUpdateFrame:
		return true, c.windowUpdate(l, f)
	case *http2.PushPromiseFrame:
		return true, http2.ConnectionError(http2.ErrCodeProtocol) // neither side may push
	}
	return false, nil
}

// fromCaller handles a frame from the caller. An error ends the connection.
func (c *h2conn) fromCaller(fr http2.Frame) error {
	if ok, err := c.control(c.caller, fr); ok {
		return err
	}
	switch f := fr.(type) {
	case *http2.MetaHeadersFrame:
		return c.callerHeaders(f)
	case *http2.DataFrame:
		return c.callerData(f)
	case *http2.RSTStreamFrame:
		s := c.streams[f.StreamID]
		if s == nil {
			if err := c.calm(c.caller); err != nil {
				return err
			}
			break
		}
		c.reset(s, f.ErrCode, false, true)
	}
	return c.overflow(c.caller)
}

// calm counts a frame about the connection from l; the caller's beyond
// h2Calm in a second is a flood, answered with ENHANCE_YOUR_CALM.
func (c *h2conn) calm(l *h2leg) error {
	if l != c.caller {
		return nil
	}
	now := time.Now()
	if now.Sub(c.calmSince) >= time.Second {
		c.calmSince, c.calmFrames = now, 0
	}
	if c.calmFrames++; c.calmFrames > h2Calm {
		c.debug("h2c relay: a flood of frames about the connection", "frames", c.calmFrames)
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// overflow drops a peer that lets frames pile up unread.
func (c *h2conn) overflow(l *h2leg) error {
	if len(l.out) > h2OutHard {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

func (c *h2conn) callerHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if s := c.streams[id]; s != nil {
		// Trailers: they end the request.
		if s.req.gotEnd || !f.StreamEnded() {
			c.reset(s, http2.ErrCodeProtocol, true, true)
			return nil
		}
		s.req.gotEnd = true
		c.send(&s.req, h2item{head: true, fields: f.Fields, end: true})
		return nil
	}
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if id <= c.lastID {
		return nil // a stream already reset; its frames may still come
	}
	c.lastID = id
	if c.goAway || len(c.streams) >= h2MaxStreams {
		c.caller.rst(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s := &h2stream{id: id, start: time.Now()}
	s.callerAt = s.start
	if len(c.streams) == 0 {
		c.quietSince.Store(0)
	}
	s.req = h2half{s: s, from: c.caller, fromID: id, recvWin: h2Window, gotEnd: f.StreamEnded()}
	s.resp = h2half{s: s, to: c.caller, toID: id, window: c.caller.initWin}
	c.streams[id] = s
	switch {
	case f.Truncated:
		c.answer(s, 431, nil, "request header fields too large")
	case !validRequest(f):
		c.reset(s, http2.ErrCodeProtocol, true, false)
	case hasField(f.Fields, tunnel.ProbeHeader):
		c.answer(s, 204, []hpack.HeaderField{{Name: strings.ToLower(tunnel.ProbePodHeader), Value: c.f.pod}}, "")
	default:
		l, code, r := c.legFor(f)
		if l == nil && code == h2WaitLeg {
			// Its head waits, and its body behind it, for an HTTP/1.1
			// leg: one of the caller's comes free, or the budget has one.
			s.req.q = append(s.req.q, h2item{head: true, fields: f.Fields, end: f.StreamEnded()})
			c.h1wait = append(c.h1wait, h1waiter{s: s, r: r})
			return nil
		}
		if l == nil {
			c.reset(s, code, true, false)
			return nil
		}
		c.route(s, l)
		c.send(&s.req, h2item{head: true, fields: f.Fields, end: f.StreamEnded()})
	}
	return nil
}

// h2WaitLeg says a stream waits for an HTTP/1.1 leg (not an HTTP/2 code).
const h2WaitLeg http2.ErrCode = 1 << 31

// legFor picks the leg a request goes on, and the route it matched; nil,
// with the code to reset the stream with, if it cannot go on as HTTP/1.1
// where it must, or the caller holds as many connections as it may
// (h2WaitLeg: it waits for an HTTP/1.1 one).
func (c *h2conn) legFor(f *http2.MetaHeadersFrame) (*h2leg, http2.ErrCode, *liveRoute) {
	var r *liveRoute
	if c.f.table.any() {
		r = c.f.table.matchFields(f.Fields)
	}
	h1 := c.wantsH1(f.Fields)
	switch {
	case c.f.watches.Active() || r != nil && (r.All || r.Remote != "") || h1 && f.PseudoValue("method") == "CONNECT":
		return c.handlerLeg(), http2.ErrCodeRefusedStream, r
	case h1 && !h1Valid(f):
		return nil, http2.ErrCodeProtocol, r
	case h1 && len(c.h1wait) > 0:
		return nil, h2WaitLeg, r // behind those that wait already
	case h1:
		if l := c.h1Leg(r); l != nil {
			return l, 0, r
		}
		return nil, h2WaitLeg, r
	case r != nil:
		return c.devLeg(r), http2.ErrCodeRefusedStream, r
	}
	return c.appLeg(), http2.ErrCodeRefusedStream, r
}

// route points s at leg l.
func (c *h2conn) route(s *h2stream, l *h2leg) {
	s.req.to, s.resp.from = l, l
}

// validRequest applies HTTP/2's rules for a request's header fields that
// both ends would enforce: the pseudo-headers a request needs, and none of
// HTTP/1's connection-specific fields.
func validRequest(f *http2.MetaHeadersFrame) bool {
	method := f.PseudoValue("method")
	if method == "" || f.PseudoValue("status") != "" {
		return false
	}
	if method != "CONNECT" && (f.PseudoValue("path") == "" || f.PseudoValue("scheme") == "") {
		return false
	}
	for _, hf := range f.RegularFields() {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return false
		case "te":
			if hf.Value != "trailers" {
				return false
			}
		}
	}
	return true
}

func hasField(fields []hpack.HeaderField, name string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

func (c *h2conn) callerData(f *http2.DataFrame) error {
	n := int64(f.Length)
	l := c.caller
	if l.recvWin -= n; l.recvWin < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	s := c.streams[f.StreamID]
	if s != nil {
		s.got += n
		if n > 0 {
			s.callerAt = time.Now()
		}
	}
	if n == 0 && !f.StreamEnded() {
		if err := c.calm(l); err != nil {
			return err // empty DATA: nothing but work
		}
	}
	if s == nil || s.req.gotEnd {
		c.credit(l, n)
		if s == nil && f.StreamID > c.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if s != nil {
			c.reset(s, http2.ErrCodeStreamClosed, true, true)
		}
		return nil
	}
	return c.data(&s.req, f, n)
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
			return true
		}
		if h == &h.s.resp {
			h.s.answered = true
		}
		if it.end {
			h.sentEnd = true
			c.closed(h.s)
		}
		return true
	}
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

// closed forgets s once both its directions have ended.
func (c *h2conn) closed(s *h2stream) {
	if s.req.sentEnd && s.resp.sentEnd {
		c.forget(s)
		return
	}
	if s.resp.sentEnd && s.stopBody && !s.req.gotEnd {
		c.caller.rst(s.id, http2.ErrCodeNo)
		c.forget(s)
	}
}

// reset ends s before its time, telling the caller and the leg it went
// on as asked, and gives back the windows of what it still held.
func (c *h2conn) reset(s *h2stream, code http2.ErrCode, tellCaller, tellLeg bool) {
	if s.gone {
		return
	}
	if tellCaller {
		c.caller.rst(s.id, code)
	}
	if l := s.req.to; tellLeg && l != nil && !l.dead && s.req.toID != 0 {
		if l.h1 {
			c.drop(l) // HTTP/1.1 ends an exchange by closing
		} else {
			l.rst(s.req.toID, code)
		}
	}
	c.forget(s)
}

// forget drops s, giving back the connection windows of what it queued.
func (c *h2conn) forget(s *h2stream) {
	if s.gone {
		return
	}
	s.gone = true
	c.cond.Broadcast()
	for _, h := range []*h2half{&s.req, &s.resp} {
		for i := range h.q {
			if h.from != nil {
				c.credit(h.from, int64(len(h.q[i].data)))
			}
			h.q[i].release()
		}
		h.q = nil
	}
	delete(c.streams, s.id)
	if l := s.req.to; l != nil && s.req.toID != 0 && l.byID[s.req.toID] == s {
		delete(l.byID, s.req.toID)
		c.startWaiting(l)
		if l.goingAway && len(l.byID) == 0 {
			c.drop(l)
		}
	}
	if len(c.streams) == 0 {
		if c.goAway {
			c.finish()
		} else {
			c.idleSince = time.Now()
			c.quietSince.Store(c.idleSince.UnixNano())
		}
	}
}

// answer has the sidecar answer s itself.
func (c *h2conn) answer(s *h2stream, status int, extra []hpack.HeaderField, body string) {
	s.resp.from = nil
	c.dropBody(s)
	if s.gone {
		return
	}
	fields := append([]hpack.HeaderField{{Name: ":status", Value: fmt.Sprint(status)}}, extra...)
	if body != "" {
		fields = append(fields, hpack.HeaderField{Name: "content-type", Value: "text/plain; charset=utf-8"})
	}
	c.send(&s.resp, h2item{head: true, fields: fields, end: body == ""})
	if body != "" {
		c.send(&s.resp, h2item{data: []byte("intercept-proxy: " + body + "\n"), end: true})
	}
}

// dropBody stops passing s's request on: what it queued and what the
// caller still sends of it is dropped, its windows given back.
func (c *h2conn) dropBody(s *h2stream) {
	if l := s.req.to; l != nil && s.req.toID != 0 && l.byID[s.req.toID] == s {
		delete(l.byID, s.req.toID)
	}
	s.req.to, s.req.toID = nil, 0
	c.pump(&s.req)
	c.closed(s)
}

func (c *h2conn) debug(msg string, args ...any) {
	if c.f.log != nil && !c.done {
		c.f.log.Debug(msg, args...)
	}
}

// streamError resets a stream the framer found broken.
func (c *h2conn) streamError(id uint32, code http2.ErrCode) {
	if s := c.streams[id]; s != nil {
		c.reset(s, code, true, true)
		return
	}
	c.lastID = max(c.lastID, id)
	c.caller.rst(id, code)
}

func (c *h2conn) settingsFrom(l *h2leg, f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// A frame may carry a setting many times; the last value counts,
	// and the streams' windows move once per frame, not per entry.
	initWin := l.initWin
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			initWin = int64(s.Val)
		case http2.SettingMaxFrameSize:
			l.maxFrame = int(s.Val)
		case http2.SettingMaxConcurrentStreams:
			l.maxStreams = int(min(s.Val, 1<<16))
		case http2.SettingHeaderTableSize:
			l.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	delta := initWin - l.initWin
	l.initWin = initWin
	if delta != 0 {
		for _, h := range c.sendingOn(l) {
			if h.window += delta; h.window > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
	}
	l.settingsAck()
	if delta > 0 {
		c.unblock(l)
	}
	if l != c.caller {
		c.startWaiting(l)
	}
	return nil
}

// sendingOn returns the halves that send on l.
func (c *h2conn) sendingOn(l *h2leg) []*h2half {
	var hs []*h2half
	if l == c.caller {
		for _, s := range c.streams {
			hs = append(hs, &s.resp)
		}
		return hs
	}
	for _, s := range l.byID {
		hs = append(hs, &s.req)
	}
	return hs
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

// appLeg returns the caller's connection to the app, dialing one if there
// is none that takes new streams.
func (c *h2conn) appLeg() *h2leg {
	if c.app == nil || c.app.dead || c.app.goingAway {
		l := c.dialLeg("the app", nil, false, c.f.dialApp)
		if l == nil {
			return nil
		}
		c.app = l
	}
	return c.app
}

// devLeg returns the caller's connection through r's tunnel.
func (c *h2conn) devLeg(r *liveRoute) *h2leg {
	l := c.devs[r]
	if l == nil || l.dead || l.goingAway {
		l = c.dialLeg("the developer of "+r.String(), r, false, r.dialFast)
		if l == nil {
			return nil
		}
		c.devs[r] = l
	}
	return l
}

// handlerLeg returns the caller's in-memory connection to net/http, for
// what the relay does not take itself.
func (c *h2conn) handlerLeg() *h2leg {
	if c.handler == nil || c.handler.dead || c.handler.goingAway {
		l := c.dialLeg("the sidecar's handler", nil, false, func(context.Context) (net.Conn, error) {
			a, b := net.Pipe()
			c.f.toHTTP(b)
			return a, nil
		})
		if l == nil {
			return nil
		}
		c.handler = l
	}
	return c.handler
}

// mayDial reports whether the caller may have one more leg: its first is
// its own, further ones are drawn from the budget, and no caller has more
// than h2MaxLegs. paid says the leg was drawn.
func (c *h2conn) mayDial() (ok, paid bool) {
	switch {
	case c.dialed == 0:
		return true, false
	case c.dialed >= h2MaxLegs:
		return false, false
	case c.f.budget == nil:
		return true, false
	}
	ok = c.f.budget.takeLeg()
	return ok, ok
}

// dialLeg starts a leg; its streams wait until it is up. nil: the caller
// holds as many legs as it may.
func (c *h2conn) dialLeg(name string, r *liveRoute, h1 bool, dial func(context.Context) (net.Conn, error)) *h2leg {
	ok, paid := c.mayDial()
	if !ok {
		return nil
	}
	c.dialed++
	l := c.newLeg(name, r, h1)
	l.dialedLeg, l.paid = true, paid
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		conn, err := dial(ctx)
		cancel()
		c.mu.Lock()
		if err != nil || c.done {
			if err == nil {
				conn.Close()
				err = net.ErrClosed
			}
			c.legFailed(l, err)
			c.mu.Unlock()
			c.flush()
			return
		}
		l.conn, l.ready = conn, true
		if h1 {
			l.br = bufio.NewReaderSize(flushFirst{conn, c}, h1ReadBuf)
			c.startWaiting(l)
			c.mu.Unlock()
			c.flush()
			c.readH1(l)
			return
		}
		l.room()
		l.out = append(l.out, http2.ClientPreface...)
		l.settings(http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2Window})
		l.br = bufio.NewReaderSize(conn, 4*h2Frame)
		l.fr = newH2Framer(l.br, h2MaxResponseHeaders)
		c.startWaiting(l)
		c.mu.Unlock()
		c.flush()
		c.readLeg(l)
	}()
	return l
}

// readLeg handles the frames of one of the relay's own connections.
func (c *h2conn) readLeg(l *h2leg) {
	for {
		fr, err := l.fr.ReadFrame()
		c.mu.Lock()
		if err == nil {
			err = c.fromLeg(l, fr)
		}
		if err != nil {
			var ce http2.ConnectionError
			switch {
			case errors.Is(err, io.EOF):
				err = fmt.Errorf("%s closed the connection", l.name)
			case errors.As(err, &ce):
				err = fmt.Errorf("%s broke HTTP/2: %w", l.name, err)
			default:
				err = fmt.Errorf("reading from %s: %w", l.name, err)
			}
			c.legFailed(l, err)
			c.mu.Unlock()
			c.flush()
			return
		}
		more := frameBuffered(l.br)
		c.mu.Unlock()
		if !more {
			c.flush()
		}
	}
}

// fromLeg handles a frame from the app, a developer, or net/http.
func (c *h2conn) fromLeg(l *h2leg, fr http2.Frame) error {
	if ok, err := c.control(l, fr); ok {
		return err
	}
	switch f := fr.(type) {
	case *http2.MetaHeadersFrame:
		s := l.byID[f.StreamID]
		if s == nil {
			return nil
		}
		if s.resp.gotEnd {
			c.reset(s, http2.ErrCodeProtocol, true, true)
			return nil
		}
		s.resp.gotEnd = f.StreamEnded()
		c.send(&s.resp, h2item{head: true, fields: f.Fields, end: f.StreamEnded()})
	case *http2.DataFrame:
		n := int64(f.Length)
		if l.recvWin -= n; l.recvWin < 0 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		s := l.byID[f.StreamID]
		if s == nil || s.resp.gotEnd || !s.answered && len(s.resp.q) == 0 {
			c.credit(l, n)
			if s != nil {
				c.reset(s, http2.ErrCodeProtocol, true, true)
			}
			return nil
		}
		return c.data(&s.resp, f, n)
	case *http2.RSTStreamFrame:
		s := l.byID[f.StreamID]
		if s == nil {
			return nil
		}
		if f.ErrCode == http2.ErrCodeNo && s.resp.gotEnd {
			// The whole answer came: the body the caller still sends is
			// not wanted. The caller hears so once it has the answer.
			s.stopBody = true
			delete(l.byID, s.req.toID)
			c.dropBody(s)
			c.startWaiting(l)
			return nil
		}
		c.reset(s, f.ErrCode, true, false)
	case *http2.GoAwayFrame:
		c.goneAway(l, f.LastStreamID)
	}
	return c.overflow(l)
}

// goneAway handles l's GOAWAY: streams it never took are refused to the
// caller (who may send them again), those waiting go on a new leg.
func (c *h2conn) goneAway(l *h2leg, last uint32) {
	l.goingAway = true
	for id, s := range l.byID {
		if id > last {
			c.reset(s, http2.ErrCodeRefusedStream, true, false)
		}
	}
	w := l.waiting
	l.waiting = nil
	for _, s := range w {
		s.waiting = false
		if s.gone {
			continue
		}
		var next *h2leg
		switch {
		case l.route != nil:
			next = c.devLeg(l.route)
		case l == c.handler:
			next = c.handlerLeg()
		default:
			next = c.appLeg()
		}
		if next == nil {
			c.reset(s, http2.ErrCodeRefusedStream, true, false)
			continue
		}
		c.route(s, next)
		c.pump(&s.req)
	}
	if len(l.byID) == 0 {
		c.drop(l)
	}
}

// legFailed ends leg l after err: a stream not yet sent through a
// developer's tunnel goes to the app (the developer left a moment ago);
// one without an answer gets a 502 saying why; any other is reset.
func (c *h2conn) legFailed(l *h2leg, err error) {
	if l.dead {
		return
	}
	if l == c.caller {
		c.finish()
		return
	}
	c.debug("h2c relay: a connection ended", "to", l.name, "err", err)
	c.drop(l)
	var affected []*h2stream
	for _, s := range l.byID {
		affected = append(affected, s)
	}
	affected = append(affected, l.waiting...)
	l.byID, l.waiting = map[uint32]*h2stream{}, nil
	for _, s := range affected {
		s.waiting = false
		switch {
		case s.gone:
		case l.route != nil && s.req.toID == 0:
			c.debug("tunnel gone, stream goes to the app", "route", l.route.String(), "err", err)
			next := c.appLeg()
			if l.h1 {
				next = c.h1Leg(nil)
			}
			if next == nil {
				c.reset(s, http2.ErrCodeRefusedStream, true, false)
				continue
			}
			c.route(s, next)
			c.pump(&s.req)
		case s.resp.gotEnd:
			// The whole answer came; only the body still to send is lost.
			c.dropBody(s)
		case !s.answered:
			c.answer(s, 502, nil, err.Error())
		default:
			c.reset(s, http2.ErrCodeInternal, true, false)
		}
	}
}

// drop closes leg l and forgets it.
func (c *h2conn) drop(l *h2leg) {
	if l.dead {
		return
	}
	l.dead = true
	if l.conn != nil {
		l.conn.Close()
	}
	c.giveWindow(l)
	if l.dialedLeg {
		c.dialed--
		if l.paid {
			c.f.budget.giveLeg()
		}
		defer c.h1Next()
	}
	for i, x := range c.legs {
		if x == l {
			c.legs = append(c.legs[:i], c.legs[i+1:]...)
			break
		}
	}
	if l.route != nil && c.devs[l.route] == l {
		delete(c.devs, l.route)
	}
}

// finish closes the caller's connection and every leg.
func (c *h2conn) finish() {
	if c.done {
		return
	}
	c.done = true
	c.cancel()
	c.cond.Broadcast()
	for _, l := range append([]*h2leg(nil), c.legs...) {
		if l != c.caller || !c.caller.writing && len(c.caller.out) == 0 {
			c.drop(l)
		}
	}
}

// drain sends GOAWAY: streams open finish, new ones are refused, and the
// connection closes when the last ends.
func (c *h2conn) drain() {
	c.mu.Lock()
	if !c.goAway && !c.done {
		c.goAway = true
		c.caller.goAwayFrame(c.lastID, http2.ErrCodeNo)
		if len(c.streams) == 0 {
			c.finish()
		}
	}
	c.mu.Unlock()
	c.flush()
}

// idleClose ends a connection that has had no stream for the idle timeout,
// resets the streams that do not keep the caller's pace, and looks again
// a tick later.
func (c *h2conn) idleClose() {
	c.mu.Lock()
	left := c.f.h2Idle() - time.Since(c.idleSince)
	idle := len(c.streams) == 0 && !c.done && left <= 0
	slow := false
	if !idle && !c.done {
		slow = c.resetSlow(time.Now())
		left = min(max(left, 0), c.f.h2Tick())
		if len(c.streams) > 0 || left <= 0 {
			left = c.f.h2Tick()
		}
		c.idle.Reset(left)
	}
	c.mu.Unlock()
	if slow {
		c.flush()
	}
	if idle {
		c.drain()
	}
}

// resetSlow resets the streams that hold (or wait for) an HTTP/1.1 leg and
// whose caller does not keep the pace: a request body that stalls or falls
// below the minimum rate, or a response the caller gives no window for. A
// stream that waits for the app or a developer waits as long as they take.
func (c *h2conn) resetSlow(now time.Time) bool {
	p := c.f.pace
	if p.idle <= 0 {
		return false
	}
	reset := false
	for _, s := range c.streams {
		if l := s.req.to; l != nil && !l.h1 {
			// A stream that stays HTTP/2 holds no connection of its own,
			// only what its windows allow: a gRPC stream may stay open
			// and quiet for as long as its caller likes.
			continue
		}
		// A caller whose windows let it send, and that does not, is
		// slow; one that the relay holds back (its leg busy or full) is
		// not the caller's to hurry.
		sending := !s.req.gotEnd && s.req.recvWin > 0 && c.caller.recvWin > 0
		starved := s.resp.isBlocked && s.resp.to == c.caller
		if !sending && !starved {
			continue
		}
		last := s.callerAt
		if starved && c.callerWin.After(last) {
			last = c.callerWin
		}
		over := now.After(last.Add(p.idle))
		if sending && !over {
			over = now.After(p.readBy(s.start, last, s.got))
		}
		if over {
			c.debug("h2c relay: a stream's caller did not keep up", "stream", s.id)
			c.reset(s, http2.ErrCodeCancel, true, true)
			reset = true
		}
	}
	return reset
}

// flush writes what every leg has queued, one write per leg at a time;
// the goroutine that finds a leg not being written writes it.
func (c *h2conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		l := c.nextToWrite()
		if l == nil {
			if c.done && !c.caller.dead && !c.caller.writing {
				c.drop(c.caller)
			}
			return
		}
		l.writing = true
		b := l.out
		l.out = nil
		c.mu.Unlock()
		l.conn.SetWriteDeadline(time.Now().Add(h2WriteTimeout))
		_, err := l.conn.Write(b)
		c.mu.Lock()
		l.writing = false
		if cap(b) <= 2*h2OutHard {
			b = b[:0]
			outPool.Put(&b)
		}
		if err != nil {
			c.legFailed(l, fmt.Errorf("writing to %s: %w", l.name, err))
			continue
		}
		if len(l.blocked) > 0 {
			c.unblock(l)
		}
	}
}

// nextToWrite takes from c.pending a leg with frames to write that no
// goroutine is writing; one being written stays, for its writer's next
// turn.
func (c *h2conn) nextToWrite() *h2leg {
	for i := 0; i < len(c.pending); {
		l := c.pending[i]
		if l.writing || !l.ready && !l.dead {
			i++
			continue
		}
		c.pending = append(c.pending[:i], c.pending[i+1:]...)
		l.queued = false
		if len(l.out) > 0 && !l.dead {
			return l
		}
	}
	return nil
}

// h2Idle is how long an h2c connection may go without a stream.
func (f *fastPath) h2Idle() time.Duration {
	if f.idleTimeout > 0 {
		return f.idleTimeout
	}
	return 30 * time.Second
}

// h2Tick is how often an h2c connection checks its idleness and its
// streams' pace.
func (f *fastPath) h2Tick() time.Duration {
	return min(f.h2Idle(), 5*time.Second)
}

// Frames, appended to a leg's queue (the relay's lock held).

func (l *h2leg) frame(t http2.FrameType, flags http2.Flags, id uint32, payload ...[]byte) {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	l.room()
	l.out = append(l.out, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
	for _, p := range payload {
		l.out = append(l.out, p...)
	}
}

func (l *h2leg) dataFrame(id uint32, p []byte, end bool) {
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	l.frame(http2.FrameData, flags, id, p)
}

// headers encodes fields for l and writes them as HEADERS and as many
// CONTINUATION frames as l's frame size needs.
func (l *h2leg) headers(id uint32, fields []hpack.HeaderField, end bool) {
	l.hbuf.Reset()
	for _, f := range fields {
		l.enc.WriteField(f)
	}
	block := l.hbuf.Bytes()
	t, flags := http2.FrameHeaders, http2.Flags(0)
	if end {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), l.maxFrame)
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		l.frame(t, flags, id, block[:n])
		block = block[n:]
		if len(block) == 0 {
			return
		}
		t, flags = http2.FrameContinuation, 0
	}
}

func (l *h2leg) windowUpdate(id uint32, n int64) {
	l.frame(http2.FrameWindowUpdate, 0, id, []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func (l *h2leg) rst(id uint32, code http2.ErrCode) {
	l.frame(http2.FrameRSTStream, 0, id, []byte{byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)})
}

func (l *h2leg) settings(ss ...http2.Setting) {
	p := make([]byte, 0, 6*len(ss))
	for _, s := range ss {
		p = append(p, byte(s.ID>>8), byte(s.ID), byte(s.Val>>24), byte(s.Val>>16), byte(s.Val>>8), byte(s.Val))
	}
	l.frame(http2.FrameSettings, 0, 0, p)
}

func (l *h2leg) settingsAck() { l.frame(http2.FrameSettings, http2.FlagSettingsAck, 0) }

func (l *h2leg) ping(data [8]byte) { l.frame(http2.FramePing, http2.FlagPingAck, 0, data[:]) }

func (l *h2leg) goAwayFrame(last uint32, code http2.ErrCode) {
	l.frame(http2.FrameGoAway, 0, 0, []byte{byte(last>>24) & 0x7f, byte(last >> 16), byte(last >> 8), byte(last),
		byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)})
}
