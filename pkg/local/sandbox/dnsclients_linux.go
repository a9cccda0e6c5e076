package sandbox

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
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
