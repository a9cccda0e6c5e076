package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A raw read, write or splice that a signal interrupted (EINTR) did
// nothing and is made again, so the connection neither fails nor reports
// a short read; EAGAIN (the netpoller waits then) and every other error
// come back at once.
func TestRawCallRetriesInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		results   []unix.Errno
		wantErr   unix.Errno
		wantCalls int
	}{
		{"interrupted twice, then done", []unix.Errno{unix.EINTR, unix.EINTR, 0}, 0, 3},
		{"would block", []unix.Errno{unix.EAGAIN}, unix.EAGAIN, 1},
		{"interrupted, then would block", []unix.Errno{unix.EINTR, unix.EAGAIN}, unix.EAGAIN, 2},
		{"connection reset", []unix.Errno{unix.ECONNRESET}, unix.ECONNRESET, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			n, errno := retryEINTR(func() (uintptr, unix.Errno) {
				e := tc.results[calls]
				calls++
				if e != 0 {
					return 0, e
				}
				return 42, 0
			})
			if errno != tc.wantErr || calls != tc.wantCalls {
				t.Fatalf("got errno %v after %d calls, want %v after %d", errno, calls, tc.wantErr, tc.wantCalls)
			}
			if errno == 0 && n != 42 {
				t.Fatalf("got %d bytes, want the last call's 42", n)
			}
		})
	}
}

// A body spliced socket to socket arrives whole, whether it is given by
// its length (and the bytes after it stay for the next read) or runs to
// EOF; one cut short is an error; and the pipes do not pile up.
func TestSpliceRaw(t *testing.T) {
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := fds()
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than a pipe and the socket buffers
	for _, tc := range []struct {
		name    string
		n       int64
		send    []byte
		want    []byte
		wantErr error
	}{
		{"by length, more after it", int64(len(body)), append(append([]byte{}, body...), "NEXT"...), body, nil},
		{"to EOF", -1, body, body, nil},
		{"cut short", int64(len(body)) + 1, body, body, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, fromApp := rawPair(t)
			toCaller, caller := rawPair(t)
			go func() {
				app.Write(tc.send)
				app.(*rawTCP).CloseWrite()
			}()
			got := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(caller); got <- b }()
			ok, err := spliceRaw(toCaller, fromApp, tc.n)
			if !ok || !errors.Is(err, tc.wantErr) {
				t.Fatalf("spliceRaw: ok %v, err %v; want ok, err %v", ok, err, tc.wantErr)
			}
			toCaller.(*rawTCP).CloseWrite()
			if b := <-got; !bytes.Equal(b, tc.want) {
				t.Fatalf("the caller got %d bytes, want %d", len(b), len(tc.want))
			}
			if tc.n >= 0 && tc.wantErr == nil {
				rest, _ := io.ReadAll(fromApp)
				if string(rest) != "NEXT" {
					t.Fatalf("after the body: %q, want %q", rest, "NEXT")
				}
			}
		})
	}
	for i := 0; i < 100; i++ {
		app, fromApp := rawPair(t)
		toCaller, caller := rawPair(t)
		go func() { app.Write(body[:64<<10]); app.Close() }()
		go io.Copy(io.Discard, caller)
		if _, err := spliceRaw(toCaller, fromApp, 64<<10); err != nil {
			t.Fatal(err)
		}
		app.Close()
		fromApp.Close()
		toCaller.Close()
		caller.Close()
	}
	// A pipe the pool lets go (the race detector makes it drop some) is
	// closed once collected.
	after := fds()
	for deadline := time.Now().Add(5 * time.Second); after > before+16 && time.Now().Before(deadline); after = fds() {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if after > before+16 {
		t.Fatalf("%d open files after 100 splices, %d before: pipes are neither reused nor closed", after, before)
	}
	if ok, _ := spliceRaw(&net.TCPConn{}, &net.TCPConn{}, 1); ok {
		t.Fatal("spliceRaw took connections that are not raw")
	}
}

// A developer's connection that is TCP (a static route, or a sidecar
// forwarding for another pod) gets the raw reads and writes too; a tunnel's
// stream stays as it is.
func TestDialFastIsRawForTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := &liveRoute{dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}}
	c, err := r.dialFast(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*rawTCP); !ok {
		t.Fatalf("a TCP connection to the developer is %T, want raw", c)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r.dial = func(context.Context) (net.Conn, error) { return a, nil }
	if c, _ := r.dialFast(context.Background()); c != a {
		t.Fatalf("a stream was wrapped: %T", c)
	}
}
