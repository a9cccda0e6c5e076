package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// On a port that does not speak h2c, an HTTP/2 stream that is not gRPC
// goes on to the app (or the developer) as an HTTP/1.1 request, which every
// HTTP server speaks: the relay writes the request's head from its header
// fields, its DATA as the body (chunked when no Content-Length was given),
// and reads the response head and body back into HEADERS and DATA. Each
// such exchange has an HTTP/1.1 connection of its own (an "h1 leg"), kept
// for the caller's next stream when both ends allow it.

// h1Idle bounds the HTTP/1.1 connections a caller's connection keeps idle
// per destination; h1Max, those it has at all (open, dialing or idle), so
// a caller that opens and resets streams without end cannot make the
// relay dial without end, nor one caller hold the app's connections:
// streams beyond wait for one (h1Next).
const (
	h1Idle = 4
	h1Max  = h2MaxLegs
)

// h1ReadBuf is an HTTP/1.1 leg's read buffer: room for a usual response
// head. A leg holds it for as long as it lives, idle or waiting for the
// app, so it is small; a larger head gets a buffer of fastHeadMax, and a
// body goes through a pooled buffer while it is read.
const h1ReadBuf = 4 << 10

// errH1Gone stops reading a response whose stream the caller reset.
var errH1Gone = errors.New("the stream was reset")

// h1waiter is a stream waiting for an HTTP/1.1 leg to r (nil: the app).
type h1waiter struct {
	s *h2stream
	r *liveRoute
}

// wantsH1 reports whether a stream with these fields goes on as HTTP/1.1.
func (c *h2conn) wantsH1(fields []hpack.HeaderField) bool {
	if c.f.h2c {
		return false
	}
	for _, f := range fields {
		if f.Name == "content-type" && strings.HasPrefix(f.Value, "application/grpc") {
			return false // gRPC needs HTTP/2's trailers and full duplex
		}
	}
	return true
}

// h1Leg returns an idle HTTP/1.1 connection to r's developer (nil: the
// app), or dials one.
func (c *h2conn) h1Leg(r *liveRoute) *h2leg {
	idle := c.h1idle[r]
	for len(idle) > 0 {
		l := idle[len(idle)-1]
		idle = idle[:len(idle)-1]
		c.h1idle[r] = idle
		if !l.dead {
			l.idle = false
			return l
		}
	}
	if (c.h1legs() >= h1Max || c.dialed >= h2MaxLegs) && !c.h1DropIdle() {
		return nil
	}
	name, dial := "the app", c.f.dialApp
	if r != nil {
		name, dial = "the developer of "+r.String(), r.dialFast
	}
	return c.dialLeg(name, r, true, dial)
}

// h1legs counts the HTTP/1.1 connections open or dialing.
func (c *h2conn) h1legs() int {
	n := 0
	for _, l := range c.legs {
		if l.h1 {
			n++
		}
	}
	return n
}

// h1DropIdle closes one idle HTTP/1.1 connection, to any destination.
func (c *h2conn) h1DropIdle() bool {
	for r, idle := range c.h1idle {
		for len(idle) > 0 {
			l := idle[len(idle)-1]
			idle = idle[:len(idle)-1]
			c.h1idle[r] = idle
			if !l.dead {
				c.drop(l)
				return true
			}
		}
	}
	return false
}

// h1Release puts l back among the idle connections after s (nil: none), or
// closes it.
func (c *h2conn) h1Release(l *h2leg, s *h2stream, keep bool) {
	if s != nil && l.byID[s.req.toID] == s {
		delete(l.byID, s.req.toID)
	}
	l.cur, l.requested = nil, false
	if !keep || l.dead || c.done || len(c.h1idle[l.route]) >= h1Idle {
		c.drop(l)
		return
	}
	if s != nil {
		l.served++
	}
	l.idle = true
	c.h1idle[l.route] = append(c.h1idle[l.route], l)
	c.h1Next()
}

