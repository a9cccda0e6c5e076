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
	// hint is the body's length where known: the buffer grows to it, and
	// no further, from at most tapHintFirst (a length is what a caller
	// declares, not what it sends).
	hint int
	// pooled: data is from the pool of buffers (getTapBuf), to go back
	// once the copy was encoded (the fast path's; net/http's copies are
	// let go to the collector)
	pooled bool
	handed bool // result handed data over
}

// recycle gives back a pooled buffer that was not handed over.
func (c *tapCapture) recycle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pooled && !c.handed && c.data != nil {
		putTapBuf(c.data)
	}
	c.data = nil
}

// The buffers of the fast path's copies are pooled by size, powers of two
// from tapGrowFrom to tap.BodyCap: under load, every copied request would
// otherwise allocate its bodies anew.
var tapBufs [tapBufClasses]sync.Pool

const tapBufClasses = 9 // 4 KiB ... 1 MiB

func tapBufClass(size int) (int, bool) {
	for i, n := 0, tapGrowFrom; i < tapBufClasses; i, n = i+1, n*2 {
		if size == n {
			return i, true
		}
		if size < n {
			return i, false
		}
	}
	return 0, false
}

// getTapBuf returns an empty buffer of at least size bytes.
func getTapBuf(size int) []byte {
	i, exact := tapBufClass(size)
	if size < tapGrowFrom || size > tap.BodyCap {
		return make([]byte, 0, size)
	}
	if !exact {
		size = tapGrowFrom << i
	}
	if b, ok := tapBufs[i].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

// tapBufSize is the capacity getTapBuf returns for size.
func tapBufSize(size int) int {
	if i, exact := tapBufClass(size); !exact && size >= tapGrowFrom && size <= tap.BodyCap {
		return tapGrowFrom << i
	}
	return size
}

// putTapBuf gives a buffer from getTapBuf back.
func putTapBuf(b []byte) {
	if i, exact := tapBufClass(cap(b)); exact {
		tapBufs[i].Put(&b)
	}
}

// tapGrowFrom is the first buffer a capture takes; it doubles from there.
// tapHintFirst is the most it takes at first for a body of known length:
// a caller that declares 1 MiB and sends one byte holds 64 KiB of the
// in-flight budget, not 1 MiB.
const (
	tapGrowFrom  = 4 << 10
	tapHintFirst = 64 << 10
)

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
		first := tapGrowFrom
		if c.hint > 0 {
			first = min(c.hint, tapHintFirst)
		}
		size := max(need, 2*cap(c.data), first)
		if c.hint >= need {
			size = min(size, c.hint)
		}
		size = tapBufSize(min(tap.BodyCap, size)) // what getTapBuf takes: the budget counts it all
		if c.bounds != nil && !c.bounds.take(int64(size-cap(c.data))) {
			c.over, c.data = true, nil
			c.bounds.inFlight.Add(-c.held)
			c.held = 0
			return
		}
		c.held += int64(size - cap(c.data))
		grown := getTapBuf(size)[:len(c.data)]
		copy(grown, c.data)
		if c.pooled {
			putTapBuf(c.data)
		}
		c.data, c.pooled = grown, true
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
	c.done, c.handed = true, true
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
