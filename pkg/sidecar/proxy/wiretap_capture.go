package proxy

import (
	"sync"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// tapCapture keeps the first tap.BodyCap bytes of a body and counts them
// all; the transport may read a request body from its own goroutine. What
// it keeps it holds out of the sidecar's in-flight budget (bounds), and
// when the budget has no room it keeps nothing (short).
type tapCapture struct {
	bounds *tapBounds
	mu     sync.Mutex
	data   []byte
	n      int64
	eof    bool
	err    error // how a request body ended
	held   int64 // of the budget: cap(data)
	over   bool  // the budget had no room: no copy
	done   bool  // released: keeps nothing more
	hint   int   // the body's length where known: the buffer to take at once
}

// tapGrowFrom is the first buffer a capture takes; it doubles from there.
const tapGrowFrom = 4 << 10

func (c *tapCapture) note(p []byte, eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(len(p))
	c.eof = c.eof || eof
	if c.over || c.done {
		return
	}
	keep := min(tap.BodyCap-len(c.data), len(p))
	if keep <= 0 {
		return
	}
	if need := len(c.data) + keep; need > cap(c.data) {
		size := min(tap.BodyCap, max(need, 2*cap(c.data), tapGrowFrom, c.hint))
		if c.bounds != nil && !c.bounds.take(int64(size-cap(c.data))) {
			c.over, c.data = true, nil
			c.bounds.inFlight.Add(-c.held)
			c.held = 0
			return
		}
		c.held += int64(size - cap(c.data))
		grown := make([]byte, len(c.data), size)
		copy(grown, c.data)
		c.data = grown
	}
	c.data = append(c.data, p[:keep]...)
}

// short says the budget had no room for the copy.
func (c *tapCapture) short() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.over
}

// release gives back what the capture held of the budget; it keeps
// nothing after (the copy it made is the queue's to count).
func (c *tapCapture) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	if c.bounds != nil {
		c.bounds.inFlight.Add(-c.held)
	}
	c.held = 0
}

// ended is how the body ended: io.EOF, the error that cut it, or nil
// while it goes on.
func (c *tapCapture) ended() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *tapCapture) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// result is the copy of the body; declared is its Content-Length (-1:
// unknown). A body not read to its end counts as cut short. The copy
// holds the capture's bytes, which it keeps no more after.
func (c *tapCapture) result(declared int64) tap.Body {
	if c == nil {
		return tap.Body{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := max(c.n, declared)
	if !c.eof && declared < 0 && size == int64(len(c.data)) {
		size++ // more may have followed
	}
	data := c.data[:len(c.data):len(c.data)]
	c.done = true
	return tap.CapBody(data, size)
}

// whole is the copy of a body that went through to its end.
func (c *tapCapture) whole() tap.Body {
	c.note(nil, true)
	return c.result(-1)
}

// kept is how many bytes c holds.
func (c *tapCapture) kept() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.data))
}

// count counts n bytes that went on past what c keeps.
func (c *tapCapture) count(n int64, eof bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
	c.eof = c.eof || eof
}
