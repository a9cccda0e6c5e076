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
			resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("r"), size)))
			app, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close()
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
			addr := startProxy(b, Config{Upstream: app.Addr().String()})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("POST /bench HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("q"), size)))
			br := bufio.NewReaderSize(c, 128<<10)
			b.SetBytes(int64(2 * size))
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
		})
	}
}
