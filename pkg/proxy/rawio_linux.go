package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawTCP reads and writes a TCP socket with raw system calls. Go's sockets
// are non-blocking, so a read or a write returns at once (EAGAIN when it
// would block, and then the netpoller waits, as for any net.Conn); what
// the raw call saves is the scheduler's bookkeeping around a system call
// that may block (entersyscall/exitsyscall), which at partial load also
// wakes the runtime's monitor thread from its sleep on most requests. A
// profile of the sidecar on a core of its own at 16 connections showed
// that bookkeeping and those wake-ups among the largest costs above the
// kernel's own.
type rawTCP struct {
	*net.TCPConn
	rc syscall.RawConn
}

// fastIO returns c with raw reads and writes when it is a TCP connection.
func fastIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawTCP{TCPConn: tc, rc: rc}
}

func (c *rawTCP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

func (c *rawTCP) Write(p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			var n uintptr
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
			if errno == syscall.EAGAIN {
				return false
			}
			if errno != 0 {
				return true
			}
			done += int(n)
		}
		return true
	})
	switch {
	case err != nil:
		return done, c.opError("write", err)
	case errno != 0 && errno != syscall.EAGAIN:
		return done, c.opError("write", os.NewSyscallError("write", errno))
	}
	return done, nil
}

func (c *rawTCP) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// tcpOf returns the TCP connection under c, for splice(2).
func tcpOf(c any) (*net.TCPConn, bool) {
	switch c := c.(type) {
	case *net.TCPConn:
		return c, true
	case *rawTCP:
		return c.TCPConn, true
	}
	return nil, false
}
