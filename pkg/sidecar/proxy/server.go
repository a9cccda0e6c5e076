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
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
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
	// Peer is where other pods' sidecars reach this one over the pod network (see
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
	// MaxConns caps the callers' connections open at once on this port
	// when it has no Budget of its own (a test); Budget's Conns otherwise.
	MaxConns int
	// Budget is shared by every port of the sidecar: callers' connections,
	// legs and oversized heads, beyond which the connection that has
	// waited longest for its caller is closed, or a new one refused. When
	// nil, the port gets one of its own from BudgetFor(0), MaxConns
	// applied.
	Budget *Budget
	// MinRate is what a caller must average, in bytes a second, once
	// RateWait has passed, while its request's body comes in and while a
	// response goes out to it; either may also stall for IdleTimeout at
	// most. 1 KiB a second after ten seconds when zero.
	MinRate  int64
	RateWait time.Duration
	// ServiceAddr is the intercepted Service's ClusterIP:port, the only
	// address the control operation probe may request; empty: no probes.
	ServiceAddr string
	// IdleTimeout closes a kept-alive connection that sends no request for
	// that long, on both paths; HeaderTimeout when zero.
	IdleTimeout time.Duration
	// Ready, if set, is called once both listeners are bound.
	Ready func(data, control net.Addr)
	// wrapListener, if set, stands between the data listener and the
	// dispatcher (tests: a listener out of file descriptors).
	wrapListener func(net.Listener) net.Listener
}

// MaxHeaderBytes bounds a request's head; a larger one is answered 431 and
// never reaches the app.
const MaxHeaderBytes = 64 << 10

// StaticRoute sends requests whose Header, Cookie or Baggage member (one of
// the three) equals Value, or, with All, every request, to Addr; a path
// prefix, a path regex and methods narrow it as they narrow a route. With
// Wiretap it takes nothing: a copy of each request it matches and of its
// answer goes to Addr, as a tap stream (pkg/wire/tap).
type StaticRoute struct {
	Header, Cookie, Baggage, Value, Addr string
	All, Wiretap                         bool
	PathPrefix, PathRegex, Methods       string
}

// Run serves until ctx ends, then drains.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	table := &Table{}
	for _, s := range cfg.Static {
		addr := s.Addr
		_, err := table.Add(route.Route{Header: s.Header, Cookie: s.Cookie, Baggage: s.Baggage, Value: s.Value, All: s.All,
			PathPrefix: s.PathPrefix, PathRegex: s.PathRegex, Methods: s.Methods, Owner: "--route " + addr, Wiretap: s.Wiretap},
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

	dataLn, ctrlLn, peerLn, err := cfg.listen()
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		var ca net.Addr
		if ctrlLn != nil {
			ca = ctrlLn.Addr()
		}
		cfg.Ready(dataLn.Addr(), ca)
	}

	cfg.limits()
	d := &dispatcher{table: table, log: log, pod: cfg.Pod, budget: cfg.Budget, idle: map[net.Conn]time.Time{}}
	cfg.Budget.register(d, log)
	srv := newServer(cfg, h, d, log)

	srvCtx, stopTunnels := context.WithCancel(context.Background())
	defer stopTunnels()
	if ctrlLn != nil {
		cfg.serveTunnels(srvCtx, table, h.Watches, ctrlLn, peerLn)
	}
	toHTTP := httpwire.NewConnListener(dataLn.Addr())
	var fast *fastPath
	if !cfg.NoFastPath {
		fast = cfg.newFastPath(table, h.Watches, d, toHTTP, log)
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
	if cfg.Budget == nil {
		b := BudgetFor(0)
		if cfg.MaxConns > 0 {
			b.Conns = cfg.MaxConns
		}
		cfg.Budget = &b
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = defaultMinRate
	}
	if cfg.RateWait == 0 {
		cfg.RateWait = defaultRateWait
	}
}

// listen opens the sidecar's listeners: for traffic, for tunnels (nil
// without Control) and for other pods' sidecars (nil without Peer).
func (cfg *Config) listen() (data, ctrl, peer net.Listener, err error) {
	data, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listening for traffic on %s: %w", cfg.Listen, err)
	}
	if cfg.wrapListener != nil {
		data = cfg.wrapListener(data)
	}
	if cfg.Control == "" {
		return data, nil, nil, nil
	}
	ctrl, err = net.Listen("tcp", cfg.Control)
	if err != nil {
		data.Close()
		return nil, nil, nil, fmt.Errorf("listening for tunnels on %s: %w", cfg.Control, err)
	}
	if cfg.Peer == "" {
		return data, ctrl, nil, nil
	}
	peer, err = net.Listen("tcp", cfg.Peer)
	if err != nil {
		data.Close()
		ctrl.Close()
		return nil, nil, nil, fmt.Errorf("listening for other pods' sidecars on %s: %w", cfg.Peer, err)
	}
	return data, ctrl, peer, nil
}

