package httpwire

import (
	"net"
	"sync"
)

// ConnListener is what an http.Server serves when the connections come from
// elsewhere (a fast path that handed them over, a tunnel's streams): the
// connections pushed to it.
type ConnListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewConnListener returns a listener that says it listens at addr.
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Push hands c to the server, or closes it once the listener is closed.
func (l *ConnListener) Push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next connection pushed.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections pushed afterwards are closed.
func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given to NewConnListener.
func (l *ConnListener) Addr() net.Addr { return l.addr }
