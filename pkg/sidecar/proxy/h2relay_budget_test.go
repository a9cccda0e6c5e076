package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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

	peakHeld := sampleHeld()

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
			grants := windowGrants(fr)
			c.SetWriteDeadline(time.Now().Add(3 * time.Second))
			fr.WriteSettings()
			for i := range h2MaxStreams {
				id := uint32(2*i + 1)
				if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: postBlock("/never", "content-length", "100000000"), EndHeaders: true}) != nil {
					return
				}
			}
			// 10,000 bytes a stream, 1 MiB a connection: more than the
			// relay grants. The caller keeps to the connection's window
			// (a stream's, 256 KiB, is never the bound) and sends what
			// the relay grants as it grants it, for a few seconds.
			avail := int64(h2Default)
			deadline := time.After(3 * time.Second)
			for i := range h2MaxStreams {
				for left := len(piece); left > 0; {
					for avail == 0 {
						select {
						case n := <-grants:
							avail += n
						case <-deadline:
							return
						}
					}
					n := min(int64(left), avail, h2Frame)
					if fr.WriteData(uint32(2*i+1), false, piece[:n]) != nil {
						return
					}
					left -= int(n)
					avail -= n
				}
			}
		}()
	}
	wg.Wait()

	// What the relay holds stops growing once each connection's window
	// is spent.
	heldSteady(20 * time.Second)
	servedWithin(t, addr, 5*time.Second)
	got := peakHeld()
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

// Callers' HTTP/2 connections each asking for large answers on many
// streams and never giving a window for them (reading the connection, so
// nothing backs up in the kernel): what the app sends ahead of the caller
// waits in the relay. The connections to the app start with HTTP/2's
// default window and grow only from the budget's Window, as the caller's
// own connection does: what the relay holds stays within the default
// window a connection and the budget's Window, and an ordinary caller is
// served meanwhile.
func TestH2UnreadResponsesHeldWithinBudget(t *testing.T) {
	const conns, streams = 64, 20
	app := bigAnswers(t)
	budget := BudgetFor(256 << 20)
	budget.Window = 4 << 20
	addr, done := startRun(t, Config{Upstream: hostOf(app), H2C: true, Budget: &budget})

	peakHeld := sampleHeld()
	var mu sync.Mutex
	var open []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	}()
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
			go io.Copy(io.Discard, c) // reads, and never gives a window
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, http2.ClientPreface)
			fr := http2.NewFramer(c, nil)
			fr.WriteSettings()
			for i := range streams {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: getBlock("/big"), EndHeaders: true, EndStream: true})
			}
		}()
	}
	wg.Wait()

	heldSteady(20 * time.Second)
	servedWithin(t, addr, 10*time.Second)
	select {
	case err := <-done:
		t.Fatalf("the sidecar ended under callers that read no answer: %v", err)
	default:
	}
	got := peakHeld()
	bound := (conns*h2Default + budget.Window) * 4 / 3
	if got > bound {
		t.Errorf("%d callers' connections that read no answer made the relay hold %d KiB of answers, want at most %d KiB (64 KiB a connection and the budget's %d KiB)",
			conns, got>>10, bound>>10, budget.Window>>10)
	}
	t.Logf("%d connections: the relay held at most %d KiB of answers", conns, got>>10)
	if got < conns*h2Default/4 {
		t.Errorf("the relay held only %d KiB: the answers did not wait as this test means them to", got>>10)
	}
}

// windowGrants reads (and drops) what comes on fr's connection, and sends
// on the channel it returns each increment of the connection's window.
func windowGrants(fr *http2.Framer) <-chan int64 {
	grants := make(chan int64, 1024)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if w, ok := f.(*http2.WindowUpdateFrame); ok && w.StreamID == 0 {
				select {
				case grants <- int64(w.Increment):
				default: // the sender has gone
				}
			}
		}
	}()
	return grants
}

// bigAnswers is an app speaking HTTP/1.1 and h2c that answers /big with
// 1 MiB, anything else with "app".
func bigAnswers(t *testing.T) *httptest.Server {
	t.Helper()
	big := bytes.Repeat([]byte("b"), 1<<20) // one for every answer: the app holds no more
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.WriteString(w, "app")
	}))
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s.Config.Protocols = &p
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// getBlock is the header block of a GET of path, encoded on its own.
func getBlock(path string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":path", path}, {":scheme", "http"}, {":authority", "x"}} {
		e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

// sampleHeld samples, every millisecond, how much DATA the relay holds
// beyond what it held at the start; the function it returns stops the
// sampling and says the most it saw.
func sampleHeld() func() int64 {
	base := h2Held.Load()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := h2Held.Load() - base; n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-sampled
		return peak.Load()
	}
}

// heldSteady waits, at most d, until what the relay holds has stopped
// changing for half a second: the callers' windows are spent.
func heldSteady(d time.Duration) {
	last, steady := int64(-1), time.Now()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n := h2Held.Load()
		if n != last {
			last, steady = n, time.Now()
		} else if time.Since(steady) > 500*time.Millisecond {
			return
		}
	}
}
