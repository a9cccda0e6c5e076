package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/netproxy"
)

// The sandbox's DNS queries reach the cluster's DNS over a few TCP
// connections dialed from the pod and kept open, not one dial (a stream
// through the tunnel, a connection from the pod) per query: DNS over TCP
// carries many queries on one connection, each answer matched to its
// query by ID. Each query gets an ID of the connection's own, so two
// clients that picked the same ID cannot take each other's answers; the
// client's ID is put back on the answer.

// Bounds of the kept connections.
const (
	// maxDNSConns is how many connections are kept: a server may answer
	// one connection's queries in turn, so a second one is dialed when
	// every connection has a query waiting.
	maxDNSConns = 4
	// maxDNSPending bounds the queries waiting on one connection; past it
	// on every connection a query fails at once (SERVFAIL to the client).
	maxDNSPending = 256
	// dnsWriteTimeout bounds writing one query.
	dnsWriteTimeout = 5 * time.Second
)

// errDNSBusy is a query turned away because every connection has
// maxDNSPending queries waiting.
var errDNSBusy = errors.New("too many DNS queries waiting for the cluster's DNS")

// dnsPool holds the connections to the cluster's DNS.
type dnsPool struct {
	addrs []string // Upstream, then Fallback
	dial  netproxy.Dialer

	mu      sync.Mutex
	conns   []*dnsConn
	good    int           // the index in addrs that answered last
	dialing chan struct{} // closed when the dial in progress ends; nil when none is
	dialErr error         // why the last dial failed
	closed  bool
}

func newDNSPool(addrs []string, dial netproxy.Dialer) *dnsPool {
	return &dnsPool{addrs: addrs, dial: dial}
}

// exchange sends query q (a DNS message without its length) and returns
// the answer. A query lost with a connection that ended under it (the
// server closes idle connections, and after so many queries) is sent
// once more on a new one.
func (p *dnsPool) exchange(ctx context.Context, q []byte) ([]byte, error) {
	if len(q) < 12 || len(q) > 65535 {
		return nil, fmt.Errorf("a DNS query of %d bytes", len(q))
	}
	var last error
	for attempt := 0; attempt < 2; attempt++ {
		c, err := p.conn(ctx)
		if err != nil {
			return nil, err
		}
		a, err := c.exchange(ctx, q)
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil || errors.Is(err, errDNSBusy) {
			return nil, err
		}
		last = err
	}
	return nil, last
}

// conn picks the connection with the fewest queries waiting, dialing one
// when there is none, and another in the background when each has a
// query waiting.
func (p *dnsPool) conn(ctx context.Context) (*dnsConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, net.ErrClosed
		}
		var best *dnsConn
		bestN := 0
		live := p.conns[:0]
		for _, c := range p.conns {
			n, ok := c.load()
			if !ok {
				continue
			}
			live = append(live, c)
			if best == nil || n < bestN {
				best, bestN = c, n
			}
		}
		clear(p.conns[len(live):])
		p.conns = live
		if best != nil {
			if bestN > 0 && len(p.conns) < maxDNSConns && p.dialing == nil {
				p.startDial()
			}
			p.mu.Unlock()
			return best, nil
		}
		if p.dialing == nil {
			p.startDial()
		}
		wait := p.dialing
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
		err := p.dialErr
		n := len(p.conns)
		p.mu.Unlock()
		if n == 0 && err != nil {
			return nil, err
		}
	}
}

// startDial dials a connection in the background; p.mu is held.
func (p *dnsPool) startDial() {
	done := make(chan struct{})
	p.dialing = done
	go func() {
		defer close(done)
		c, good, err := p.dialAny()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.dialing, p.dialErr = nil, err
		if err != nil {
			return
		}
		if p.closed {
			c.close(net.ErrClosed)
			return
		}
		p.good = good
		p.conns = append(p.conns, c)
	}()
}

