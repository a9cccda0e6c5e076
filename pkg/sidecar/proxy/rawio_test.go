package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// The raw reads and writes behave as a net.Conn's: a large write that must
// wait for the reader arrives whole, EOF is EOF, and a read deadline ends
// a read with a timeout.
func TestRawTCP(t *testing.T) {
	a, b := rawPair(t)

	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than the socket buffers
	go func() {
		if n, err := a.Write(want); err != nil || n != len(want) {
			t.Errorf("write: %d, %v", n, err)
		}
		a.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (%v), want %d", len(got), err, len(want))
	}

	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a read after the end: %v, want EOF", err)
	}
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = a.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read past its deadline: %v, want a timeout", err)
	}
	if _, ok := tcpOf(a); !ok {
		t.Fatal("tcpOf does not see the TCP connection under a raw one (no splice)")
	}
}

// rawPair returns the two ends of a loopback TCP connection, raw.
func rawPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, b := fastIO(dialed), fastIO(<-accepted)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
