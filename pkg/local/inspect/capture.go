package inspect

import (
	"io"
	"sync"
	"sync/atomic"
)

// capture remembers the first bytes of a stream and counts all of them. The
// transport may still read a request body from its own goroutine after the
// handler is done, so it locks.
type capture struct {
	mu    sync.Mutex
	data  []byte
	limit int
	n     int64
	err   error // the first read error other than io.EOF
}

func newCapture(limit int) *capture { return &capture{limit: limit} }

// newCaptureFor captures BodyCaptureLimit bytes of a body of length n (-1:
// unknown), with room for them from the start.
func newCaptureFor(n int64) *capture {
	c := newCapture(BodyCaptureLimit)
	if n > 0 {
		c.data = make([]byte, 0, min(n, BodyCaptureLimit))
	}
	return c
}

func (c *capture) note(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.limit - len(c.data); room > 0 {
		c.data = append(c.data, p[:min(room, len(p))]...)
	}
	c.n += int64(len(p))
}

func (c *capture) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// failure is the error that cut the stream short, if any.
func (c *capture) failure() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// result returns a copy of what was captured so far and the bytes seen.
func (c *capture) result() (Body, int64) {
	if c == nil {
		return Body{}, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var data []byte
	if len(c.data) > 0 {
		data = append([]byte(nil), c.data...)
	}
	return Body{Data: data, Truncated: c.n > int64(len(c.data))}, c.n
}

// take returns what was captured, without a copy: for a stream that has
// ended, whose capture nobody writes to again.
func (c *capture) take() (Body, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := c.data
	if len(data) == 0 {
		data = nil
	}
	c.data = nil
	return Body{Data: data, Truncated: c.n > int64(len(data))}, c.n
}

// captureReader passes a body through, noting what is read.
type captureReader struct {
	io.ReadCloser
	c *capture
}

func (r captureReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.c.note(p[:n])
	}
	if err != nil && err != io.EOF {
		r.c.fail(err)
	}
	return n, err
}

// countingConn is the app's side of an upgraded connection: reads come
// from the app (the response direction), writes go to it (the request
// direction). The proxy copies each direction in its own goroutine and may
// return before both end, hence atomics.
type countingConn struct {
	io.ReadWriteCloser
	read, written atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	c.written.Add(int64(n))
	return n, err
}
