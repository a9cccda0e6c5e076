package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// One control line without a newline (anyone with pods/portforward can
// send it) ends its session at MaxControlLine instead of growing the
// sidecar's heap with every byte: 32 MiB sent, the heap grows by less
// than 4 MiB, and the sidecar answers the next session.
func TestControlLineBounded(t *testing.T) {
	srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := heapInUse()
	a, b := net.Pipe()
	go srv.ServeConn(ctx, a)
	sess, err := yamux.Client(b, Config())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	sent, peak := 0, uint64(0)
	for sent < 32<<20 {
		_ = st.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := st.Write(chunk); err != nil {
			break // the sidecar ended the session
		}
		sent += len(chunk)
		if sent%(4<<20) == 0 {
			peak = max(peak, heapInUse())
		}
	}
	peak = max(peak, heapInUse())
	t.Logf("one control line: %d KiB sent before the session ended; heap in use %d KiB before, %d KiB at most after", sent>>10, before>>10, peak>>10)
	if grown := int64(peak) - int64(before); grown > 4<<20 {
		t.Errorf("the heap grew by %d MiB under a %d MiB control line", grown>>20, sent>>20)
	}
	if sent >= 32<<20 {
		t.Errorf("the sidecar read %d MiB of one control line without ending the session", sent>>20)
	}
	// The sidecar still serves.
	a2, b2 := net.Pipe()
	go srv.ServeConn(ctx, a2)
	c, err := NewClient(b2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Routes(); err != nil {
		t.Fatalf("a session after the long line: %v", err)
	}
}

// What a sidecar says reaches the terminal quoted when it is not
// printable: an error with an escape sequence, a pod name with a newline.
func TestSidecarStringsPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"route already taken":          "route already taken",
		"pod \x1b]0;owned\x07 says hi": `"pod \x1b]0;owned\a says hi"`,
		"two\nlines":                   `"two\nlines"`,
		"bad utf8 \xff":                `"bad utf8 \xff"`,
	} {
		if got := (&RemoteError{Code: CodeFailed, Message: in}).Error(); got != want {
			t.Errorf("RemoteError %q printed %s, want %s", in, got, want)
		}
	}
	if got := Printable(strings.Repeat("x", 5000)); len(got) > MaxRemoteText+2 {
		t.Errorf("a 5000-byte string printed as %d bytes", len(got))
	}
	r := Response{Pod: "copy-1\x1b[2J", ProbedPod: "copy-2", Hits: []Hit{{Name: "X-Dev", Method: "GET", Path: "/\x1b]8;;evil\x07"}}}
	r.printable()
	if r.Pod != `"copy-1\x1b[2J"` || r.ProbedPod != "copy-2" {
		t.Errorf("pods printed as %s and %s", r.Pod, r.ProbedPod)
	}
	if h := r.Hits[0]; strings.ContainsRune(h.Path, '\x1b') || h.Name != "X-Dev" || h.Method != "GET" {
		t.Errorf("a doctor's hit printed as %+v", h)
	}
	de := &DialError{Addr: "db:5432", Reason: DialFailed, Message: "\x1b[31mred"}
	if strings.ContainsRune(de.Error(), '\x1b') {
		t.Errorf("a dial error printed %q", de.Error())
	}
}

// failingListener fails its first accepts as a process out of file
// descriptors does.
type failingListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.fails > 0
	l.fails--
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// An Accept error that is not the listener's end (too many open files)
// pauses the control port and the peer port, never ends them.
func TestAcceptErrorsRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}}, Admitted: &Admissions{}}
	for name, serve := range map[string]func(context.Context, net.Listener) error{"control": srv.Serve, "peer": srv.ServePeers} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() { ended <- serve(ctx, &failingListener{Listener: ln, fails: 5}) }()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if name == "control" {
			c, err := NewClient(conn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Routes(); err != nil {
				t.Errorf("the control port after 5 accept errors: %v", err)
			}
			c.Close()
		} else {
			if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "nonce") {
				t.Errorf("the peer port after 5 accept errors: %q %v", line, err)
			}
			conn.Close()
		}
		select {
		case err := <-ended:
			t.Errorf("the %s port ended: %v", name, err)
		default:
		}
	}
}
