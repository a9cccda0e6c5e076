//go:build !linux

package proxy

import "net"

// fastIO returns c with its pacers: raw system calls are used on Linux
// only.
func fastIO(c net.Conn) net.Conn { return &pacedConn{Conn: c} }

// pacedConn keeps a connection's reads and writes to its pacers.
type pacedConn struct {
	net.Conn
	pacers
}

func (c *pacedConn) paced() *pacers { return &c.pacers }

func (c *pacedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.r != nil {
		c.r.read(c, n)
	}
	return n, err
}

func (c *pacedConn) Write(p []byte) (int, error) {
	if c.w != nil {
		c.w.write(c, len(p))
	}
	return c.Conn.Write(p)
}

// tcpOf returns the TCP connection under c, for splice(2).
func tcpOf(c any) (*net.TCPConn, bool) {
	if p, ok := c.(*pacedConn); ok {
		c = p.Conn
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}

// spliceRaw is Linux's only.
func spliceRaw(dst, src net.Conn, n int64) (bool, error) { return false, nil }
