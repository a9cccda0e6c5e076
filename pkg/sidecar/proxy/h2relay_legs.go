package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The relay's legs: the HTTP/2 connections it opens for a caller's
// streams (to the app, a developer, or net/http), within the caller's and
// the budget's bounds, and what becomes of their streams when one ends.

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
