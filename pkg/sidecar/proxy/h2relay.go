package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The sidecar relays HTTP/2 (prior knowledge) stream by stream instead of
// ending it in an HTTP/2 server and starting it again in a client. On a
// port that speaks h2c (appProtocol h2c), and for gRPC on any port, a
// stream stays HTTP/2 frame by frame: each caller's connection gets a
// connection of its own to the app, opened with its first such stream, and
// one through the tunnel of each developer one of its streams goes to. Any
// other stream goes on as HTTP/1.1 (h2relay_h1.go). A stream keeps its frames: its
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

	// An HTTP/1.1 leg (h2relay_h1.go) carries one stream at a time, cur, whose
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

	first := c.handshake(fc)
	if first == nil {
		return
	}
	c.readCaller(fc, first)
}

// handshake reads the caller's preface, sends the relay's settings, and
// returns the caller's first frame, its SETTINGS; nil if the caller broke
// the protocol or was too slow (the header timeout).
func (c *h2conn) handshake(fc *fastConn) http2.Frame {
	fc.c.SetReadDeadline(time.Now().Add(c.f.headerTimeout))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(fc.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		return nil
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
		return nil
	}
	fc.c.SetReadDeadline(time.Time{})
	return first
}

// readCaller handles the caller's frames, from first on, until its
// connection ends or breaks the protocol; a broken stream is reset and the
// connection goes on.
func (c *h2conn) readCaller(fc *fastConn, first http2.Frame) {
	for fr := first; ; {
		c.mu.Lock()
		err := c.fromCaller(fr)
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

// fail ends the connection with GOAWAY code.
func (c *h2conn) fail(code http2.ErrCode) {
	c.mu.Lock()
	c.caller.goAwayFrame(c.lastID, code)
	c.mu.Unlock()
	c.flush()
}

func (c *h2conn) debug(msg string, args ...any) {
	if c.f.log != nil && !c.done {
		c.f.log.Debug(msg, args...)
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
	// What streams still queue goes back to its pools (and out of
	// h2Held); a frame a leg's reader had already read is dropped.
	for _, s := range c.streams {
		s.gone = true
		c.dropQueues(s, false)
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
