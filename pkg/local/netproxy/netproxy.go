// Package netproxy is the developer's way into the cluster's network
// without privileges: a proxy on loopback that speaks SOCKS5 (with names
// resolved at the far end) and HTTP (CONNECT, and plain requests in
// absolute form) on one port, and port forwards for clients that speak
// neither. Every connection is made by a Dialer: through the tunnel, from
// a copy pod.
package netproxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Dialer connects to HOST:PORT in the cluster's network.
type Dialer func(ctx context.Context, addr string) (net.Conn, error)

// Proxy serves SOCKS5 and HTTP proxy requests on one listener.
type Proxy struct {
	Dial Dialer
	// Log is told about each connection that could not be made.
	Log func(format string, args ...any)

	once  sync.Once
	httpc chan net.Conn
	srv   *http.Server
}

// socksVersion is the first byte of every SOCKS5 greeting; no HTTP request
// starts with it.
const socksVersion = 5

// headTimeout bounds how long a client may take to say what it wants.
const headTimeout = 30 * time.Second

// Serve accepts connections on ln until ctx ends.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	p.once.Do(p.init)
	go func() { <-ctx.Done(); ln.Close(); p.srv.Close() }()
	go func() { _ = p.srv.Serve(&chanListener{conns: p.httpc, addr: ln.Addr(), done: ctx.Done()}) }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go p.serveConn(ctx, conn)
	}
}

func (p *Proxy) init() {
	p.httpc = make(chan net.Conn)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.Out.URL = r.In.URL; r.Out.Host = r.In.Host },
		Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, addr string) (net.Conn, error) { return p.Dial(ctx, addr) },
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.logf("HTTP proxy: %s %s: %v", r.Method, r.URL, err)
			http.Error(w, "kubectl-intercept: "+err.Error(), statusFor(err))
		},
		ErrorLog: slog.NewLogLogger(slog.New(slog.DiscardHandler).Handler(), slog.LevelDebug),
	}
	p.srv = &http.Server{
		ReadHeaderTimeout: headTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodConnect:
				p.connect(w, r)
			case r.URL.IsAbs() && r.URL.Host != "":
				rp.ServeHTTP(w, r)
			default:
				http.Error(w, "kubectl-intercept: this is a proxy: send absolute-form requests (http://host/path) or CONNECT", http.StatusBadRequest)
			}
		}),
		ErrorLog: slog.NewLogLogger(slog.New(slog.DiscardHandler).Handler(), slog.LevelDebug),
	}
}

func (p *Proxy) logf(format string, args ...any) {
	if p.Log != nil {
		p.Log(format, args...)
	}
}

// serveConn tells SOCKS5 from HTTP by the first byte.
func (p *Proxy) serveConn(ctx context.Context, conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(headTimeout))
	br := bufio.NewReader(conn)
	first, err := br.Peek(1)
	if err != nil {
		conn.Close()
		return
	}
	if first[0] == socksVersion {
		p.socks(ctx, tunnel.WithReader(conn, br))
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	select {
	case p.httpc <- tunnel.WithReader(conn, br):
	case <-ctx.Done():
		conn.Close()
	}
}

// connect answers CONNECT host:port: 200 and the bytes both ways, or the
// reason the pod could not connect.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	target, err := p.Dial(r.Context(), r.Host)
	if err != nil {
		p.logf("HTTP proxy: CONNECT %s: %v", r.Host, err)
		http.Error(w, "kubectl-intercept: "+err.Error(), statusFor(err))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		target.Close()
		http.Error(w, "kubectl-intercept: CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		target.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		conn.Close()
		target.Close()
		return
	}
	tunnel.Pipe(tunnel.WithReader(conn, rw.Reader), target)
}

// statusFor is the HTTP status of a failed dial: 504 when it timed out,
// 403 when the pod may not dial for us, 502 otherwise.
func statusFor(err error) int {
	var de *tunnel.DialError
	if errors.As(err, &de) {
		switch de.Reason {
		case tunnel.DialTimeout:
			return http.StatusGatewayTimeout
		case tunnel.DialNotAllowed:
			return http.StatusForbidden
		}
	}
	return http.StatusBadGateway
}

