package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// One exchange on the fast path: the request's head and body go to the
// app or a developer over a kept connection, the response comes back with
// its own framing.

// upstream is a kept connection a caller's requests go on over.
type upstream struct {
	conn net.Conn
	br   *bufio.Reader
	to   *liveRoute // nil: the app
	// paid is the budget this leg was drawn from: the caller's second.
	paid *Budget
}

func (u *upstream) drop() {
	if u.conn != nil {
		u.conn.Close()
	}
	if u.paid != nil {
		u.paid.giveLeg()
	}
	u.conn, u.br, u.paid = nil, nil, nil
}

// name says where u leads, for the caller's 502 and the log.
func (u *upstream) name() string {
	if u.to == nil {
		return "the app"
	}
	return "the developer of " + u.to.String()
}

// forward sends one request to the app, or with to through that
// developer's tunnel, and its response back. keep says whether the
// caller's connection can carry another request.
func (f *fastPath) forward(fc *fastConn, req fastRequest, to *liveRoute) (keep bool, err error) {
	for retried := false; ; {
		u, reused, err := f.upstreamFor(fc, to)
		if err != nil && to != nil {
			// The developer left a moment ago and this sidecar has not
			// yet seen it: fail open. Nothing was sent; the app gets it.
			f.log.Debug("tunnel gone, request goes to the app", "route", to.String(), "err", err)
			to = nil
			continue
		}
		if err != nil {
			writeBadGateway(fc.c, err)
			return false, nil
		}
		// A kept connection the other end has closed fails the write; the
		// request is still in the read buffer, whole or its head, and goes
		// again on a new connection. One closed after the write, without a
		// byte of answer, gets a bodiless request again (as net/http's
		// Transport retries).
		writeAgain := reused && !retried
		var again bool
		if req.chunked || int64(fc.br.Buffered()-len(req.head)) < req.length {
			keep, again, err = f.sendStreaming(fc, u, req, writeAgain)
		} else {
			keep, again, err = f.sendWhole(fc, u, req, writeAgain)
		}
		if again {
			retried = true
			continue
		}
		return keep && !req.close, err
	}
}

// sendWhole sends a request that is all in the read buffer in one write
// and passes its response back; again says the kept connection u had been
// closed at the other end and the request may go once more on a new one.
func (f *fastPath) sendWhole(fc *fastConn, u *upstream, req fastRequest, writeAgain bool) (keep, again bool, err error) {
	noBody := !req.chunked && req.length == 0
	whole, _ := fc.br.Peek(len(req.head) + int(req.length))
	if _, err := u.conn.Write(whole); err != nil {
		u.drop()
		if writeAgain {
			return false, true, nil
		}
		return false, false, fmt.Errorf("writing to %s: %w", u.name(), err)
	}
	keep, err = f.response(fc, u, req, writeAgain && noBody)
	if errors.Is(err, errStaleUpstream) {
		return false, true, nil
	}
	fc.tap.requestBody(whole[len(req.head):])
	fc.br.Discard(len(whole))
	return keep, false, err
}

// sendStreaming writes the head and as much of a Content-Length body as
// arrived with it in one write; the rest streams after (exchangeBody).
// again is sendWhole's.
func (f *fastPath) sendStreaming(fc *fastConn, u *upstream, req fastRequest, writeAgain bool) (keep, again bool, err error) {
	first, rest := req.head, req.length
	if !req.chunked {
		first, rest = withBodyStart(fc.br, len(req.head), req.length)
	}
	if _, err := u.conn.Write(first); err != nil {
		u.drop()
		if writeAgain {
			return false, true, nil
		}
		return false, false, fmt.Errorf("writing to %s: %w", u.name(), err)
	}
	fc.tap.requestBody(first[len(req.head):])
	fc.br.Discard(len(first))
	keep, err = f.exchangeBody(fc, u, req, rest)
	return keep, false, err
}

