package proxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Callers' HTTP/2 connections of 100 streams whose bodies never end, each
// sending as much body as the relay's windows take, to an HTTP/1.1 app:
// a few streams a connection get a connection to the app, the others
// wait, and so does what they sent. What the relay holds, over all those
// connections, stays within HTTP/2's default window a connection and the
// budget's Window, however much the callers send; an ordinary caller is
// served meanwhile.
func TestH2FillHeldWithinBudget(t *testing.T) {
	const conns = 200
	app := newRecorder(t)
	budget := BudgetFor(256 << 20)
	budget.Window = 4 << 20
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), Budget: &budget})

	base := h2Held.Load()
	var peak int64
	var peakMu sync.Mutex
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			n := h2Held.Load() - base
			peakMu.Lock()
			peak = max(peak, n)
			peakMu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
	piece := make([]byte, 10000)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			io.WriteString(c, http2.ClientPreface)
			fr := http2.NewFramer(c, c)
			go io.Copy(io.Discard, c)
			c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			fr.WriteSettings()
			for i := range h2MaxStreams {
				id := uint32(2*i + 1)
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: postBlock("/never", "content-length", "100000000"), EndHeaders: true}) != nil {
					return
				}
			}
			// 10,000 bytes a stream, 1 MiB a connection: more than the
			// relay grants, so the writes block once the kernel's
			// buffers are full and end at the deadline.
			for i := range h2MaxStreams {
				if fr.WriteData(uint32(2*i+1), false, piece) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()

	// What the relay holds stops growing once each connection's window
	// is spent.
	last, steady := int64(-1), time.Now()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := h2Held.Load()
		if n != last {
			last, steady = n, time.Now()
		} else if time.Since(steady) > 500*time.Millisecond {
			break
		}
	}
	servedWithin(t, addr, 5*time.Second)
	close(stop)
	<-sampled

	peakMu.Lock()
	got := peak
	peakMu.Unlock()
	// A third over the windows for the buffers' rounding.
	bound := (conns*h2Default + budget.Window) * 4 / 3
	if got > bound {
		t.Errorf("%d callers' connections made the relay hold %d KiB of DATA, want at most %d KiB (64 KiB a connection and the budget's %d KiB)",
			conns, got>>10, bound>>10, budget.Window>>10)
	}
	t.Logf("%d connections: the relay held at most %d KiB of DATA", conns, got>>10)
	// The attack did make the relay hold what it may: not a vacuous bound.
	if got < conns*h2Default/4 {
		t.Errorf("the relay held only %d KiB: the callers' streams did not wait as this test means them to", got>>10)
	}
}
