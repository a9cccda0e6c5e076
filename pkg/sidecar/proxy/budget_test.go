package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestBudgetFor(t *testing.T) {
	for _, tc := range []struct {
		limit              int64
		conns, legs, heads int
	}{
		{limit: 256 << 20, conns: 896, legs: 448, heads: 89},
		{limit: 0, conns: 896, legs: 448, heads: 89},     // unknown: the copy's 256 MiB
		{limit: 32 << 20, conns: 64, legs: 32, heads: 8}, // nothing past the base: the minimum
		{limit: 1 << 30, conns: 3968, legs: 1984, heads: 396},
	} {
		b := BudgetFor(tc.limit)
		if b.Conns != tc.conns || b.Legs != tc.legs || b.Heads != tc.heads {
			t.Errorf("BudgetFor(%d MiB) = %s, want %d, %d, %d", tc.limit>>20, b.String(), tc.conns, tc.legs, tc.heads)
		}
		// What the budget lets callers hold stays within half the limit.
		if tc.limit >= 256<<20 {
			if worst := baseCost + int64(b.Conns)*connCost + int64(b.Legs)*legCost + int64(b.Heads)*headCost + b.Window; worst > tc.limit/2 {
				t.Errorf("BudgetFor(%d MiB): worst case %d MiB, over half the limit", tc.limit>>20, worst>>20)
			}
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	if n, err := MemoryLimit("268435456"); err != nil || n != 256<<20 {
		t.Errorf("MemoryLimit = %d, %v", n, err)
	}
	if n, err := MemoryLimit(""); err != nil || n != 0 {
		t.Errorf("empty: %d, %v", n, err)
	}
	if _, err := MemoryLimit("256Mi"); err == nil || !strings.Contains(err.Error(), "not a number of bytes") {
		t.Errorf("256Mi: %v, want an error saying bytes", err)
	}
}

func TestPace(t *testing.T) {
	p := pace{idle: 30 * time.Second, rate: 1024, grace: 10 * time.Second}
	start := time.Unix(1000, 0)
	// Nothing yet: the grace period, not the idle time, comes first.
	if got := p.readBy(start, start, 0); !got.Equal(start.Add(10 * time.Second)) {
		t.Errorf("readBy(nothing) = %v after start", got.Sub(start))
	}
	// 20 KiB earned 20 s beyond the grace; the last byte 5 s ago.
	if got := p.readBy(start, start.Add(25*time.Second), 20<<10); !got.Equal(start.Add(30 * time.Second)) {
		t.Errorf("readBy(20 KiB) = %v after start, want 30 s", got.Sub(start))
	}
	// A fast body: the idle time after its last byte.
	if got := p.readBy(start, start.Add(time.Second), 1<<30); !got.Equal(start.Add(31 * time.Second)) {
		t.Errorf("readBy(1 GiB) = %v after start, want 31 s", got.Sub(start))
	}
	if got := p.writeBy(start, 10<<10); !got.Equal(start.Add(40 * time.Second)) {
		t.Errorf("writeBy(10 KiB) = %v after start, want 40 s", got.Sub(start))
	}
	if got := (pace{idle: time.Second}).readBy(start, start, 0); !got.Equal(start.Add(time.Second)) {
		t.Errorf("no minimum rate: %v", got.Sub(start))
	}
}

func TestAcceptRetryable(t *testing.T) {
	wrap := func(e syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)}
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if !acceptRetryable(wrap(e)) {
			t.Errorf("%v: not retried", e)
		}
	}
	if acceptRetryable(net.ErrClosed) || acceptRetryable(wrap(syscall.EBADF)) {
		t.Error("a closed listener retried")
	}
	if acceptBackoff(1) != 5*time.Millisecond || acceptBackoff(3) != 20*time.Millisecond || acceptBackoff(50) != time.Second {
		t.Errorf("backoff %v %v %v", acceptBackoff(1), acceptBackoff(3), acceptBackoff(50))
	}
}

// fdStarved is a listener whose Accept fails as one out of file
// descriptors does, n times, before it accepts again.
type fdStarved struct {
	net.Listener
	left atomic.Int64
}

func (l *fdStarved) Accept() (net.Conn, error) {
	if l.left.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// startRun runs the sidecar with cfg and returns its address and whether
// (and how) Run has ended.
func startRun(t *testing.T, cfg Config) (string, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.Ready = func(data, _ net.Addr) { addrc <- data.String() }
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case a := <-addrc:
		return a, done
	case err := <-done:
		t.Fatal(err)
	}
	return "", done
}

