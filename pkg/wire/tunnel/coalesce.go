package tunnel

import (
	"io"
	"sync"
	"time"
)

// coalesceLimit is how much a tunnel's coalescing conn holds before a Write
// waits for the connection to take it: twice yamux's initial stream window.
// An HTTP/2 server's (CoalesceWrites) holds at most frameCoalesceLimit:
// enough to gather a burst of frames, little enough that a sidecar with many
// h2c callers does not hold their responses in its queues.
const (
	coalesceLimit      = 512 << 10
	frameCoalesceLimit = 64 << 10
)

// batches lends coalescing conns their queues: a conn holds one only while
// it has bytes to send, so thousands of idle h2c callers hold none.
var batches = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// closeDrain bounds how long Close lets queued bytes go out first: a session
// that ends because its peer stopped reading must not wait for it.
const closeDrain = 100 * time.Millisecond

// coalescingConn gathers the writes of a tunnel session into as few writes
// of the connection beneath as the connection's pace allows. yamux writes a
// frame's header and body separately, and the developer's end of a tunnel
// is a port-forward stream in which every write becomes a WebSocket (or
// SPDY) frame, a TLS record and a system call at both the API server and
// the kubelet. A writer goroutine sends whatever has piled up while its
// previous write was in flight: an idle tunnel writes at once, a busy one
// in large batches. Write returns once its bytes are queued; a failed write
// fails every later one and closes the connection, which yamux sees on its
// next read.
type coalescingConn struct {
	io.ReadWriteCloser

	limit  int
	mu     sync.Mutex
	cond   sync.Cond // signals: bytes queued, queue drained, closed
	queue  []byte
	err    error
	closed bool
	done   chan struct{} // closed when writeLoop returns
}

// CoalesceWrites returns c with its writes gathered as a tunnel session's
// are: for a connection whose writer makes many small writes in a row, such
// as an HTTP/2 server, which writes and flushes frame by frame.
func CoalesceWrites(c io.ReadWriteCloser) io.ReadWriteCloser {
	return coalesceUpTo(c, frameCoalesceLimit)
}

func coalesce(c io.ReadWriteCloser) *coalescingConn { return coalesceUpTo(c, coalesceLimit) }

func coalesceUpTo(c io.ReadWriteCloser, limit int) *coalescingConn {
	cc := &coalescingConn{ReadWriteCloser: c, limit: limit, done: make(chan struct{})}
	cc.cond.L = &cc.mu
	go cc.writeLoop()
	return cc
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && len(c.queue) >= c.limit {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, io.ErrClosedPipe
	}
	if c.queue == nil {
		c.queue = *batches.Get().(*[]byte)
	}
	c.queue = append(c.queue, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *coalescingConn) writeLoop() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = nil
		c.cond.Broadcast() // room for writers waiting on the limit
		c.mu.Unlock()

		_, err := c.ReadWriteCloser.Write(batch)

		c.mu.Lock()
		if err != nil {
			c.err = err
			c.queue = nil
			c.cond.Broadcast()
			c.mu.Unlock()
			c.ReadWriteCloser.Close()
			return
		}
		c.mu.Unlock()
		if cap(batch) <= 2*coalesceLimit {
			batch = batch[:0]
			batches.Put(&batch)
		}
	}
}

// Close lets what is queued (yamux's last frames) go out for a moment,
// then closes the connection beneath, which also ends a write in flight.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(closeDrain):
	}
	return c.ReadWriteCloser.Close()
}
