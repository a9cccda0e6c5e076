package proxy

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// What a wiretap costs the requests it copies, beside the same requests
// without it in the same run: a developer's header route on the fast path
// (registered through the tunnel under the developer's owner key, its
// connections dialed by the developer's end), the same with the
// developer's own wiretap on its marker (under the same key, so each
// request the route takes is copied, the laptop's answer with it), and a
// wiretap alone (the requests go to the app, each teed on the fast path
// and copied to a developer's end that reads the copies). The developer's end only counts the bytes of
// the copies, but it runs in the benchmark's process, through the
// tunnel's session, so ns/op holds its reading too; bench/wiretap.sh
// measures the sidecar's process alone.
func BenchmarkWiretap(b *testing.B) {
	for _, bc := range []struct {
		name           string
		route, wiretap bool
	}{
		{"route", true, false},
		{"route+wiretap", true, true},
		{"app", false, false},
		{"app+wiretap", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			app, dev := fixedApp(b, 0), fixedApp(b, 0)
			cfg := Config{Upstream: app, Control: "127.0.0.1:0"}
			ctrl := make(chan string, 1)
			addr := startProxyReady(b, cfg, ctrl)
			ctrlAddr := <-ctrl
			if bc.route {
				intercept(b, ctrlAddr, dev)
			}
			var copied atomic.Int64
			if bc.wiretap {
				countCopies(b, ctrlAddr, &copied)
			}
			keptAlive(b, addr, "GET /api/v2/orders/42?expand=items HTTP/1.1\r\nHost: x\r\nX-Dev: alice\r\n", 0)
			b.StopTimer()
			if bc.wiretap {
				// Copies go out in batches, after the answers: wait for one.
				for deadline := time.Now().Add(10 * time.Second); copied.Load() == 0; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatal("the wiretap received no copy")
					}
				}
				b.ReportMetric(float64(copied.Load())/float64(b.N), "copy-bytes/op")
			}
		})
	}
}

// intercept registers x-dev:alice under bobKey through the tunnel, its
// connections dialed to dev.
func intercept(b *testing.B, ctrl, dev string) {
	b.Helper()
	tc := controlClient(b, ctrl)
	if _, err := tc.Register(route.Route{Header: "x-dev", Value: "alice", Owner: "bob", Client: bobKey}); err != nil {
		b.Fatal(err)
	}
	go tc.Serve(context.Background(), func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", dev)
	}, func(error) {})
}

// countCopies wiretaps x-dev:alice and counts the bytes of the copies.
func countCopies(b *testing.B, ctrl string, n *atomic.Int64) {
	b.Helper()
	tc := controlClient(b, ctrl)
	if _, err := tc.Register(route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Client: bobKey}); err != nil {
		b.Fatal(err)
	}
	go tc.ServeConns(context.Background(), func(c net.Conn) {
		defer c.Close()
		io.Copy(counter{n}, c)
	})
}

// counter counts what is written to it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}
