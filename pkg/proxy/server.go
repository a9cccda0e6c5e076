package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/doctor"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/relay"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// Config is the sidecar's configuration.
type Config struct {
	// Listen is where callers' traffic arrives (the Service's targetPort).
	Listen string
	// Upstream is the app container, host:port.
	Upstream string
	// Control is the tunnel's listen address; loopback, so only the pod
	// port-forward reaches it. Empty disables tunnels.
	Control string
	// Peer is where relays reach this sidecar over the pod network (see
	// tunnel.ServePeers); empty: no peer port, a tunnel to every pod.
	Peer string
	// Pod names this pod.
	Pod string
	// H2C: the port speaks HTTP/2 with prior knowledge (appProtocol h2c).
	H2C bool
	// Static routes (standalone mode): header, cookie or baggage match to
	// a fixed address.
	Static []StaticRoute
	// DrainDelay is how long to keep serving after SIGTERM before closing
	// idle connections, so endpoints have moved away first.
	DrainDelay time.Duration
	// HeaderTimeout bounds how long a caller may take to send a request's
	// head (slowloris); 30s when zero.
	HeaderTimeout time.Duration
	// NoFastPath sends every request through net/http (to compare).
	NoFastPath bool
	// MaxConns caps the callers' connections open at once; beyond it new
	// ones are refused (closed at once) rather than the sidecar running out
	// of memory. DefaultMaxConns when zero.
	MaxConns int
	// ServiceAddr is the intercepted Service's ClusterIP:port, the only
	// address the control operation probe may request; empty: no probes.
	ServiceAddr string
	// IdleTimeout closes a kept-alive connection that sends no request for
	// that long, on both paths; HeaderTimeout when zero.
	IdleTimeout time.Duration
	// Ready, if set, is called once both listeners are bound.
	Ready func(data, control net.Addr)
}

// MaxHeaderBytes bounds a request's head; a larger one is answered 431 and
// never reaches the app.
const MaxHeaderBytes = 64 << 10

// StaticRoute sends requests whose Header, Cookie or Baggage member (one of
// the three) equals Value to Addr.
type StaticRoute struct {
	Header, Cookie, Baggage, Value, Addr string
}

// Run serves until ctx ends, then drains.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	table := &Table{}
	for _, s := range cfg.Static {
		addr := s.Addr
		_, err := table.Add(route.Route{Header: s.Header, Cookie: s.Cookie, Baggage: s.Baggage, Value: s.Value, Owner: "--route " + addr},
			func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			})
		if err != nil {
			return err
		}
	}
	h := NewHandler(table, cfg.Upstream, cfg.Pod, log)
	h.H2C = cfg.H2C
	h.Watches = &Watches{Pod: cfg.Pod}

	dataLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening for traffic on %s: %w", cfg.Listen, err)
	}
	var ctrlLn net.Listener
	if cfg.Control != "" {
		ctrlLn, err = net.Listen("tcp", cfg.Control)
		if err != nil {
			dataLn.Close()
			return fmt.Errorf("listening for tunnels on %s: %w", cfg.Control, err)
		}
	}
	var peerLn net.Listener
	if cfg.Peer != "" && ctrlLn != nil {
		peerLn, err = net.Listen("tcp", cfg.Peer)
		if err != nil {
			dataLn.Close()
			ctrlLn.Close()
			return fmt.Errorf("listening for relays on %s: %w", cfg.Peer, err)
		}
	}
	if cfg.Ready != nil {
		var ca net.Addr
		if ctrlLn != nil {
			ca = ctrlLn.Addr()
		}
		cfg.Ready(dataLn.Addr(), ca)
	}

	cfg.limits()
	d := &dispatcher{table: table, log: log, pod: cfg.Pod, max: int64(cfg.MaxConns)}
	srv := newServer(cfg, h, d, log)

	srvCtx, stopTunnels := context.WithCancel(context.Background())
	defer stopTunnels()
	if ctrlLn != nil {
		ts := &tunnel.Server{Pod: cfg.Pod, Routes: table, Probe: probeOnly(cfg.ServiceAddr), Watches: h.Watches, Send: doctor.SendMarked,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			}}
		if peerLn != nil {
			ts.Admitted = &tunnel.Admissions{}
			go ts.ServePeers(srvCtx, peerLn)
		}
		go ts.Serve(srvCtx, ctrlLn)
	}
	toHTTP := relay.NewConnListener(dataLn.Addr())
	var fast *fastPath
	if !cfg.NoFastPath {
		fast = &fastPath{table: table, watches: h.Watches, upstream: cfg.Upstream,
			headerTimeout: min(cfg.HeaderTimeout, cfg.IdleTimeout), log: log, handoff: toHTTP.Push, done: d.release,
			h2c: cfg.H2C, pod: cfg.Pod, idleTimeout: cfg.IdleTimeout,
			toHTTP: func(c net.Conn) {
				d.open.Add(1) // net/http counts it off when it closes
				toHTTP.Push(c)
			}}
	}
	d.ctx, d.fast, d.http = srvCtx, fast, toHTTP
	errc := make(chan error, 2)
	go func() { errc <- d.run(dataLn) }()
	go func() { errc <- srv.Serve(toHTTP) }()
	log.Info("serving", "listen", dataLn.Addr().String(), "upstream", cfg.Upstream, "control", cfg.Control)

	select {
	case err := <-errc:
		return fmt.Errorf("serving traffic: %w", err)
	case <-ctx.Done():
	}
	// Drain. kube-proxy takes a moment to stop sending new connections to
	// a terminating pod, so keep accepting for DrainDelay; meanwhile every
	// HTTP/1.1 response says Connection: close, so pooled connections move
	// away after their next request. Then close idle connections, send
	// HTTP/2 GOAWAY, and let requests in flight finish.
	srv.SetKeepAlivesEnabled(false)
	if fast != nil {
		fast.draining.Store(true)
	}
	time.Sleep(cfg.DrainDelay)
	dataLn.Close()
	shCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if fast != nil {
		go fast.drain(shCtx)
	}
	if err := srv.Shutdown(shCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if fast != nil {
		fast.drain(shCtx)
	}
	return nil
}

// limits fills in the defaults of the bounds on callers.
func (cfg *Config) limits() {
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = cfg.HeaderTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
}

// newServer is the net/http server for what the fast path does not take:
// HTTP/1.1 and h2c, heads and idleness bounded, every connection it closes
// counted off the dispatcher's cap.
func newServer(cfg Config, h http.Handler, d *dispatcher, log *slog.Logger) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &p,
		HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerStream: h2StreamWindow, MaxReceiveBufferPerConnection: h2ConnWindow},
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				d.release()
			}
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// probeOnly returns the probe operation limited to the Service's own
// address: a developer's CLI proves the Service reaches the sidecars, and
// nobody gets the sidecar to fetch anything else from inside the pod.
func probeOnly(addr string) func(context.Context, string) (string, error) {
	return func(ctx context.Context, raw string) (string, error) {
		u, err := url.Parse(raw)
		if err != nil || addr == "" || u.Scheme != "http" || u.Host != addr || u.User != nil {
			return "", fmt.Errorf("%w: this sidecar probes only http://%s/, not %q", tunnel.ErrBadRequest, addr, raw)
		}
		return probe(ctx, "http://"+addr+"/")
	}
}

// probe requests url with the probe header; a sidecar answers it itself.
func probe(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(tunnel.ProbeHeader, "1")
	req.Close = true // a new connection each time: a fresh kube-proxy decision
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("probing %s: %w", url, err)
	}
	resp.Body.Close()
	pod := resp.Header.Get(tunnel.ProbePodHeader)
	if resp.StatusCode != http.StatusNoContent || pod == "" {
		return "", fmt.Errorf("probing %s: answered by something other than a sidecar (status %d)", url, resp.StatusCode)
	}
	return pod, nil
}

// DefaultMaxConns is how many callers' connections a sidecar keeps open at
// once: with a fast-path head buffer of 32 KiB each, a full house of
// unfinished heads holds about 32 MiB, well under the container's limit.
const DefaultMaxConns = 1024

// dispatcher hands each connection to an --all route if there is one,
// else to the fast path, else to net/http; beyond max open connections it
// refuses new ones (no cap when max is 0).
type dispatcher struct {
	table *Table
	ctx   context.Context
	log   *slog.Logger
	pod   string
	fast  *fastPath
	http  *relay.ConnListener

	max           int64
	open, refused atomic.Int64
}

// release counts a connection as closed.
func (l *dispatcher) release() { l.open.Add(-1) }

func (l *dispatcher) run(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if l.open.Add(1) > l.max && l.max > 0 {
			l.open.Add(-1)
			if l.refused.Add(1)%1000 == 1 {
				l.log.Warn("refusing connections: too many open", "max", l.max, "refused", l.refused.Load())
			}
			_ = c.Close()
			continue
		}
		switch r := l.table.all(); {
		case r != nil:
			go func() {
				defer l.release()
				l.pipeToRoute(c, r)
			}()
		case l.fast != nil:
			go l.fast.serve(c)
		default:
			l.http.Push(c)
		}
	}
}

// probeWait is how long an --all connection is watched for a probe before
// it is piped: a client that speaks first has sent its request by then;
// one that waits for the server loses at most this much.
const probeWait = 50 * time.Millisecond

// pipeToRoute hands a whole connection to an --all route, no HTTP parsing,
// except that a probe (the first bytes carry the probe header) is answered
// here, so an --all intercept can be verified like any other.
func (l *dispatcher) pipeToRoute(conn net.Conn, r *liveRoute) {
	br := bufio.NewReaderSize(conn, 4096)
	conn.SetReadDeadline(time.Now().Add(probeWait))
	br.Peek(1)
	conn.SetReadDeadline(time.Time{})
	first, _ := br.Peek(br.Buffered())
	if bytes.Contains(bytes.ToLower(first), probeMarker) {
		fmt.Fprintf(conn, "HTTP/1.1 204 No Content\r\n%s: %s\r\nConnection: close\r\n\r\n", tunnel.ProbePodHeader, l.pod)
		conn.Close()
		return
	}
	remote, err := r.dial(l.ctx)
	if err != nil {
		l.log.Warn("tunnel dial failed", "route", r.String(), "err", err)
		conn.Close()
		return
	}
	tunnel.Pipe(&bufferedConn{Conn: conn, r: br}, remote)
}

var probeMarker = []byte(strings.ToLower(tunnel.ProbeHeader) + ":")

// bufferedConn reads what was peeked before the rest of the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// WriteTo keeps io.Copy from using the TCP connection's own WriteTo, which
// would skip the peeked bytes.
func (c *bufferedConn) WriteTo(w io.Writer) (int64, error) { return c.r.WriteTo(w) }

// h2Preface starts every HTTP/2 connection with prior knowledge (h2c); its
// first line is in the buffer once the fast path has looked at the head.
var h2Preface = []byte("PRI * HTTP/2.0\r\n")

// isH2Preface reports whether br holds the start of an h2c connection.
func isH2Preface(br *bufio.Reader) bool {
	head, _ := br.Peek(min(br.Buffered(), len(h2Preface)))
	return bytes.Equal(head, h2Preface)
}

// forHTTP prepares a connection the fast path hands to net/http: an h2c
// connection gets its writes coalesced, since Go's HTTP/2 server writes
// and flushes each frame on its own (a system call per frame).
func forHTTP(c net.Conn, br *bufio.Reader) net.Conn {
	bc := &bufferedConn{Conn: c, r: br}
	if isH2Preface(br) {
		return &coalescedConn{bufferedConn: bc, rwc: tunnel.CoalesceWrites(bc)}
	}
	return bc
}

// coalescedConn is a bufferedConn whose writes go through a coalescer.
type coalescedConn struct {
	*bufferedConn
	rwc io.ReadWriteCloser
}

func (c *coalescedConn) Write(p []byte) (int, error) { return c.rwc.Write(p) }
func (c *coalescedConn) Close() error                { return c.rwc.Close() }

// CloseWrite passes half-closes on to the TCP connection.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