// SOCKS5 (RFC 1928), no authentication, CONNECT only.
const (
	socksNoAuth       = 0x00
	socksNoAcceptable = 0xff
	socksConnect      = 0x01
	atypIPv4          = 0x01
	atypDomain        = 0x03
	atypIPv6          = 0x04

	repSucceeded          = 0x00
	repFailure            = 0x01
	repNotAllowed         = 0x02
	repNetUnreachable     = 0x03
	repHostUnreachable    = 0x04
	repRefused            = 0x05
	repTTLExpired         = 0x06
	repCommandUnsupported = 0x07
	repAddressUnsupported = 0x08
)

func (p *Proxy) socks(ctx context.Context, conn net.Conn) {
	addr, err := socksHandshake(conn)
	if err != nil {
		conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	target, err := p.Dial(ctx, addr)
	if err != nil {
		p.logf("SOCKS5 proxy: %s: %v", addr, err)
		_, _ = conn.Write(socksReply(socksCode(err)))
		conn.Close()
		return
	}
	if _, err := conn.Write(socksReply(repSucceeded)); err != nil {
		conn.Close()
		target.Close()
		return
	}
	tunnel.Pipe(conn, target)
}

// socksHandshake reads the greeting and the request and returns the
// address asked for; it answers what it refuses itself.
func socksHandshake(conn net.Conn) (string, error) {
	var head [2]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return "", err
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(conn, methods); err != nil {
		return "", err
	}
	noAuth := false
	for _, m := range methods {
		noAuth = noAuth || m == socksNoAuth
	}
	if !noAuth {
		_, _ = conn.Write([]byte{socksVersion, socksNoAcceptable})
		return "", errors.New("the client offers no method without authentication")
	}
	if _, err := conn.Write([]byte{socksVersion, socksNoAuth}); err != nil {
		return "", err
	}
	var req [4]byte
	if _, err := io.ReadFull(conn, req[:]); err != nil {
		return "", err
	}
	if req[0] != socksVersion {
		return "", errors.New("not SOCKS5")
	}
	var host string
	switch req[3] {
	case atypIPv4, atypIPv6:
		ip := make(net.IP, 4)
		if req[3] == atypIPv6 {
			ip = make(net.IP, 16)
		}
		if _, err := io.ReadFull(conn, ip); err != nil {
			return "", err
		}
		host = ip.String()
	case atypDomain:
		var n [1]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return "", err
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(conn, name); err != nil {
			return "", err
		}
		host = string(name)
	default:
		_, _ = conn.Write(socksReply(repAddressUnsupported))
		return "", fmt.Errorf("address type %d", req[3])
	}
	var port [2]byte
	if _, err := io.ReadFull(conn, port[:]); err != nil {
		return "", err
	}
	if req[1] != socksConnect {
		_, _ = conn.Write(socksReply(repCommandUnsupported))
		return "", fmt.Errorf("command %d: only CONNECT is supported", req[1])
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}

func socksReply(code byte) []byte {
	return []byte{socksVersion, code, 0, atypIPv4, 0, 0, 0, 0, 0, 0}
}

// socksCode is the SOCKS5 reply for a failed dial.
func socksCode(err error) byte {
	var de *tunnel.DialError
	if !errors.As(err, &de) {
		return repFailure
	}
	switch de.Reason {
	case tunnel.DialUnresolvable:
		return repHostUnreachable
	case tunnel.DialRefused:
		return repRefused
	case tunnel.DialUnreachable:
		return repNetUnreachable
	case tunnel.DialTimeout:
		return repTTLExpired
	case tunnel.DialNotAllowed:
		return repNotAllowed
	}
	return repFailure
}

// Forward accepts connections on ln until ctx ends and connects each to
// addr through dial; a connection that cannot be made is closed and
// reported to onErr, and the forward keeps running.
func Forward(ctx context.Context, ln net.Listener, dial Dialer, addr string, onErr func(error)) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			target, err := dial(ctx, addr)
			if err != nil {
				conn.Close()
				if onErr != nil {
					onErr(err)
				}
				return
			}
			tunnel.Pipe(conn, target)
		}()
	}
}

// chanListener hands the HTTP server the connections Serve sniffed.
type chanListener struct {
	conns chan net.Conn
	addr  net.Addr
	done  <-chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }
