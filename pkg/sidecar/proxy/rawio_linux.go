package proxy

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
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
	pacers
}

func (c *rawTCP) paced() *pacers { return &c.pacers }

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
	var errno unix.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = rawCall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
		return errno != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	if c.r != nil {
		c.r.read(c, int(n))
	}
	return int(n), nil
}

func (c *rawTCP) Write(p []byte) (int, error) {
	if c.w != nil {
		c.w.write(c, len(p))
	}
	done := 0
	var errno unix.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			var n uintptr
			n, errno = rawCall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done), 0, 0, 0)
			if errno == unix.EAGAIN {
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
	case errno != 0 && errno != unix.EAGAIN:
		return done, c.opError("write", os.NewSyscallError("write", errno))
	}
	return done, nil
}

// rawCall makes a system call on a non-blocking descriptor without the
// scheduler's bookkeeping (unix.RawSyscall6), and makes it again when a
// signal interrupted it (EINTR): the call had done nothing then. EAGAIN
// and every other error are the caller's. unix.Splice, unix.Read and
// unix.Write are the calls that may block, which pay that bookkeeping.
func rawCall(trap, a1, a2, a3, a4, a5, a6 uintptr) (uintptr, unix.Errno) {
	return retryEINTR(func() (uintptr, unix.Errno) {
		n, _, errno := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		return n, errno
	})
}

// retryEINTR makes call until it ends other than interrupted.
func retryEINTR(call func() (uintptr, unix.Errno)) (uintptr, unix.Errno) {
	for {
		n, errno := call()
		if errno != unix.EINTR {
			return n, errno
		}
	}
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

// spliceRaw moves n bytes (-1: until EOF) from src to dst through a pipe,
// socket to socket in the kernel, with raw system calls as rawTCP's Read
// and Write make them: net.TCPConn's own splice makes each call as one
// that may block, and the scheduler's bookkeeping around it (thread
// hand-offs, the monitor's wake-ups) cost more than the calls for a body
// of 64 KiB (a fifth of the sidecar's CPU per request, measured). ok is
// false when dst or src is not raw, or no pipe could be had: nothing moved
// then.
func spliceRaw(dst, src net.Conn, n int64) (ok bool, err error) {
	d, dok := dst.(*rawTCP)
	s, sok := src.(*rawTCP)
	if !dok || !sok {
		return false, nil
	}
	p := getPipe()
	if p == nil {
		return false, nil
	}
	defer func() {
		if p.inside == 0 {
			pipePool.Put(p)
		} else {
			p.close() // what is left in it belongs to nobody now
		}
	}()
	for n != 0 {
		want := int64(1 << 20)
		if n > 0 {
			want = min(want, n)
		}
		in, err := p.fill(s, want)
		if err != nil {
			return true, err
		}
		if in == 0 {
			if n > 0 {
				return true, io.ErrUnexpectedEOF
			}
			return true, nil
		}
		if err := p.drain(d); err != nil {
			return true, err
		}
		if n > 0 {
			n -= int64(in)
		}
	}
	return true, nil
}

// pipe is a pipe for spliceRaw, pooled; inside counts the bytes in it.
type pipe struct {
	r, w   int
	inside int
}

var pipePool = sync.Pool{New: func() any {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	p := &pipe{r: fds[0], w: fds[1]}
	runtime.SetFinalizer(p, (*pipe).close) // dropped by the pool
	return p
}}

func getPipe() *pipe {
	p, _ := pipePool.Get().(*pipe)
	return p
}

func (p *pipe) close() {
	runtime.SetFinalizer(p, nil)
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// spliceFlags: move pages rather than copy them where the kernel can, and
// never block on the pipe (the sockets are non-blocking already).
const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// fill splices up to want bytes from s into the pipe (0: s is at EOF).
func (p *pipe) fill(s *rawTCP, want int64) (int, error) {
	var n uintptr
	var errno unix.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		n, errno = rawCall(unix.SYS_SPLICE, fd, 0, uintptr(p.w), 0, uintptr(want), spliceFlags)
		return errno != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, s.opError("read", err)
	case errno != 0:
		return 0, s.opError("read", os.NewSyscallError("splice", errno))
	}
	p.inside += int(n)
	if s.r != nil {
		s.r.read(s, int(n))
	}
	return int(n), nil
}

// drain splices everything in the pipe to d.
func (p *pipe) drain(d *rawTCP) error {
	if d.w != nil {
		d.w.write(d, p.inside)
	}
	var errno unix.Errno
	err := d.rc.Write(func(fd uintptr) bool {
		for p.inside > 0 {
			n, e := rawCall(unix.SYS_SPLICE, uintptr(p.r), 0, fd, 0, uintptr(p.inside), spliceFlags)
			if e == unix.EAGAIN {
				return false
			}
			if e != 0 {
				errno = e
				return true
			}
			p.inside -= int(n)
		}
		return true
	})
	switch {
	case err != nil:
		return d.opError("write", err)
	case errno != 0:
		return d.opError("write", os.NewSyscallError("splice", errno))
	}
	return nil
}