// h1Next gives the streams waiting for an HTTP/1.1 leg the legs there are
// room for, in the order they came.
func (c *h2conn) h1Next() {
	if c.inH1Next {
		return // the loop below looks again
	}
	c.inH1Next = true
	defer func() { c.inH1Next = false }()
	for len(c.h1wait) > 0 && !c.done {
		w := c.h1wait[0]
		if w.s.gone {
			c.h1wait[0] = h1waiter{}
			c.h1wait = c.h1wait[1:]
			continue
		}
		l := c.h1Leg(w.r)
		if l == nil {
			return
		}
		c.h1wait[0] = h1waiter{}
		c.h1wait = c.h1wait[1:]
		c.route(w.s, l)
		c.pump(&w.s.req)
	}
	if len(c.h1wait) == 0 {
		c.h1wait = nil
	}
}

// h1Request writes a request's head for fields, as HTTP/1.1.
func (l *h2leg) h1Request(s *h2stream, fields []hpack.HeaderField, end bool) {
	var method, path, authority, host string
	var cookies []string
	length := int64(-1)
	for _, f := range fields {
		switch f.Name {
		case ":method":
			method = f.Value
		case ":path":
			path = f.Value
		case ":authority":
			authority = f.Value
		case "host":
			host = f.Value
		case "cookie":
			cookies = append(cookies, f.Value)
		case "content-length":
			length, _ = strconv.ParseInt(f.Value, 10, 64) // checked by h1Valid
		}
	}
	if authority == "" {
		authority = host
	}
	l.room()
	b := append(l.out, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, authority...)
	b = append(b, "\r\n"...)
	if len(cookies) > 0 {
		b = append(b, "cookie: "...)
		b = append(b, strings.Join(cookies, "; ")...)
		b = append(b, "\r\n"...)
	}
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") || f.Name == "host" || f.Name == "cookie" || f.Name == "te" {
			continue
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	l.chunked, l.bodyLeft = false, max(length, 0)
	switch {
	case length >= 0:
	case end:
		if method == "POST" || method == "PUT" || method == "PATCH" {
			b = append(b, "content-length: 0\r\n"...)
		}
	default:
		b = append(b, "transfer-encoding: chunked\r\n"...)
		l.chunked = true
	}
	l.out = append(b, "\r\n"...)
	l.requested = true
	s.isHead = method == "HEAD"
}

