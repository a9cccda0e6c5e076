package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// What the command's DNS lookups may hold in the plugin: a stub resolver
// opens a socket per lookup, so each client socket is let go once its
// queries are answered, its buffer is one datagram's, and the queries in
// flight are bounded (SERVFAIL beyond, at once).
const (
	// maxDNSQuery is the largest query read (an EDNS query is far smaller).
	maxDNSQuery = 4096
	// maxDNSInFlight bounds the queries waiting for the cluster's answer.
	maxDNSInFlight = 256
	// dnsClientIdle is how long a client socket may be quiet with a query
	// unanswered, or with none yet, before its endpoint goes.
	dnsClientIdle = 2 * time.Second
	// dnsClientLinger is how long it stays once every query is answered,
	// for a query sent together with the last (A and AAAA).
	dnsClientLinger = 200 * time.Millisecond
)

// dnsClients serves the command's DNS client sockets.
type dnsClients struct {
	inFlight atomic.Int64
}

// serve answers one client socket's queries, then lets it go.
func (d *dnsClients) serve(n *netStack, r *udp.ForwarderRequest) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		return
	}
	c := gonet.NewUDPConn(&wq, ep)
	go func() {
		defer c.Close()
		var pending atomic.Int64
		waited := false
		_ = c.SetReadDeadline(time.Now().Add(dnsClientIdle))
		for {
			buf := make([]byte, maxDNSQuery)
			k, err := c.Read(buf)
			if err != nil {
				if pending.Load() > 0 && !waited && n.ctx.Err() == nil {
					// Answers still to come: a while more for them.
					waited = true
					_ = c.SetReadDeadline(time.Now().Add(dnsClientIdle))
					continue
				}
				return
			}
			waited = false
			_ = c.SetReadDeadline(time.Now().Add(dnsClientIdle))
			q := buf[:k:k]
			if d.inFlight.Add(1) > maxDNSInFlight {
				d.inFlight.Add(-1)
				if a := serverFailure(q); a != nil {
					_, _ = c.Write(a)
				}
				continue
			}
			pending.Add(1)
			go func() {
				defer d.inFlight.Add(-1)
				d.answer(n, c, q)
				if pending.Add(-1) == 0 {
					_ = c.SetReadDeadline(time.Now().Add(dnsClientLinger))
				}
			}()
		}
	}()
}

// answer sends the reply to q, SERVFAIL when the cluster's DNS cannot be
// asked.
func (d *dnsClients) answer(n *netStack, c *gonet.UDPConn, q []byte) {
	ctx, cancel := context.WithTimeout(n.ctx, dnsTimeout)
	defer cancel()
	a, err := n.dns.answer(ctx, q)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		n.logf("sandbox: DNS: %v", err)
		// SERVFAIL at once: the resolver tries its next name or says
		// so, rather than waiting out its timeout.
		if a = serverFailure(q); a == nil {
			return
		}
	}
	_, _ = c.Write(a)
}

// dnsTCPIdle is how long a DNS client's TCP connection may be quiet.
const dnsTCPIdle = 10 * time.Second

// serveTCP answers DNS over TCP on the nameserver's address (a resolver's
// retry of a long answer, or use-vc) in the plugin, as UDP is answered:
// --local names and the rebinding guard hold there too, rather than the
// connection going to the cluster's DNS as it is.
func (d *dnsClients) serveTCP(n *netStack, r *tcp.ForwarderRequest) {
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		return
	}
	r.Complete(false)
	c := gonet.NewTCPConn(&wq, ep)
	stop := context.AfterFunc(n.ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	for {
		_ = c.SetReadDeadline(time.Now().Add(dnsTCPIdle))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		k := int(binary.BigEndian.Uint16(size[:]))
		if k > maxDNSQuery {
			return
		}
		q := make([]byte, k)
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		if d.inFlight.Add(1) > maxDNSInFlight {
			d.inFlight.Add(-1)
			if !writeTCPMessage(c, serverFailure(q)) {
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, dnsTimeout)
		a, err := n.dns.answerFull(ctx, q)
		cancel()
		d.inFlight.Add(-1)
		if err != nil {
			n.logf("sandbox: DNS over TCP: %v", err)
			a = serverFailure(q)
		}
		if !writeTCPMessage(c, a) {
			return
		}
	}
}

// writeTCPMessage writes a DNS message with its length; false when it
// could not (or there is none).
func writeTCPMessage(c net.Conn, a []byte) bool {
	if a == nil || len(a) > 0xffff {
		return false
	}
	b := make([]byte, 2+len(a))
	binary.BigEndian.PutUint16(b, uint16(len(a)))
	copy(b[2:], a)
	_, err := c.Write(b)
	return err == nil
}