// servedWithin polls until a plain request through addr is answered, or
// fails the test at the deadline.
func servedWithin(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/ordinary")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "app" {
				return
			}
			err = fmt.Errorf("status %d, %q", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("an ordinary caller was not served within %s: %v", d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Accept failing for want of file descriptors does not end the sidecar:
// it waits and accepts again, and callers are served once it can.
func TestAcceptOutOfFilesRetried(t *testing.T) {
	app := newRecorder(t)
	var ln *fdStarved
	addr, done := startRun(t, Config{Upstream: hostOf(app.Server), wrapListener: func(l net.Listener) net.Listener {
		ln = &fdStarved{Listener: l}
		ln.left.Store(8)
		return ln
	}})
	servedWithin(t, addr, 10*time.Second)
	select {
	case err := <-done:
		t.Fatalf("the sidecar stopped: %v", err)
	default:
	}
	if ln.left.Load() >= 0 {
		t.Fatalf("the listener failed only %d of 8 times", 8-ln.left.Load())
	}
}

// holdHeads opens n connections to addr that each send the start of a
// head of size bytes and never finish it.
func holdHeads(t *testing.T, addr string, n, size int) []net.Conn {
	t.Helper()
	head := "GET / HTTP/1.1\r\nHost: x\r\nX-Unfinished: " + strings.Repeat("u", size)
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(head))
		cs = append(cs, c)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.Close()
		}
	})
	return cs
}

// One budget for every port: unfinished heads on two ports hold no more
// connections than the budget allows together, and an ordinary caller is
// still served (the head that has waited longest goes).
func TestBudgetSharedByPorts(t *testing.T) {
	app := newRecorder(t)
	b := &Budget{Conns: 20, Legs: 20, Heads: 4}
	cfg := Config{Upstream: hostOf(app.Server), Budget: b, HeaderTimeout: time.Minute}
	a1, _ := startRun(t, cfg)
	a2, _ := startRun(t, cfg)
	holdHeads(t, a1, 20, 100)
	holdHeads(t, a2, 20, 100)
	// Every one of the 40 was either admitted, refused, or admitted and
	// then evicted to make room (and has closed): then count. A caller is
	// admitted before the one it evicts has closed, so the count may pass
	// the budget by one for that moment: wait for the close as well.
	settled := func() bool {
		n := b.conns.Load()
		return n+b.refused.Load()+b.evicted.Load() == 40 && n <= 20
	}
	for deadline := time.Now().Add(10 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !settled() {
		t.Fatalf("the sidecar has not dealt with 40 connections after 10 s: %d open, %d refused, %d evicted", b.conns.Load(), b.refused.Load(), b.evicted.Load())
	}
	if n := b.conns.Load(); n > 20 {
		t.Errorf("%d connections open on two ports, budget 20", n)
	}
	servedWithin(t, a1, 10*time.Second)
	servedWithin(t, a2, 10*time.Second)
}

// Kept-alive connections that send nothing more make room for a new
// caller before the budget refuses it.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	app := newRecorder(t)
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), MaxConns: 10, IdleTimeout: time.Minute, HeaderTimeout: time.Minute})
	for i := range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /idle%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			t.Fatalf("idle connection %d: %q, %v", i, buf[:n], err)
		}
	}
	servedWithin(t, addr, 5*time.Second)
}

// A body that stalls is cut at the idle time, and while it stalls its
// connection makes room for another caller.
func TestSlowBodiesBounded(t *testing.T) {
	app := newRecorder(t)
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), MaxConns: 10, IdleTimeout: 6 * time.Second, HeaderTimeout: time.Minute})
	var slow []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nfirst bytes")
		slow = append(slow, c)
	}
	// Room for an ordinary caller, once a body has stalled a moment.
	servedWithin(t, addr, 10*time.Second)
	// Every stalled body ends at the idle time, evicted or not.
	for i, c := range slow {
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow body %d still open 15 s on", i)
		}
	}
}

// A caller that trickles its body below the minimum rate is cut once the
// grace period is over, though it never stalls for the idle time.
func TestTrickledBodyCut(t *testing.T) {
	app := newRecorder(t)
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), IdleTimeout: 10 * time.Second, MinRate: 1000, RateWait: time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
	start := time.Now()
	for time.Since(start) < 8*time.Second {
		if _, err := c.Write([]byte("x")); err != nil {
			return // cut
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("a body at 5 bytes a second still open after 8 s (minimum 1000 a second after 1 s)")
	}
}

// A caller that does not read its response is cut at the idle time: the
// app's writes fail instead of waiting for ever.
func TestUnreadResponseCut(t *testing.T) {
	wrote := make(chan error, 1)
	app := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("z"), 64<<10)
		for i := 0; i < 64<<10; i++ { // 4 GiB at most
			if _, err := w.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	addr, _ := startRun(t, Config{Upstream: ln.Addr().String(), IdleTimeout: 2 * time.Second, MinRate: 1 << 16})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the app wrote 4 GiB to a caller that reads nothing")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the app still writes to a caller that has read nothing for 20 s")
	}
}

