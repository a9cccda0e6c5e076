package proxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
)

// Whatever frames a caller sends after the preface, in any order, the
// relay never panics, ends once the caller hangs up (its legs to the app
// closed, their goroutines gone), and gives back everything it drew:
// the budget's legs and window, and the DATA it held.
//
// The input is a list of frames, four bytes each and a payload: an
// operation (a raw frame of one of HTTP/2's ten types, a well-formed
// request head, or a WINDOW_UPDATE), flags, a stream id and a payload
// length. The first byte picks an h2c app or an HTTP/1.1 one; the app is
// in memory and answers each request with 100 KiB.
func FuzzH2Frames(f *testing.F) {
	req := func(id, flags byte) []byte { return []byte{10, flags, id, 0} }
	data := func(id byte, end bool, n byte) []byte {
		flags := byte(0)
		if end {
			flags = byte(http2.FlagDataEndStream)
		}
		return append([]byte{byte(http2.FrameData), flags, id, n}, bytes.Repeat([]byte("d"), int(n))...)
	}
	window := func(id byte, inc uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{11, 0, id, 4}, inc)
	}
	f.Add(append([]byte{0}, req(1, 1)...))                                                 // a GET, h2c app
	f.Add(append([]byte{1}, req(1, 1)...))                                                 // the same, HTTP/1.1 app
	f.Add(bytes.Join([][]byte{{0}, req(1, 0), data(1, false, 40), data(1, true, 8)}, nil)) // a POST
	f.Add(bytes.Join([][]byte{{1}, req(1, 0), data(1, true, 40), window(0, 1<<20), window(1, 1<<20)}, nil))
	f.Add(bytes.Join([][]byte{{0}, req(1, 1), {byte(http2.FrameRSTStream), 0, 1, 4, 0, 0, 0, 8}, req(3, 1)}, nil))
	f.Add(bytes.Join([][]byte{{0}, req(1, 1), {byte(http2.FrameSettings), 0, 0, 6, 0, 4, 0, 0, 0, 0}, window(1, 100)}, nil))
	f.Add(bytes.Join([][]byte{{1}, req(1, 1), req(3, 1), req(5, 1), {byte(http2.FrameGoAway), 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}}, nil))
	f.Add(bytes.Join([][]byte{{0}, req(2, 1), data(7, true, 3), {byte(http2.FramePing), 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}}, nil))
	f.Add(bytes.Join([][]byte{{0}, {byte(http2.FrameHeaders), 0, 1, 5, 0x82, 0x86, 0x84, 0x41, 0x01}, {byte(http2.FrameContinuation), 4, 1, 1, 'x'}}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 4096 {
			return
		}
		held := h2Held.Load()
		budget := &Budget{Conns: 10, Legs: 4, Heads: 1, Window: 2 << 20}
		fp, apps := memoryRelay(t, in[0]%2 == 0, budget)
		caller, side := net.Pipe()
		served := make(chan struct{})
		go func() { defer close(served); fp.serve(side) }()
		caller.SetDeadline(time.Now().Add(5 * time.Second))
		fr := http2.NewFramer(caller, caller)
		// The relay handles a connection's frames in order: its answer to
		// a ping after the input says it has handled all of it (or it
		// has ended the connection).
		pong := make(chan struct{})
		go func() {
			for {
				f, err := fr.ReadFrame()
				if p, ok := f.(*http2.PingFrame); err != nil || ok && p.IsAck() && p.Data == fuzzEnd {
					break
				}
			}
			close(pong)
			io.Copy(io.Discard, caller)
		}()
		io.WriteString(caller, http2.ClientPreface)
		fr.WriteSettings()
		writeFuzzFrames(fr, in[1:])
		fr.WritePing(false, fuzzEnd)
		<-pong
		caller.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("the relay did not end within 10 s of its caller hanging up")
		}
		if n := apps.conns(); n > h2MaxLegs {
			t.Errorf("one caller's connection made the relay open %d connections to the app, want at most %d", n, h2MaxLegs)
		}
		if n := budget.legs.Load(); n != 0 {
			t.Errorf("%d legs of the budget not given back", n)
		}
		if n := budget.window.Load(); n != 0 {
			t.Errorf("%d bytes of the budget's window not given back", n)
		}
		if n := h2Held.Load() - held; n != 0 {
			t.Errorf("the relay still holds %d bytes of DATA after the connection ended", n)
		}
	})
}

var fuzzEnd = [8]byte{'f', 'u', 'z', 'z', '-', 'e', 'n', 'd'}

// memoryApps is an app served in memory: each dial is a pipe to it.
type memoryApps struct {
	ln     *httpwire.ConnListener
	dialed chan struct{}
}

func (a *memoryApps) dial(context.Context) (net.Conn, error) {
	x, y := net.Pipe()
	a.dialed <- struct{}{}
	a.ln.Push(y)
	return x, nil
}

func (a *memoryApps) conns() int { return len(a.dialed) }

// memoryRelay is a fast path whose relay reaches an app in memory that
// speaks h2c (or only HTTP/1.1) and answers 100 KiB to every request.
func memoryRelay(t *testing.T, h2c bool, budget *Budget) (*fastPath, *memoryApps) {
	t.Helper()
	answer := bytes.Repeat([]byte("a"), 100<<10)
	apps := &memoryApps{ln: httpwire.NewConnListener(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}), dialed: make(chan struct{}, 1024)}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write(answer)
	}), ErrorLog: nil}
	go srv.Serve(apps.ln)
	t.Cleanup(func() { srv.Close() })
	fp := &fastPath{table: &Table{}, dial: apps.dial, upstream: "app.invalid:1", headerTimeout: 5 * time.Second,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), handoff: func(c net.Conn) { c.Close() },
		toHTTP: func(c net.Conn) { c.Close() }, h2c: h2c, idleTimeout: 5 * time.Second, budget: budget}
	return fp, apps
}

// writeFuzzFrames writes the frames in writes them as FuzzH2Frames reads
// them, until the input or the pipe ends.
func writeFuzzFrames(fr *http2.Framer, in []byte) {
	for len(in) >= 4 {
		op, flags, id, n := in[0]%12, in[1], uint32(in[2]), int(in[3])%64
		in = in[4:]
		payload := in[:min(n, len(in))]
		in = in[len(payload):]
		var err error
		switch op {
		case 10:
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: fuzzRequestHead(flags),
				EndHeaders: true, EndStream: flags&1 != 0})
		case 11:
			inc := uint32(1)
			if len(payload) >= 4 {
				inc = binary.BigEndian.Uint32(payload) & (1<<31 - 1)
			}
			err = fr.WriteWindowUpdate(id, inc)
		default:
			err = fr.WriteRawFrame(http2.FrameType(op), http2.Flags(flags), id, payload)
		}
		if err != nil {
			return
		}
	}
}

// fuzzRequestHead is a well-formed request's header block, its method
// picked by flags.
func fuzzRequestHead(flags byte) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	method := []string{"GET", "POST", "HEAD", "CONNECT"}[flags>>1%4]
	e.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	if method != "CONNECT" {
		e.WriteField(hpack.HeaderField{Name: ":path", Value: "/fuzz"})
		e.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	}
	e.WriteField(hpack.HeaderField{Name: ":authority", Value: "x"})
	if flags&8 != 0 {
		e.WriteField(hpack.HeaderField{Name: "content-length", Value: "48"})
	}
	return b.Bytes()
}
