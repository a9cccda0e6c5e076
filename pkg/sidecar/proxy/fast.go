package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The fast path serves HTTP/1.1 requests without net/http: it reads a
// request's head, checks it, decides the route, and writes the head on byte
// for byte, to the app or through the developer's tunnel, then passes the
// body and the response through with their own framing (read in
// http1.go). Each side sees what the caller sent, header case, order and
// duplicates included, and the sidecar does no per-request work beyond two
// scans of the head (one while no developer is live).
//
// A request a wiretap matches stays here too: the exchange is teed as it
// is relayed (wiretap_raw.go).
//
// An HTTP/2 connection goes to the relay (h2relay.go). Anything else
// (HTTP/1.0, h2c by upgrade, upgrades, CONNECT, Expect: 100-continue,
// an odd Transfer-Encoding, a request for a remote endpoint or an --all
// route, the probe, a doctor's watch) goes to net/http with the bytes read
// so far: the connection is handed over and stays with net/http from then
// on.

// fastHeadMax bounds a head the fast path reads; larger heads go to
// net/http, which allows up to MaxHeaderBytes.
const fastHeadMax = 32 << 10

// errNotFast sends a connection to net/http.
var errNotFast = errors.New("not for the fast path")

// fastPath serves HTTP/1.1 connections whose requests go to the app.
type fastPath struct {
	table    *Table
	watches  *Watches
	upstream string
	// dial reaches the app instead of TCP to upstream (a test's app in
	// memory); nil in the sidecar.
	dial          func(context.Context) (net.Conn, error)
	headerTimeout time.Duration
	log           *slog.Logger
	// handoff gives a connection to net/http.
	handoff func(net.Conn)
	// done is told when a connection the fast path kept is closed.
	done func()
	// HTTP/2 connections (prior knowledge) are relayed stream by stream
	// (h2relay.go): h2c says the port speaks h2c, toHTTP gives net/http an
	// in-memory HTTP/2 connection for the streams the relay does not take,
	// pod names this pod in probe answers, and idleTimeout closes a
	// connection without streams.
	h2c         bool
	toHTTP      func(net.Conn)
	pod         string
	idleTimeout time.Duration
	// budget is the sidecar's, shared with its other ports; pace is what
	// a caller must keep up (pace.go).
	budget *Budget
	pace   pace

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*fastConn]struct{} // open connections, for a drain
	wg       sync.WaitGroup
}

type fastConn struct {
	c  net.Conn
	br *bufio.Reader
	// Kept connections for the caller's requests: one to the app, and one
	// through the tunnel of the developer its last matching request went to.
	app, dev upstream
	// idle: waiting for the next request's head, which a drain cuts short.
	idle atomic.Bool
	// wait is waitingHead while the connection waits for a head (idle
	// between requests, or in an unfinished one) since the time in since (unix
	// nanoseconds); a budget that needs room may then make it evicted.
	// body is the pacer of a request body being read, whose stall may
	// likewise make room.
	wait  atomic.Int32
	since atomic.Int64
	body  atomic.Pointer[pacer]
	// h2 is the relay of an h2c connection, which a drain sends GOAWAY.
	h2 *h2conn
	// tap is the copy being made of the exchange in progress, for the
	// wiretaps that match it; nil for most.
	tap *fastTap
}

// A fast connection's wait states.
const (
	busy int32 = iota
	waitingHead
	evicted
)

// serve runs one caller's connection.
func (f *fastPath) serve(c net.Conn) {
	f.wg.Add(1)
	defer f.wg.Done()
	c = fastIO(c)
	if pc := pacedOf(c); pc != nil && f.pace.idle > 0 {
		pc.w = newPacer(f.pace, time.Now())
	}
	fc := &fastConn{c: c, br: bufio.NewReaderSize(c, fastHeadMax)}
	f.track(fc, true)
	handed, served := false, 0
	defer func() {
		f.track(fc, false)
		fc.app.drop()
		fc.dev.drop()
		if !handed {
			c.Close()
			if f.done != nil {
				f.done()
			}
		}
	}()
	for {
		// The deadline first: a drain that finds the connection idle
		// moves it to now, and that must stick.
		now := time.Now()
		c.SetReadDeadline(now.Add(f.headerTimeout))
		fc.idle.Store(true)
		fc.since.Store(now.UnixNano())
		fc.wait.Store(waitingHead)
		if f.draining.Load() && served > 0 {
			return
		}
		req, to, taps, err := f.readHead(fc.br)
		c.SetReadDeadline(time.Time{})
		fc.idle.Store(false)
		if !fc.wait.CompareAndSwap(waitingHead, busy) {
			return // closed to make room for another caller
		}
		if errors.Is(err, errNotFast) && isH2Preface(fc.br) {
			f.serveH2(fc)
			return
		}
		if errors.Is(err, errNotFast) {
			var give func()
			if fc.br.Buffered() >= fc.br.Size() {
				// A head larger than the fast path's buffer: net/http
				// reads the rest, within the sidecar's budget of them.
				if !f.budget.takeHead() {
					writeStatus(c, "431 Request Header Fields Too Large", "the sidecar is reading as many large request heads as it may; send a smaller head or try again")
					return
				}
				give = f.budget.giveHead
			}
			handed = true
			f.handoff(forHTTP(c, fc.br, give))
			return
		}
		if err != nil {
			return // the caller left, was too slow, or sent nothing at all
		}
		served++
		if taps = withRoom(tapsOf(to, taps)); len(taps) > 0 {
			fc.tap = newFastTap(taps, req, &f.table.tapBounds)
		}
		keep, err := f.forward(fc, req, to)
		if fc.tap != nil {
			fc.tap.finish()
			fc.tap = nil
		}
		if err != nil {
			f.log.Debug("fast path", "err", err)
		}
		if !keep || err != nil {
			return
		}
	}
}