// h1Trailers ends a chunked body with the caller's trailers; a body of
// given length has no room for them, and must be whole (false if not).
func (l *h2leg) h1Trailers(fields []hpack.HeaderField) bool {
	if !l.chunked {
		return l.bodyLeft == 0
	}
	l.room()
	b := append(l.out, "0\r\n"...)
	for _, f := range fields {
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	l.out = append(b, "\r\n"...)
	l.chunked = false
	return true
}

// h1Body writes a piece of the request's body; false if it is more than
// the request's Content-Length, or the body ends short of it.
func (l *h2leg) h1Body(p []byte, end bool) bool {
	l.room()
	if !l.chunked {
		if int64(len(p)) > l.bodyLeft || end && int64(len(p)) != l.bodyLeft {
			return false
		}
		l.bodyLeft -= int64(len(p))
		l.out = append(l.out, p...)
		return true
	}
	if len(p) > 0 {
		l.out = strconv.AppendInt(l.out, int64(len(p)), 16)
		l.out = append(l.out, "\r\n"...)
		l.out = append(l.out, p...)
		l.out = append(l.out, "\r\n"...)
	}
	if end {
		l.out = append(l.out, "0\r\n\r\n"...)
		l.chunked = false
	}
	return true
}

// h1Valid reports whether a request can be written as HTTP/1.1 as it is:
// a method that is a token, a path without blanks or controls, a valid
// host, at most one Content-Length value. (Field values cannot hold CR or
// LF: the framer refuses them.)
func h1Valid(f *http2.MetaHeadersFrame) bool {
	if !validName([]byte(f.PseudoValue("method"))) || f.PseudoValue("protocol") != "" {
		return false
	}
	path := f.PseudoValue("path")
	if path != "*" && !strings.HasPrefix(path, "/") {
		return false
	}
	for i := 0; i < len(path); i++ {
		if path[i] <= ' ' || path[i] >= 0x7f {
			return false
		}
	}
	if !httpguts.ValidHostHeader(f.PseudoValue("authority")) {
		return false
	}
	length := ""
	for _, hf := range f.RegularFields() {
		if hf.Name == "host" && !httpguts.ValidHostHeader(hf.Value) {
			return false
		}
		if hf.Name == "content-length" {
			if length != "" && hf.Value != length {
				return false
			}
			if _, err := strconv.ParseUint(hf.Value, 10, 63); err != nil {
				return false
			}
			length = hf.Value
		}
	}
	return true
}

// readH1 reads the responses of an HTTP/1.1 leg into its streams.
func (c *h2conn) readH1(l *h2leg) {
	for {
		head, err := peekHead(l.br)
		if errors.Is(err, errNotFast) && l.br.Size() < fastHeadMax && l.br.Buffered() == l.br.Size() {
			l.br = bufio.NewReaderSize(l.br, fastHeadMax) // a head larger than usual
			continue
		}
		c.mu.Lock()
		s := l.cur
		if err != nil {
			if errors.Is(err, errNotFast) {
				err = errors.New("its response head is too large or cut short")
			}
			c.h1Failed(l, s, err)
			c.mu.Unlock()
			c.flush()
			return
		}
		if s == nil || s.gone {
			c.drop(l) // an answer nobody asked for, or to a stream the caller reset
			c.mu.Unlock()
			return
		}
		status, framing, ok := parseResponseHead(head)
		if !ok || status == 101 {
			c.legFailed(l, fmt.Errorf("the response of %s is not valid HTTP/1.1", l.name))
			c.mu.Unlock()
			c.flush()
			return
		}
		fields := h1Fields(status, head)
		l.br.Discard(len(head))
		if status < 200 {
			c.send(&s.resp, h2item{head: true, fields: fields})
			c.mu.Unlock()
			c.flush()
			continue
		}
		bodyless := s.isHead || status == 204 || status == 304 || framing.length == 0
		s.resp.gotEnd = bodyless
		c.send(&s.resp, h2item{head: true, fields: fields, end: bodyless})
		c.mu.Unlock()
		switch {
		case bodyless:
		case framing.chunked:
			err = c.h1Chunked(l, s)
		default:
			err = c.h1Copy(l, s, framing.length, true)
		}
		c.mu.Lock()
		if err != nil {
			if !errors.Is(err, errH1Gone) {
				c.reset(s, http2.ErrCodeInternal, true, false)
			}
			c.drop(l)
			c.mu.Unlock()
			c.flush()
			return
		}
		keep := !framing.close && (framing.chunked || framing.length >= 0 || bodyless)
		switch {
		case s.req.sentEnd:
		case l.requested && !l.chunked && l.bodyLeft == 0:
			// The whole body went; only its END_STREAM is still to come
			// from the caller, and goes nowhere now.
			c.dropBody(s)
		default:
			// Answered before the whole body went: the rest is not wanted,
			// and the connection cannot carry another request.
			s.stopBody, keep = true, false
			c.dropBody(s)
		}
		c.h1Release(l, s, keep)
		c.mu.Unlock()
		c.flush()
	}
}

// h1Failed ends l after a failed read. A request without a body that got
// not a byte of answer on a kept connection (the app had closed it while
// it was idle) goes again on a new one, as net/http's Transport does.
func (c *h2conn) h1Failed(l *h2leg, s *h2stream, err error) {
	stale := s != nil && !s.gone && !s.answered && s.retry != nil && l.served > 0 && l.br.Buffered() == 0
	if !stale {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s closed the connection", l.name)
		}
		c.legFailed(l, err)
		return
	}
	delete(l.byID, s.req.toID)
	l.cur = nil
	c.drop(l)
	fields := s.retry
	s.retry = nil
	s.req.toID, s.req.sentEnd = 0, false
	s.req.q = []h2item{{head: true, fields: fields, end: true}}
	next := c.h1Leg(l.route)
	if next == nil {
		c.reset(s, http2.ErrCodeRefusedStream, true, false)
		return
	}
	c.route(s, next)
	c.pump(&s.req)
}

// flushFirst reads an HTTP/1.1 leg's connection, writing what waits to be
// written first: a read may wait for the app, which may wait for the
// caller, who may wait for what the relay has not yet written.
type flushFirst struct {
	io.Reader
	c *h2conn
}

