package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A nil *Budget allows everything.
//
// Budget is what the whole sidecar may hold at once, shared by every port
// it serves: callers' connections, connections of its own to the app and to
// developers ("legs"), and heads too large for the fast path's buffer being
// read. One caller on one port cannot take what the others need, and the
// sum stays within the container's memory limit whatever callers do.
//
// Each caller's connection may hold one leg of its own; every further leg
// (an HTTP/2 caller's extra connections to the app, a second destination)
// draws on Legs, so a caller always reaches the app however many legs
// others hold.
type Budget struct {
	// Conns is how many callers' connections may be open at once.
	Conns int
	// Legs is how many legs beyond each caller connection's first.
	Legs int
	// Heads is how many oversized (beyond the fast path's buffer) request
	// heads may be read at once.
	Heads int
	// Window is how many bytes of HTTP/2 connection window, beyond the
	// 64 KiB each caller's connection starts with, the relay may grant
	// callers in all: what callers send and the relay cannot pass on yet
	// (a stream waiting for a connection to the app) waits within it.
	Window int64

	conns, legs, heads, window atomic.Int64
	refused, evicted           atomic.Int64

	mu      sync.Mutex
	ports   []evictor
	logOnce sync.Once
	log     *slog.Logger
}

// evictor is a port's way of giving back a connection that waits for its
// caller: the one that has waited longest, and since when.
type evictor interface {
	oldestWaiting() (since time.Time, evict func() bool)
}

// The cost of each thing the budget counts, in the worst case a caller can
// make it (measured on the real binary, with some margin): a caller's
// connection with a full head buffer, its goroutine and its kernel socket;
// a leg with its read buffer; an oversized head as net/http holds it.
const (
	connCost = 64 << 10
	legCost  = 64 << 10
	headCost = 160 << 10
	// baseCost is what the sidecar holds with no caller at all, the Go
	// runtime included.
	baseCost = 16 << 20
	// DefaultMemoryLimit is assumed when the container's limit is unknown:
	// the limit the copy gives the sidecar.
	DefaultMemoryLimit = 256 << 20
)

// BudgetFor divides a memory limit among the things a Budget counts: half
// of the limit is for callers (the other half is the garbage collector's
// slack, kept by a soft memory limit), of which, past the base, half goes to
// callers' connections, a quarter to extra legs, and an eighth to
// oversized heads, and the last eighth to HTTP/2 callers' windows. Small
// limits still get a working minimum.
func BudgetFor(limit int64) Budget {
	if limit <= 0 {
		limit = DefaultMemoryLimit
	}
	usable := max(limit/2-baseCost, 0)
	return Budget{
		Conns:  int(min(max(usable/2/connCost, 64), 1<<16)),
		Legs:   int(min(max(usable/4/legCost, 32), 1<<16)),
		Heads:  int(min(max(usable/8/headCost, 8), 1<<12)),
		Window: max(usable/8, 2<<20),
	}
}

// MemoryLimit reads a memory limit in bytes as the downward API gives it
// (limits.memory with divisor 1); empty is 0 (unknown). A node without a
// limit gives the node's allocatable memory, which the caller then caps.
func MemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("memory limit %q is not a number of bytes", s)
	}
	return n, nil
}

// String says what the budget allows, for the log.
func (b *Budget) String() string {
	return fmt.Sprintf("%d connections, %d extra legs, %d oversized heads, %d MiB of HTTP/2 window", b.Conns, b.Legs, b.Heads, b.Window>>20)
}

// register adds a port's connections to those the budget may close.
func (b *Budget) register(e evictor, log *slog.Logger) {
	b.logOnce.Do(func() { b.log = log })
	b.mu.Lock()
	b.ports = append(b.ports, e)
	b.mu.Unlock()
}

// admit counts a new caller's connection in; when the budget is full, the
// connection that has waited longest for its caller (idle between
// requests, in an unfinished head, or in a stalled body), on any port, is
// closed to make room. false: nothing could be closed, refuse the new one.
func (b *Budget) admit() bool {
	if b == nil {
		return true
	}
	if b.conns.Add(1) <= int64(b.Conns) || b.Conns <= 0 {
		return true
	}
	if b.evictOne() {
		return true // the evicted one counts itself out as it closes
	}
	b.conns.Add(-1)
	if n := b.refused.Add(1); n%1000 == 1 && b.log != nil {
		b.log.Warn("refusing connections: the sidecar's budget is full and no connection waits for its caller", "max", b.Conns, "refused", n)
	}
	return false
}

// release counts a caller's connection out.
func (b *Budget) release() {
	if b != nil {
		b.conns.Add(-1)
	}
}

// evictOne closes the connection that has waited longest for its caller.
func (b *Budget) evictOne() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	ports := b.ports
	b.mu.Unlock()
	for range 3 { // a candidate may start a request meanwhile: try another
		var best func() bool
		var since time.Time
		for _, p := range ports {
			t, ev := p.oldestWaiting()
			if ev != nil && (best == nil || t.Before(since)) {
				best, since = ev, t
			}
		}
		if best == nil {
			return false
		}
		if best() {
			b.evicted.Add(1)
			return true
		}
	}
	return false
}

// takeLeg draws one extra leg; false if none is left.
func (b *Budget) takeLeg() bool {
	if b == nil {
		return true
	}
	if b.legs.Add(1) <= int64(b.Legs) || b.Legs <= 0 {
		return true
	}
	b.legs.Add(-1)
	return false
}

func (b *Budget) giveLeg() {
	if b != nil {
		b.legs.Add(-1)
	}
}

// takeHead draws one oversized head; false if none is left.
func (b *Budget) takeHead() bool {
	if b == nil {
		return true
	}
	if b.heads.Add(1) <= int64(b.Heads) || b.Heads <= 0 {
		return true
	}
	b.heads.Add(-1)
	return false
}

func (b *Budget) giveHead() {
	if b != nil {
		b.heads.Add(-1)
	}
}

// takeWindow draws up to want bytes of HTTP/2 connection window and
// returns how many it got.
func (b *Budget) takeWindow(want int64) int64 {
	if b == nil || b.Window <= 0 {
		return want
	}
	for {
		cur := b.window.Load()
		n := min(want, b.Window-cur)
		if n <= 0 {
			return 0
		}
		if b.window.CompareAndSwap(cur, cur+n) {
			return n
		}
	}
}

func (b *Budget) giveWindow(n int64) {
	if b != nil && n > 0 {
		b.window.Add(-n)
	}
}

// acceptRetryable reports whether an Accept error is one the listener
// recovers from (out of file descriptors or buffers, a connection that
// went before it was accepted): the sidecar waits and accepts again
// instead of ending.
func acceptRetryable(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// acceptBackoff is how long to wait after the n-th Accept error in a row:
// 5 ms doubling, at most a second.
func acceptBackoff(n int) time.Duration {
	d := 5 * time.Millisecond
	for i := 1; i < n && d < time.Second; i++ {
		d *= 2
	}
	return min(d, time.Second)
}

// outOfFiles reports whether err says the process has no file descriptor
// left, when closing a waiting connection may let the next Accept succeed.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