// track adds or removes an open connection; once per connection, so the
// per-request path takes no lock.
func (f *fastPath) track(fc *fastConn, open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		f.conns = map[*fastConn]struct{}{}
	}
	if open {
		f.conns[fc] = struct{}{}
	} else {
		delete(f.conns, fc)
	}
}

// drain makes every connection close after its current request, closes
// the idle ones at once, and waits until all are gone or ctx ends.
func (f *fastPath) drain(ctx context.Context) {
	f.draining.Store(true)
	f.mu.Lock()
	for fc := range f.conns {
		if fc.h2 != nil {
			go fc.h2.drain()
			continue
		}
		if fc.idle.Load() {
			// Wake the read of the next head; the loop sees draining.
			fc.c.SetReadDeadline(time.Now())
		}
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// readHead peeks at the next request's head and returns it, with the route
// it matches (nil: the app) and the wiretaps it matches, if the fast path
// can take the request; errNotFast if net/http must; another error if the
// connection is done.
func (f *fastPath) readHead(br *bufio.Reader) (fastRequest, *liveRoute, []*tapRoute, error) {
	head, err := peekHead(br)
	if err != nil {
		return fastRequest{}, nil, nil, err
	}
	req, ok := parseRequestHead(head)
	if !ok || f.watches.Active() {
		return fastRequest{}, nil, nil, errNotFast
	}
	taps := f.table.tapsHead(head)
	if !f.table.any() {
		return req, nil, taps, nil
	}
	to := f.table.matchHead(head)
	if to != nil && (to.whole || to.Remote != "") {
		// An --all route takes new connections whole (one narrowed by path
		// or method takes requests here); a remote endpoint needs HTTPS
		// and the route's secret.
		return fastRequest{}, nil, nil, errNotFast
	}
	return req, to, taps, nil
}

// peekHead returns the bytes up to and including the blank line that ends
// a head, without consuming them. A head that does not fit the buffer is
// errNotFast.
func peekHead(br *bufio.Reader) ([]byte, error) {
	n := 1
	for {
		buf, err := br.Peek(n)
		if err != nil {
			if len(buf) > 0 && errors.Is(err, bufio.ErrBufferFull) {
				return nil, errNotFast
			}
			if len(buf) > 0 && len(buf) == br.Buffered() {
				// Partial head then EOF: let net/http answer it.
				return nil, errNotFast
			}
			return nil, err
		}
		buf, _ = br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) >= br.Size() {
			return nil, errNotFast
		}
		n = len(buf) + 1
	}
}

// stallBeforeEvict is how long a body must have made no progress before
// its connection may be closed to make room for another caller.
const stallBeforeEvict = 3 * time.Second

// oldestWaiting returns the connection of the fast path (and the relay)
// that has waited longest for its caller: for a head, between requests
// or within one, for a stalled body, or an HTTP/2 connection without a
// stream; and a function that closes it, false if it got busy meanwhile.
func (f *fastPath) oldestWaiting() (time.Time, func() bool) {
	now := time.Now()
	var since time.Time
	var best *fastConn
	var kind int32
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		var t time.Time
		var k int32
		switch {
		case fc.h2 != nil:
			q := fc.h2.quietSince.Load()
			if q == 0 {
				continue
			}
			t, k = time.Unix(0, q), 3
		case fc.wait.Load() == waitingHead:
			t, k = time.Unix(0, fc.since.Load()), waitingHead
		default:
			p := fc.body.Load()
			if p == nil || now.Sub(p.stalledSince()) < stallBeforeEvict {
				continue
			}
			t, k = p.stalledSince(), 4
		}
		if best == nil || t.Before(since) {
			best, since, kind = fc, t, k
		}
	}
	if best == nil {
		return time.Time{}, nil
	}
	fc := best
	return since, func() bool {
		switch kind {
		case 3:
			q := fc.h2.quietSince.Load()
			if q == 0 || !fc.h2.quietSince.CompareAndSwap(q, 0) {
				return false
			}
			go fc.h2.drain()
		case waitingHead:
			if !fc.wait.CompareAndSwap(waitingHead, evicted) {
				return false
			}
			fc.c.SetReadDeadline(time.Now()) // wakes the head's read
		default:
			if fc.body.Load() == nil {
				return false
			}
			fc.c.Close()
		}
		return true
	}
}
