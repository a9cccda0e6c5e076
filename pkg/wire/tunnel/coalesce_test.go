package tunnel

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// Many small writes while the connection is busy arrive whole, in order,
// and in fewer, larger writes than were made.
func TestCoalesceBatchesWhileBusy(t *testing.T) {
	a, b := net.Pipe()
	c := coalesce(a)
	var want bytes.Buffer
	writes := 0
	go func() {
		for i := 0; i < 2000; i++ {
			p := bytes.Repeat([]byte{byte(i)}, 1+i%37)
			want.Write(p)
			writes++
			if _, err := c.Write(p); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
		c.Close()
	}()
	var got bytes.Buffer
	reads := 0
	buf := make([]byte, 1<<20)
	for {
		time.Sleep(50 * time.Microsecond) // a connection slower than its writer
		n, err := b.Read(buf)
		got.Write(buf[:n])
		if n > 0 {
			reads++
		}
		if err != nil {
			break
		}
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("got %d bytes, want %d, or out of order", got.Len(), want.Len())
	}
	if reads >= writes {
		t.Errorf("%d writes went out as %d; want fewer", writes, reads)
	}
}

// A peer that stops reading must not hold up Close (a tunnel to a laptop
// gone to sleep is closed by its keepalive), and writes fail after it.
func TestCoalesceCloseDoesNotWaitForAStuckPeer(t *testing.T) {
	a, _ := net.Pipe() // nobody reads the other end
	c := coalesce(a)
	if _, err := c.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a peer that does not read")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("a write after Close succeeded")
	}
}

// Bytes queued before Close still go out to a peer that reads.
func TestCoalesceCloseSendsWhatIsQueued(t *testing.T) {
	a, b := net.Pipe()
	c := coalesce(a)
	go func() {
		c.Write([]byte("last frames"))
		c.Close()
	}()
	got, _ := io.ReadAll(b)
	if string(got) != "last frames" {
		t.Fatalf("peer read %q", got)
	}
}
