package demo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// TunnelDialTimeout bounds how long ServeTunnel waits for the address a
// client asked for.
const TunnelDialTimeout = 5 * time.Second

// ServeTunnel makes this process a client inside the cluster for a program
// outside it: every connection on ln starts with an HTTP CONNECT request
// naming HOST:PORT; the demo opens a TCP connection to it from where it
// runs, answers 200 once connected (502 with the reason when the dial
// fails: refused, timed out, no such host), and then copies bytes both ways
// until both sides are done, passing a half-close on. What travels inside
// is the client's own: HTTP/1.1, h2c, gRPC, WebSocket or raw TCP, on
// connections it may keep alive. The end-to-end tests reach ln through a
// port-forward, so their traffic leaves from a pod as any caller's does.
// Serve it on loopback only: it dials whatever it is asked to.
func (s *Server) ServeTunnel(ln net.Listener) error {
	return acceptEach(ln, s.serveTunnelConn)
}

func (s *Server) serveTunnelConn(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	req, err := http.ReadRequest(rd)
	if err != nil {
		tunnelRefuse(conn, http.StatusBadRequest, fmt.Sprintf("reading the CONNECT request: %v", err))
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if req.Method != http.MethodConnect {
		tunnelRefuse(conn, http.StatusMethodNotAllowed, "only CONNECT HOST:PORT is served here")
		return
	}
	start := time.Now()
	target, err := net.DialTimeout("tcp", req.Host, TunnelDialTimeout)
	if err != nil {
		s.logf("pod=%s tunnel to %s: %v", s.cfg.Pod, req.Host, err)
		tunnelRefuse(conn, http.StatusBadGateway, err.Error())
		return
	}
	defer target.Close()
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	// Bytes the client sent right after its request head are the first of
	// the tunnel's.
	var first io.Reader = conn
	if n := rd.Buffered(); n > 0 {
		head, _ := rd.Peek(n)
		first = io.MultiReader(bytes.NewReader(bytes.Clone(head)), conn)
	}
	up, down := make(chan error, 1), make(chan error, 1)
	go func() { up <- pipe(target, first) }()
	go func() { down <- pipe(conn, target) }()
	var sent, received error
	for range 2 {
		select {
		case sent = <-up:
			up = nil
		case received = <-down:
			down = nil
		}
		if sent != nil || received != nil {
			// A reset or a failed write on one side: end both at once,
			// as a broken connection would.
			break
		}
	}
	s.logf("pod=%s tunnel to %s remote=%s duration=%s", s.cfg.Pod, req.Host, target.RemoteAddr(), time.Since(start).Round(time.Millisecond))
}

// pipe copies src to dst and then half-closes dst; it returns the copy's
// error, nil when src ended cleanly.
func pipe(dst net.Conn, src io.Reader) error {
	_, err := io.Copy(dst, src)
	if err != nil {
		return err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
	}
	return nil
}

func tunnelRefuse(conn net.Conn, code int, reason string) {
	fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(reason), reason)
}