// serveTunnels serves developers' tunnels on ctrl, and other pods'
// sidecars on peer if not nil, until ctx ends.
func (cfg *Config) serveTunnels(ctx context.Context, table *Table, watches *Watches, ctrl, peer net.Listener) {
	ts := &tunnel.Server{Pod: cfg.Pod, Routes: table, Probe: probeOnly(cfg.ServiceAddr), Watches: watches, Send: tunnel.SendMarked,
		ResolvConf: readResolvConf,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}}
	if peer != nil {
		ts.Admitted = &tunnel.Admissions{}
		go ts.ServePeers(ctx, peer)
	}
	go ts.Serve(ctx, ctrl)
}

// newFastPath is the fast path of the port cfg describes, handing to
// net/http through toHTTP what it does not take.
func (cfg *Config) newFastPath(table *Table, watches *Watches, d *dispatcher, toHTTP *httpwire.ConnListener, log *slog.Logger) *fastPath {
	return &fastPath{table: table, watches: watches, upstream: cfg.Upstream,
		headerTimeout: min(cfg.HeaderTimeout, cfg.IdleTimeout), log: log, handoff: toHTTP.Push, done: d.release,
		h2c: cfg.H2C, pod: cfg.Pod, idleTimeout: cfg.IdleTimeout, budget: cfg.Budget,
		pace: pace{idle: cfg.IdleTimeout, rate: cfg.MinRate, grace: cfg.RateWait},
		toHTTP: func(c net.Conn) {
			d.budget.conns.Add(1) // net/http counts it off when it closes
			toHTTP.Push(c)
		}}
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
		ConnState: func(c net.Conn, s http.ConnState) {
			d.httpState(c, s)
		},
		// A head net/http reads for the fast path (one too large for its
		// buffer) gives back its share of the budget once it is whole.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if bc, ok := c.(interface{ headRead() }); ok {
				return context.WithValue(ctx, headKey{}, bc)
			}
			return ctx
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
	req.Header.Set(wire.ProbeHeader, "1")
	req.Close = true // a new connection each time: a fresh kube-proxy decision
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("probing %s: %w", url, err)
	}
	resp.Body.Close()
	pod := resp.Header.Get(wire.ProbePodHeader)
	if resp.StatusCode != http.StatusNoContent || pod == "" {
		return "", fmt.Errorf("probing %s: answered by something other than a sidecar (status %d)", url, resp.StatusCode)
	}
	return pod, nil
}

// headKey finds, in a request's context, the connection whose oversized
// head net/http read.
type headKey struct{}

// headDone gives back the budget of an oversized head once net/http has
// read it whole.
func headDone(ctx context.Context) {
	if c, ok := ctx.Value(headKey{}).(interface{ headRead() }); ok {
		c.headRead()
	}
}

// dispatcher hands each connection to an --all route if there is one,
// else to the fast path, else to net/http, within the sidecar's budget.
type dispatcher struct {
	table  *Table
	ctx    context.Context
	log    *slog.Logger
	pod    string
	fast   *fastPath
	http   *httpwire.ConnListener
	budget *Budget

	mu   sync.Mutex
	idle map[net.Conn]time.Time // net/http's connections between requests, since when
}

