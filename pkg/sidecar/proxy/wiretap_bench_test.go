package proxy

import (
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// What a wiretap costs the requests it copies, beside the same requests
// without it in the same run: a developer's header route on the fast path,
// the same with a wiretap on its marker (the requests then go through
// net/http, and each is copied to a developer's end that reads the
// copies), and a wiretap alone (the requests go to the app).
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
			if bc.route {
				cfg.Static = []StaticRoute{{Header: "x-dev", Value: "alice", Addr: dev}}
			}
			ctrl := make(chan string, 1)
			addr := startProxyReady(b, cfg, ctrl)
			ctrlAddr := <-ctrl
			var w *wiretapper
			if bc.wiretap {
				w = wiretap(b, ctrlAddr, route.Route{Header: "x-dev", Value: "alice", Wiretap: true, Client: bobKey})
				w.keep = 0
			}
			keptAlive(b, addr, "GET /api/v2/orders/42?expand=items HTTP/1.1\r\nHost: x\r\nX-Dev: alice\r\n", 0)
			b.StopTimer()
			if w != nil {
				w.mu.Lock()
				b.ReportMetric(float64(w.count)/float64(b.N), "copies/op")
				w.mu.Unlock()
			}
		})
	}
}
