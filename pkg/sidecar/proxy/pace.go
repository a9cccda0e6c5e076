package proxy

import (
	"net"
	"sync/atomic"
	"time"
)

// A caller must keep up while its request's body comes in and while a
// response goes out to it: a body or a response that stalls for the idle
// time, or that averages less than a minimum rate once a grace period is
// over, ends the connection. Without these deadlines a caller that sends a
// byte now and then, or never reads, would hold its connection, its leg to
// the app and their buffers for as long as it liked.

// pace is how a caller must keep up.
type pace struct {
	idle  time.Duration // no byte for this long ends the transfer
	rate  int64         // bytes a second it must average after grace; 0: no minimum
	grace time.Duration
}

// The pace the sidecar asks of its callers, unless the configuration says
// otherwise: a body or a response may stall for the idle timeout; after
// ten seconds it must have averaged 1 KiB a second.
const (
	defaultMinRate  = 1 << 10
	defaultRateWait = 10 * time.Second
)

// readBy is the deadline for the next byte of a body that started at
// start, has brought n bytes, the last at last: the idle time after the
// last byte, or earlier when the body falls below the minimum rate.
func (p pace) readBy(start, last time.Time, n int64) time.Time {
	d := last.Add(p.idle)
	if p.rate > 0 {
		need := start.Add(p.grace + time.Duration(float64(n)/float64(p.rate)*float64(time.Second)))
		if need.Before(d) {
			d = need
		}
	}
	return d
}

// writeBy is the deadline for a write of n bytes starting at now: the idle
// time, plus the time the minimum rate gives n bytes.
func (p pace) writeBy(now time.Time, n int) time.Time {
	d := now.Add(p.idle)
	if p.rate > 0 {
		d = d.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
	}
	return d
}

// paceSlack is how far a deadline may lag behind the one progress has
// earned before it is moved: moving it costs a timer update, once a second
// at most is enough.
const paceSlack = time.Second

// pacer keeps one direction of a caller's connection to a pace. Only the
// goroutine reading (or writing) uses it, except last, which a budget
// looking for a stalled connection reads.
type pacer struct {
	p     pace
	start time.Time
	n     int64
	set   time.Time
	last  atomic.Int64 // unix nanoseconds of the last recorded progress
	until atomic.Int64 // unix nanoseconds no deadline may pass; 0: none
}

func newPacer(p pace, now time.Time) *pacer {
	pc := &pacer{p: p, start: now}
	pc.last.Store(now.UnixNano())
	return pc
}

// begin sets the first read deadline on c.
func (pc *pacer) begin(c net.Conn) {
	pc.set = pc.p.readBy(pc.start, pc.start, 0)
	c.SetReadDeadline(pc.set)
}

// read records k bytes read from c and moves c's read deadline when it
// lags enough behind what they earned.
func (pc *pacer) read(c net.Conn, k int) {
	if k <= 0 {
		return
	}
	pc.n += int64(k)
	now := time.Now()
	if d := pc.p.readBy(pc.start, now, pc.n); d.Sub(pc.set) > paceSlack {
		if u := pc.until.Load(); u != 0 && d.UnixNano() > u {
			return
		}
		pc.set = d
		pc.last.Store(now.UnixNano())
		c.SetReadDeadline(d)
	}
}

// write sets c's write deadline for a write of k bytes, when the one in
// force is too near.
func (pc *pacer) write(c net.Conn, k int) {
	now := time.Now()
	if d := pc.p.writeBy(now, k); d.Sub(pc.set) > paceSlack {
		pc.set = d
		c.SetWriteDeadline(d)
	}
}

// stalledSince is when the body last made progress.
func (pc *pacer) stalledSince() time.Time { return time.Unix(0, pc.last.Load()) }

// pacers are a caller's connection's: reads, while a body is being read;
// writes, always.
type pacers struct {
	r, w *pacer
}

// pacedOf returns the pacers of a connection from fastIO; nil for any
// other.
func pacedOf(c net.Conn) *pacers {
	if p, ok := c.(interface{ paced() *pacers }); ok {
		return p.paced()
	}
	return nil
}