// dialAny dials the address that answered last, then the others in turn.
func (p *dnsPool) dialAny() (*dnsConn, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dnsTimeout)
	defer cancel()
	p.mu.Lock()
	start := p.good
	p.mu.Unlock()
	var errs []error
	for i := range p.addrs {
		k := (start + i) % len(p.addrs)
		c, err := p.dial(ctx, p.addrs[k])
		if err == nil {
			return newDNSConn(c), k, nil
		}
		errs = append(errs, fmt.Errorf("the cluster's DNS at %s: %w", p.addrs[k], err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, 0, errors.Join(errs...)
}

// close ends every connection; queries waiting fail.
func (p *dnsPool) close() {
	p.mu.Lock()
	conns := p.conns
	p.conns, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range conns {
		c.close(net.ErrClosed)
	}
}

// dnsConn is one connection to the cluster's DNS with the queries
// waiting on it, by the ID they were sent with.
type dnsConn struct {
	c   net.Conn
	wmu sync.Mutex // one query written at a time

	mu      sync.Mutex
	pending map[uint16]chan []byte
	next    uint16
	err     error // why the connection ended; nil while it serves
}

func newDNSConn(c net.Conn) *dnsConn {
	d := &dnsConn{c: c, pending: map[uint16]chan []byte{}}
	go d.read()
	return d
}

// load is the number of queries waiting, and whether the connection
// still serves.
func (d *dnsConn) load() (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending), d.err == nil
}

// exchange sends q under an ID of the connection's and waits for its
// answer, which goes back with q's ID.
func (d *dnsConn) exchange(ctx context.Context, q []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	d.mu.Lock()
	if d.err != nil {
		err := d.err
		d.mu.Unlock()
		return nil, err
	}
	if len(d.pending) >= maxDNSPending {
		d.mu.Unlock()
		return nil, errDNSBusy
	}
	for {
		d.next++
		if _, used := d.pending[d.next]; !used {
			break
		}
	}
	id := d.next
	d.pending[id] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		if d.pending[id] == ch { // not yet answered: nobody else's
			delete(d.pending, id)
		}
		d.mu.Unlock()
	}()

	msg := make([]byte, 2+len(q))
	binary.BigEndian.PutUint16(msg, uint16(len(q)))
	copy(msg[2:], q)
	binary.BigEndian.PutUint16(msg[2:], id)
	d.wmu.Lock()
	_ = d.c.SetWriteDeadline(time.Now().Add(dnsWriteTimeout))
	_, err := d.c.Write(msg)
	d.wmu.Unlock()
	if err != nil {
		d.close(err)
		return nil, err
	}
	select {
	case a, ok := <-ch:
		if !ok {
			d.mu.Lock()
			err := d.err
			d.mu.Unlock()
			return nil, err
		}
		copy(a[:2], q[:2])
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read hands each answer to the query waiting for its ID until the
// connection ends, then fails the queries still waiting.
func (d *dnsConn) read() {
	var n [2]byte
	for {
		if _, err := io.ReadFull(d.c, n[:]); err != nil {
			d.close(err)
			return
		}
		size := binary.BigEndian.Uint16(n[:])
		if size < 12 {
			d.close(fmt.Errorf("an answer of %d bytes is not DNS", size))
			return
		}
		a := make([]byte, size)
		if _, err := io.ReadFull(d.c, a); err != nil {
			d.close(err)
			return
		}
		id := binary.BigEndian.Uint16(a)
		d.mu.Lock()
		ch := d.pending[id]
		delete(d.pending, id)
		d.mu.Unlock()
		if ch != nil {
			ch <- a // buffered, and each ID's channel gets one answer
		}
	}
}

// close ends the connection (once) and fails the queries waiting with err.
func (d *dnsConn) close(err error) {
	d.mu.Lock()
	if d.err != nil {
		d.mu.Unlock()
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("the cluster's DNS closed the connection")
	}
	d.err = err
	pending := d.pending
	d.pending = map[uint16]chan []byte{}
	d.mu.Unlock()
	d.c.Close()
	for _, ch := range pending {
		close(ch)
	}
}
