//go:build !linux

package proxy

import "net"

// fastIO returns c: raw system calls are used on Linux only.
func fastIO(c net.Conn) net.Conn { return c }

// tcpOf returns the TCP connection under c, for splice(2).
func tcpOf(c any) (*net.TCPConn, bool) {
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}

// spliceRaw is Linux's only.
func spliceRaw(dst, src net.Conn, n int64) (bool, error) { return false, nil }