// exchangeBody sends the rest of the body (rest bytes, or chunked) up
// while the response comes down: an app may answer before it has read the
// whole body, or stream both ways. The caller must keep up its pace
// meanwhile.
func (f *fastPath) exchangeBody(fc *fastConn, u *upstream, req fastRequest, rest int64) (keep bool, err error) {
	rp := f.paceBody(fc)
	bodyDone := make(chan error, 1)
	up := u.conn
	ft := fc.tap
	go func() {
		var err error
		if req.chunked {
			err = copyChunked(ft.requestChunks(up), fc.br)
		} else {
			err = teeBody(up, fc.br, fc.c, rest, ft.requestCapture())
		}
		if err != nil {
			// A broken body: the app must not wait for the rest.
			up.Close()
		}
		bodyDone <- err
	}()
	keep, err = f.response(fc, u, req, false)
	var berr error
	select {
	case berr = <-bodyDone:
	default:
		// Answered before the body was all sent (a 413, say), or the
		// body's last write has not returned yet though the app read it:
		// give the caller a moment to finish sending. A body that went
		// whole leaves the caller's connection at the next request; the
		// app's, which may not have read it all, is not used again.
		until := time.Now().Add(5 * time.Second)
		if rp != nil {
			rp.until.Store(until.UnixNano())
		}
		fc.c.SetReadDeadline(until)
		berr = <-bodyDone
		fc.c.SetReadDeadline(time.Time{})
		u.drop()
	}
	if rp != nil {
		pacedOf(fc.c).r = nil
		fc.body.Store(nil)
	}
	if berr != nil {
		u.drop()
		if err == nil {
			err = fmt.Errorf("request body: %w", berr)
		}
		keep = false
	}
	return keep, err
}

// paceBody starts pacing the request body the caller sends on fc; nil if
// the connection is not paced.
func (f *fastPath) paceBody(fc *fastConn) *pacer {
	pc := pacedOf(fc.c)
	if pc == nil || f.pace.idle <= 0 {
		return nil
	}
	rp := newPacer(f.pace, time.Now())
	rp.begin(fc.c)
	pc.r = rp
	fc.body.Store(rp)
	return rp
}

// upstreamFor returns the caller's kept connection to the app or to the
// developer of to, dialing one if there is none; reused says it had
// carried requests before (and may have been closed at the other end).
func (f *fastPath) upstreamFor(fc *fastConn, to *liveRoute) (u *upstream, reused bool, err error) {
	u = &fc.app
	if to != nil {
		u = &fc.dev
		if u.to != to {
			u.drop() // the route was replaced, or another developer's
		}
	}
	if u.conn != nil {
		return u, true, nil
	}
	// A caller's first leg is its own; a second (the app and a developer
	// both) is drawn from the budget, or the first one goes.
	other := &fc.dev
	if u == other {
		other = &fc.app
	}
	var paid *Budget
	if other.conn != nil {
		if f.budget.takeLeg() {
			paid = f.budget
		} else {
			other.drop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conn net.Conn
	if to == nil {
		conn, err = f.dialApp(ctx)
	} else {
		conn, err = to.dialFast(ctx)
	}
	if err != nil {
		if paid != nil {
			paid.giveLeg()
		}
		return nil, false, err
	}
	u.conn, u.br, u.to, u.paid = conn, bufio.NewReaderSize(conn, fastHeadMax), to, paid
	return u, false, nil
}

// dialApp connects to the app, with raw reads and writes.
func (f *fastPath) dialApp(ctx context.Context) (net.Conn, error) {
	if f.dial != nil {
		return f.dial(ctx)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", f.upstream)
	if err != nil {
		return nil, fmt.Errorf("the app does not answer on %s: %w", f.upstream, err)
	}
	return fastIO(conn), nil
}

// errStaleUpstream says a kept connection to the app had been closed by it
// before the request arrived; nothing was answered, the request may go again.
var errStaleUpstream = errors.New("the kept connection was closed at the other end")

// response passes the response from u (and any 1xx before it) to the
// caller. With mayRetry, an upstream that closed without a byte of answer
// gives errStaleUpstream and nothing is written.
func (f *fastPath) response(fc *fastConn, u *upstream, req fastRequest, mayRetry bool) (keep bool, err error) {
	for {
		head, err := peekHead(u.br)
		if err != nil {
			stale := mayRetry && u.br.Buffered() == 0
			u.drop()
			if stale {
				return false, errStaleUpstream
			}
			if errors.Is(err, errNotFast) {
				err = errors.New("response head too large or cut short")
			}
			writeBadGateway(fc.c, fmt.Errorf("reading the response of %s: %w", u.name(), err))
			return false, nil
		}
		mayRetry = false
		status, framing, ok := parseResponseHead(head)
		if !ok {
			u.drop()
			writeBadGateway(fc.c, fmt.Errorf("the response of %s is not valid HTTP/1.1", u.name()))
			return false, nil
		}
		informational := status >= 100 && status < 200
		noBody := req.bodyless(status)
		out, consumed, rest := head, len(head), framing.length
		if f.draining.Load() && !framing.close && !informational {
			// Tell the caller to move to another endpoint.
			out = append(append(append([]byte{}, head[:len(head)-2]...), "Connection: close\r\n"...), "\r\n"...)
			framing.close = true
		} else if !noBody && !framing.chunked && framing.length > 0 {
			// The head and as much of the body as arrived with it in one
			// write: the whole body, or its start and the rest after.
			out, rest = withBodyStart(u.br, len(head), framing.length)
			consumed, noBody = len(out), rest == 0
		}
		if _, err := fc.c.Write(out); err != nil {
			return false, err
		}
		if informational {
			u.br.Discard(consumed)
			continue // 100 Continue, 103 Early Hints: the real one follows
		}
		tee := fc.tap.responseHead(head, out[len(head):consumed], framing, noBody)
		u.br.Discard(consumed)
		switch {
		case noBody:
		case framing.chunked:
			err = copyChunked(fc.tap.responseChunks(fc.c), u.br)
		case framing.length >= 0:
			err = teeBody(fc.c, u.br, u.conn, rest, tee)
		default:
			// Delimited by the upstream closing: so must the caller's end be.
			err = teeBody(fc.c, u.br, u.conn, -1, tee)
			framing.close = true
		}
		if err == nil && fc.tap != nil {
			fc.tap.answered = true
		}
		if framing.close {
			u.drop()
		}
		return err == nil && !framing.close, err
	}
}

// withBodyStart returns the head of size head at the front of br with as
// much of its Content-Length body of length bytes as br holds, to go in one
// write, and how much of the body is still to come.
func withBodyStart(br *bufio.Reader, head int, length int64) (first []byte, rest int64) {
	inBuf := min(int64(br.Buffered()-head), length)
	first, _ = br.Peek(head + int(inBuf))
	return first, length - inBuf
}

// spliceMin is the body size from which the part not yet buffered is
// moved socket to socket by the kernel (splice(2) on Linux) rather than
// through the buffer.
const spliceMin = 16 << 10

// copyBody copies n bytes (-1: until EOF) of a body from src, the buffered
// reader over srcConn, to dst: what src holds first, then, for a large
// body between two TCP connections, the rest straight from srcConn.
func copyBody(dst net.Conn, src *bufio.Reader, srcConn net.Conn, n int64) error {
	d, dok := tcpOf(dst)
	s, sok := tcpOf(srcConn)
	if !dok || !sok || (n >= 0 && n < spliceMin) {
		return copyN(dst, src, n)
	}
	if k := src.Buffered(); k > 0 {
		if n >= 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(k)
		if n >= 0 {
			n -= int64(k)
		}
	}
	if ok, err := spliceRaw(dst, srcConn, n); ok {
		return err
	}
	if n < 0 {
		_, err := d.ReadFrom(s)
		return err
	}
	got, err := d.ReadFrom(io.LimitReader(s, n))
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// copyN copies n bytes (-1: until EOF) from src to dst, each piece as soon
// as it arrives, straight from src's buffer.
func copyN(dst io.Writer, src *bufio.Reader, n int64) error {
	for n != 0 {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				if n < 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
		k := src.Buffered()
		if n > 0 && int64(k) > n {
			k = int(n)
		}
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(k)
		if n > 0 {
			n -= int64(k)
		}
	}
	return nil
}

func writeBadGateway(w io.Writer, err error) {
	writeStatus(w, "502 Bad Gateway", err.Error())
}

// writeStatus answers a caller with status and a line saying why, and
// closes.
func writeStatus(w io.Writer, status, why string) {
	body := "intercept-proxy: " + why + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, len(body), body)
}