// Heads too large for the fast path's buffer are read within the budget:
// beyond it the sidecar answers 431 at once, and an ordinary caller is
// served.
func TestOversizedHeadsWithinBudget(t *testing.T) {
	app := newRecorder(t)
	b := &Budget{Conns: 100, Legs: 10, Heads: 4}
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), Budget: b, HeaderTimeout: time.Minute})
	held := holdHeads(t, addr, 4, 40<<10)
	deadline := time.Now().Add(5 * time.Second)
	for b.heads.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.heads.Load(); n != 4 {
		t.Fatalf("%d large heads counted, want 4", n)
	}
	more := holdHeads(t, addr, 1, 40<<10)[0]
	more.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(more)
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 431")) {
		t.Fatalf("a large head beyond the budget: %q, want 431 at once", got)
	}
	servedWithin(t, addr, 5*time.Second)
	for _, c := range held {
		c.Close()
	}
	for b.heads.Load() > 0 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := b.heads.Load(); n != 0 {
		t.Fatalf("%d large heads still counted after their callers left", n)
	}
}

// One caller's HTTP/2 connection, its streams' bodies never ending, holds
// a few connections to an HTTP/1.1 app, not one per stream; streams that
// stall are reset at the idle time; another caller is served meanwhile.
func TestH2StreamsHoldFewLegs(t *testing.T) {
	app := newRecorder(t)
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), IdleTimeout: 3 * time.Second})
	fr, conn := rawH2(t, addr)
	defer conn.Close()
	var mu sync.Mutex
	resets := map[uint32]bool{}
	pong := make(chan struct{})
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				mu.Lock()
				resets[f.StreamID] = true
				mu.Unlock()
			case *http2.PingFrame:
				if f.IsAck() {
					close(pong)
				}
			}
		}
	}()
	for i := range h2MaxStreams {
		id := uint32(2*i + 1)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: postBlock("/never", "content-length", "1000000"), EndHeaders: true})
		fr.WriteData(id, false, []byte("start"))
	}
	// The relay handles a connection's frames in order: once it answers
	// the ping, it has decided for every stream whether to dial for it.
	// Then wait for those dials to reach the app.
	fr.WritePing(false, [8]byte{})
	select {
	case <-pong:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not answer a ping after the streams within 10 s")
	}
	for deadline := time.Now().Add(5 * time.Second); app.conns.Load() < h2MaxLegs && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// A few, not one a stream: 8, as the relay allows a caller.
	if n := int(app.conns.Load()); n > 8 {
		t.Errorf("one caller's connection holds %d connections to the app, want at most 8", n)
	}
	servedWithin(t, addr, 5*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(resets)
		mu.Unlock()
		if n == h2MaxStreams {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stalled streams reset 15 s on", n, h2MaxStreams)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A flood of frames about the connection (SETTINGS, each with many
// INITIAL_WINDOW_SIZE entries, or PING, or RST_STREAM of streams long
// gone) is answered with GOAWAY(ENHANCE_YOUR_CALM) and the connection
// closed; the sidecar serves others.
func TestH2ControlFloodCalmed(t *testing.T) {
	app := newRecorder(t)
	addr, _ := startRun(t, Config{Upstream: hostOf(app.Server), H2C: true})
	entries := make([]http2.Setting, 2000)
	for i := range entries {
		entries[i] = http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(65535 + i)}
	}
	for name, flood := range map[string]func(*http2.Framer, int) error{
		"settings": func(fr *http2.Framer, _ int) error { return fr.WriteSettings(entries...) },
		"ping":     func(fr *http2.Framer, i int) error { return fr.WritePing(false, [8]byte{byte(i)}) },
		"rst":      func(fr *http2.Framer, i int) error { return fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel) },
	} {
		t.Run(name, func(t *testing.T) {
			fr, conn := rawH2(t, addr)
			defer conn.Close()
			if name != "settings" {
				// Streams for the resets to name, each answered.
				for i := range 10 {
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: postBlock("/s"), EndHeaders: true, EndStream: true})
				}
			}
			goAway := make(chan http2.ErrCode, 1)
			go func() {
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						close(goAway)
						return
					}
					if g, ok := f.(*http2.GoAwayFrame); ok {
						goAway <- g.ErrCode
						return
					}
				}
			}()
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for i := 0; i < 5000; i++ {
				if err := flood(fr, i); err != nil {
					break // closed
				}
			}
			select {
			case code, ok := <-goAway:
				if !ok || code != http2.ErrCodeEnhanceYourCalm {
					t.Fatalf("after the flood: GOAWAY %v (sent: %v), want ENHANCE_YOUR_CALM", code, ok)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no GOAWAY 10 s after a flood of 5,000 frames")
			}
		})
	}
	servedWithin(t, addr, 5*time.Second)
}
