package inspect

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
)

// tapping serves a Tap in front of the app at local on a loopback listener
// (as the tunnel hands it streams) and returns its address and store.
func tapping(t *testing.T, local string) (string, *Store) {
	t.Helper()
	return tappingWith(t, local, true)
}

func tappingWith(t testing.TB, local string, record bool) (string, *Store) {
	t.Helper()
	store := NewStore(0)
	recordInto := store
	if !record {
		recordInto = nil
	}
	tap := NewTap(local, testRoute, recordInto, httpwire.NewHTTPServer(NewForwarder(local, testRoute, store)))
	t.Cleanup(func() { tap.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go tap.ServeConn(c)
		}
	}()
	return ln.Addr().String(), store
}

// rawApp records the bytes the app received.
type rawApp struct {
	mu  sync.Mutex
	got strings.Builder
}

func (a *rawApp) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got.Write(p)
}

func (a *rawApp) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got.String()
}

// The app gets the caller's bytes exactly (header case, order, spacing),
// two requests on one kept connection come back in order, and the
// inspector records both with their bodies, a chunked response's trailer
// included.
func TestTapPassesBytesAndRecords(t *testing.T) {
	var seen rawApp
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(io.TeeReader(c, &seen))
		for i := 0; i < 2; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.ReadAll(req.Body)
			if i == 0 {
				io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-App: one\r\n\r\nfirst")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n6\r\nsecond\r\n0\r\nX-Sum: 42\r\n\r\n")
			}
		}
	}()
	addr, store := tapping(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /a?x=1 HTTP/1.1\r\nhost: shop\r\nX-lower:  spaced\r\nContent-Length: 4\r\n\r\nping")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(b) != "first" {
		t.Fatalf("first answer: %d %q", resp.StatusCode, b)
	}
	io.WriteString(c, "GET /b HTTP/1.1\r\nHost: shop\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "second" || resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("second answer: %q, trailer %v", b, resp.Trailer)
	}
	want := "POST /a?x=1 HTTP/1.1\r\nhost: shop\r\nX-lower:  spaced\r\nContent-Length: 4\r\n\r\npingGET /b HTTP/1.1\r\nHost: shop\r\n\r\n"
	if seen.String() != want {
		t.Errorf("the app got %q, want the caller's bytes %q", seen.String(), want)
	}
	exs := waitFor(t, store, "two finished exchanges", func(ex []Exchange) bool {
		return len(ex) == 2 && ex[0].Done && ex[1].Done
	})
	post, get := exs[1], exs[0]
	if post.Method != "POST" || post.Path != "/a?x=1" || post.Host != "shop" || string(post.RequestBody.Data) != "ping" ||
		post.Status != 201 || string(post.ResponseBody.Data) != "first" || post.ResponseHeader.Get("X-App") != "one" || post.Route != testRoute {
		t.Errorf("the POST as recorded: %+v", post)
	}
	if get.Path != "/b" || get.Status != 200 || string(get.ResponseBody.Data) != "second" || get.ResponseTrailer.Get("X-Sum") != "42" {
		t.Errorf("the GET as recorded: %+v", get)
	}
}

// Nothing listens on the local port: the caller gets a 502 that says so,
// and the inspector shows it.
func TestTapNothingListening(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	local := ln.Addr().String()
	ln.Close()
	addr, store := tapping(t, local)
	resp, err := client.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "nothing answers on "+local) {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	waitFor(t, store, "the 502 recorded", func(ex []Exchange) bool { return len(ex) == 1 && ex[0].Status == 502 && ex[0].Done })
}

// HTTP/2 with prior knowledge (gRPC, h2c ports) goes through the
// forwarder and is recorded there.
func TestTapHandsHTTP2ToTheForwarder(t *testing.T) {
	local := serveBoth(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	addr, store := tapping(t, local)
	resp, err := h2cClient().Get("http://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "HTTP/2.0" {
		t.Fatalf("the app answered %q over %s, want HTTP/2 both ways", b, resp.Proto)
	}
	waitFor(t, store, "the HTTP/2 request recorded", func(ex []Exchange) bool { return len(ex) == 1 && ex[0].Proto == "HTTP/2.0" && ex[0].Done })
}

// A recorder that falls behind stops recording the connection; the bytes
// still all arrive.
func TestTapRecorderNeverSlowsTheStream(t *testing.T) {
	f := newFeed()
	chunk := make([]byte, 1<<20)
	for i := 0; i < 8; i++ {
		f.push(chunk) // nobody reads: past feedLimit the feed drops
	}
	f.end()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, f); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, errFellBehind) {
			t.Fatalf("the parser got %v, want errFellBehind", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the parser of a dropped feed never ended")
	}
}

// BenchmarkTap: one kept connection through the tap, 64 KiB responses,
// recorded for the inspector or not.
func BenchmarkTap(b *testing.B) {
	body := strings.Repeat("x", 64<<10)
	local := serveBoth(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	for _, rec := range []bool{true, false} {
		name := "recorded"
		if !rec {
			name = "not-recorded"
		}
		b.Run(name, func(b *testing.B) {
			addr, _ := tappingWith(b, local, rec)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

func BenchmarkDirect(b *testing.B) {
	body := strings.Repeat("x", 64<<10)
	local := serveBoth(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		resp, err := c.Get("http://" + local + "/")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