// release counts a connection as closed.
func (l *dispatcher) release() { l.budget.release() }

// httpState follows net/http's connections: those between requests may be
// closed to make room; a closed one is counted out.
func (l *dispatcher) httpState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
	l.mu.Unlock()
	if s == http.StateClosed || s == http.StateHijacked {
		if bc, ok := c.(interface{ headRead() }); ok {
			bc.headRead()
		}
		l.release()
	}
}

// oldestWaiting returns the connection of this port that has waited
// longest for its caller, on the fast path or in net/http.
func (l *dispatcher) oldestWaiting() (time.Time, func() bool) {
	var since time.Time
	var evict func() bool
	if l.fast != nil {
		since, evict = l.fast.oldestWaiting()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, t := range l.idle {
		if evict == nil || t.Before(since) {
			c := c
			since, evict = t, func() bool {
				l.mu.Lock()
				_, still := l.idle[c]
				delete(l.idle, c)
				l.mu.Unlock()
				if still {
					c.Close()
				}
				return still
			}
		}
	}
	return since, evict
}

func (l *dispatcher) run(ln net.Listener) error {
	failures := 0
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !acceptRetryable(err) {
				return fmt.Errorf("accepting a connection: %w", err)
			}
			// Out of file descriptors or buffers: a connection that waits
			// for its caller makes room, and the listener tries again
			// shortly; the sidecar goes on serving those it has.
			failures++
			if failures%100 == 1 {
				l.log.Warn("accepting connections failed; trying again", "err", err, "in a row", failures)
			}
			if outOfFiles(err) {
				l.budget.evictOne()
			}
			select {
			case <-time.After(acceptBackoff(failures)):
			case <-l.ctx.Done():
				return nil
			}
			continue
		}
		failures = 0
		if !l.budget.admit() {
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
		fmt.Fprintf(conn, "HTTP/1.1 204 No Content\r\n%s: %s\r\nConnection: close\r\n\r\n", wire.ProbePodHeader, l.pod)
		conn.Close()
		return
	}
	remote, err := r.dial(l.ctx)
	if err != nil {
		l.log.Warn("tunnel dial failed", "route", r.String(), "err", err)
		conn.Close()
		return
	}
	defer r.pipe(conn)()
	if !l.table.liveNow(r) { // a contest came first
		conn.Close()
		remote.Close()
		return
	}
	tunnel.Pipe(&bufferedConn{Conn: conn, r: br}, remote)
}

var probeMarker = []byte(strings.ToLower(wire.ProbeHeader) + ":")

// bufferedConn reads what was peeked before the rest of the connection.
// With drop, the buffer goes once read out (net/http has buffers of its
// own), so a connection net/http keeps does not keep the fast path's too.
type bufferedConn struct {
	net.Conn
	r    *bufio.Reader
	drop bool
	give func()
	gave atomic.Bool
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return c.Conn.Read(p)
	}
	if c.drop && c.r.Buffered() == 0 {
		c.r = nil
		return c.Conn.Read(p)
	}
	return c.r.Read(p)
}

// WriteTo keeps io.Copy from using the TCP connection's own WriteTo, which
// would skip the peeked bytes.
func (c *bufferedConn) WriteTo(w io.Writer) (int64, error) {
	if c.r == nil {
		return io.Copy(w, struct{ io.Reader }{c.Conn})
	}
	return c.r.WriteTo(w)
}

// headRead gives back the budget of an oversized head, once.
func (c *bufferedConn) headRead() {
	if c.give != nil && c.gave.CompareAndSwap(false, true) {
		c.give()
	}
}

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
// and flushes each frame on its own (a system call per frame). give, if
// set, gives back the budget of its head once net/http has read it.
func forHTTP(c net.Conn, br *bufio.Reader, give func()) net.Conn {
	bc := &bufferedConn{Conn: c, r: br, give: give, drop: true}
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
