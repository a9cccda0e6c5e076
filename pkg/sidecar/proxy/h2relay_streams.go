package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The relay's stream routing: a caller's new stream is checked, matched to
// a route and sent on the leg for it; frames from either side follow their
// stream; a stream ends, is reset, or is answered by the sidecar itself.

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
	case hasField(f.Fields, wire.ProbeHeader):
		c.answer(s, 204, []hpack.HeaderField{{Name: strings.ToLower(wire.ProbePodHeader), Value: c.f.pod}}, "")
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
	case c.f.watches.Active() || r != nil && (r.whole || r.Remote != "") || h1 && f.PseudoValue("method") == "CONNECT" ||
		c.f.table.tapsFields(f.Fields): // a wiretap's requests are copied on net/http's path
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
	c.dropQueues(s, true)
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

// dropQueues lets go of what s's halves still queue, giving their senders
// the windows back if credit.
func (c *h2conn) dropQueues(s *h2stream, credit bool) {
	for _, h := range []*h2half{&s.req, &s.resp} {
		for i := range h.q {
			if credit && h.from != nil {
				c.credit(h.from, int64(len(h.q[i].data)))
			}
			h.q[i].release()
		}
		h.q = nil
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

// streamError resets a stream the framer found broken.
func (c *h2conn) streamError(id uint32, code http2.ErrCode) {
	if s := c.streams[id]; s != nil {
		c.reset(s, code, true, true)
		return
	}
	c.lastID = max(c.lastID, id)
	c.caller.rst(id, code)
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
