package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
)

// A caller's kept-alive connection through the fast path to an app that
// answers each request with a fixed response: what every request pays on
// the sidecar's own path (raw reads and writes, their pace, the budget's
// bookkeeping), with a body of 0 and 4 KiB each way.
func BenchmarkFastPathKeptAlive(b *testing.B) {
	for _, size := range []int{0, 4 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			app := fixedApp(b, size)
			addr := startProxy(b, Config{Upstream: app})
			keptAlive(b, addr, "POST /bench HTTP/1.1\r\nHost: x\r\n", size)
		})
	}
}

// The same with a developer's route live and every request for it (to an
// app like the other): a plain header route, and the same narrowed by a
// path prefix and by a path regex, so that what narrowing costs on the
// sidecar's path reads beside what a route costs.
func BenchmarkFastPathRoute(b *testing.B) {
	for _, bc := range []struct {
		name          string
		prefix, regex string
	}{
		{"header", "", ""},
		{"header+prefix", "/api/v2/", ""},
		{"header+regex", "", `/api/v[0-9]+/orders/[0-9]+`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			app, dev := fixedApp(b, 0), fixedApp(b, 0)
			addr := startProxy(b, Config{Upstream: app, Static: []StaticRoute{
				{Header: "x-dev", Value: "alice", PathPrefix: bc.prefix, PathRegex: bc.regex, Addr: dev}}})
			keptAlive(b, addr, "GET /api/v2/orders/42?expand=items HTTP/1.1\r\nHost: x\r\nX-Dev: alice\r\n", 0)
		})
	}
}

// fixedApp is an app that answers every request with a body of size
// bytes, reading the request's body of the same size; it returns its
// address.
func fixedApp(b *testing.B, size int) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("r"), size)))
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Close() })
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReaderSize(c, 128<<10)
				for {
					head, err := peekHead(br)
					if err != nil {
						return
					}
					br.Discard(len(head))
					if _, err := br.Discard(size); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return app.Addr().String()
}

// keptAlive sends b.N requests (head, the header lines after the request
// line included, then a Content-Length body of size bytes) on one
// connection to addr, each after the last answer.
func keptAlive(b *testing.B, addr, head string, size int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte(head + "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("q"), size)))
	br := bufio.NewReaderSize(c, 128<<10)
	b.SetBytes(int64(2 * size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		head, err := peekHead(br)
		if err != nil {
			b.Fatal(err)
		}
		br.Discard(len(head))
		if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
			b.Fatal(err)
		}
	}
}