func (r flushFirst) Read(p []byte) (int, error) {
	r.c.flush()
	return r.Reader.Read(p)
}

// h1Fields turns a response head into HTTP/2 header fields: names in lower
// case, without HTTP/1's connection-specific fields.
func h1Fields(status int, head []byte) []hpack.HeaderField {
	fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}
	_, lines, _ := bytes.Cut(head, []byte("\r\n"))
	var hop [][]byte
	eachField(lines, func(name, value []byte) bool {
		if asciiEqualFold(name, "Connection") {
			for _, t := range bytes.Split(value, []byte(",")) {
				hop = append(hop, bytes.TrimSpace(t))
			}
		}
		return true
	})
	eachField(lines, func(name, value []byte) bool {
		if !validName(name) {
			return true
		}
		for _, skip := range []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"} {
			if asciiEqualFold(name, skip) {
				return true
			}
		}
		for _, t := range hop {
			if asciiEqualFold(name, string(t)) {
				return true
			}
		}
		fields = append(fields, hpack.HeaderField{Name: strings.ToLower(string(name)), Value: string(value)})
		return true
	})
	return fields
}

// h1Copy passes n bytes of body (n < 0: until the app closes) to s; end
// says whether they end the response. What the head's read left in l's
// buffer goes first; the rest is read straight into a pooled buffer,
// which the leg holds only while it reads.
func (c *h2conn) h1Copy(l *h2leg, s *h2stream, n int64, end bool) error {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := (*bp)[:cap(*bp)]
	for n != 0 {
		p := buf
		if n > 0 && int64(len(p)) > n {
			p = p[:n]
		}
		k, err := l.br.Read(p)
		if err != nil {
			if n < 0 && errors.Is(err, io.EOF) {
				return c.h1Pass(s, nil, end)
			}
			return err
		}
		if n > 0 {
			n -= int64(k)
		}
		if err := c.h1Pass(s, p[:k], end && n == 0); err != nil {
			return err
		}
	}
	return nil
}

// h1Chunked passes a chunked body, and its trailers, to s.
func (c *h2conn) h1Chunked(l *h2leg, s *h2stream) error {
	for {
		line, err := readLine(l.br)
		if err != nil {
			return err
		}
		n, err := chunkSize(line)
		if err != nil {
			return err
		}
		if n == 0 {
			var trailers []hpack.HeaderField
			for {
				t, err := readLine(l.br)
				if err != nil {
					return err
				}
				if len(t) == 0 {
					break
				}
				name, value, ok := bytes.Cut(t, []byte(":"))
				if ok && validName(name) {
					trailers = append(trailers, hpack.HeaderField{Name: strings.ToLower(string(name)), Value: string(trimOWS(value))})
				}
			}
			if len(trailers) == 0 {
				return c.h1Pass(s, nil, true)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if s.gone {
				return errH1Gone
			}
			s.resp.gotEnd = true
			c.send(&s.resp, h2item{head: true, fields: trailers, end: true})
			return nil
		}
		if err := c.h1Copy(l, s, int64(n), false); err != nil {
			return err
		}
		if crlf, err := readLine(l.br); err != nil || len(crlf) != 0 {
			return errors.New("chunk not followed by CRLF")
		}
	}
}

// h1Pass sends a piece of the response to s and waits until it has gone
// out to the caller: the app's connection is read no faster than the
// caller takes, and p can be read into again.
func (c *h2conn) h1Pass(s *h2stream, p []byte, end bool) error {
	c.mu.Lock()
	if s.gone || c.done {
		c.mu.Unlock()
		return errH1Gone
	}
	if end {
		s.resp.gotEnd = true
	}
	if len(p) > 0 || end {
		c.send(&s.resp, h2item{data: p, end: end})
	}
	queued := len(s.resp.q) > 0
	c.mu.Unlock()
	if !queued {
		return nil
	}
	c.flush() // what waits may wait for room, which a write makes
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(s.resp.q) > 0 && !s.gone && !c.done {
		c.cond.Wait()
	}
	if s.gone && !end {
		return errH1Gone
	}
	return nil
}
