package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// marked builds a request to path carrying the marker in the given headers.
func marked(method, path string, h map[string]string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	for k, v := range h {
		r.Header.Add(k, v)
	}
	return r
}

func carriers(hits []tunnel.Hit) string {
	var s []string
	for _, h := range hits {
		s = append(s, string(h.Carrier)+":"+h.Name)
	}
	return strings.Join(s, ",")
}

// A watched marker is recorded for each carrier it arrives in, matched the
// way a route of that kind matches, with the request's method, path and
// the pod; a marker under another header name is recorded as such.
func TestWatchRecordsEachCarrier(t *testing.T) {
	m := tunnel.Marker{Nonce: "0123456789abcdef", Header: "x-dev", Cookie: "dev", Baggage: "dev"}
	v := m.Value()
	for _, tc := range []struct {
		name string
		h    map[string]string
		want string
	}{
		{"header, any case", map[string]string{"X-DEV": v}, "header:x-dev"},
		{"cookie among others", map[string]string{"Cookie": "theme=dark; dev=" + v}, "cookie:dev"},
		{"baggage member with properties", map[string]string{"Baggage": "userId=7, dev=" + v + ";p=1"}, "baggage:dev"},
		{"all three", map[string]string{"x-dev": v, "Cookie": "dev=" + v, "Baggage": "dev=" + v}, "header:x-dev,cookie:dev,baggage:dev"},
		{"renamed header", map[string]string{"X-Renamed": v}, "other:X-Renamed"},
		{"other value", map[string]string{"x-dev": "alice", "Cookie": "dev=alice", "Baggage": "dev=alice"}, ""},
		{"cookie of another name", map[string]string{"Cookie": "other=" + v}, ""},
		{"header value merged", map[string]string{"x-dev": v + ", " + v}, ""},
	} {
		ws := &Watches{Pod: "web-copy-1"}
		stop, err := ws.Watch(m)
		if err != nil {
			t.Fatal(err)
		}
		ws.Observe(marked(http.MethodPost, "/api/cart?x=1", tc.h))
		hits, ok := ws.Seen(m.Nonce)
		if !ok {
			t.Fatalf("%s: the watch is gone", tc.name)
		}
		if got := carriers(hits); got != tc.want {
			t.Errorf("%s: recorded %q, want %q", tc.name, got, tc.want)
		}
		for _, h := range hits {
			if h.Method != http.MethodPost || h.Path != "/api/cart" || h.Pod != "web-copy-1" || h.Time.IsZero() {
				t.Errorf("%s: hit %+v lacks the request's method, path, pod or time", tc.name, h)
			}
		}
		stop()
	}
}

// Without a watch nothing is recorded, and a request costs no allocation;
// once the doctor's session stops the watch, its hits are gone.
func TestNoWatchNoRecord(t *testing.T) {
	ws := &Watches{Pod: "p"}
	m := tunnel.Marker{Nonce: "0123456789abcdef", Header: "x-dev"}
	r := marked(http.MethodGet, "/", map[string]string{"X-Dev": m.Value()})
	if allocs := testing.AllocsPerRun(100, func() { ws.Observe(r) }); allocs != 0 {
		t.Errorf("Observe without a watch allocates %v times per request", allocs)
	}
	if _, ok := ws.Seen(m.Nonce); ok {
		t.Fatal("a marker nobody watches has a record")
	}
	var nilWatches *Watches
	nilWatches.Observe(r) // a handler without watches

	stop, err := ws.Watch(m)
	if err != nil {
		t.Fatal(err)
	}
	if hits, _ := ws.Seen(m.Nonce); len(hits) != 0 {
		t.Fatalf("a request from before the watch was recorded: %v", hits)
	}
	ws.Observe(r)
	stop()
	if _, ok := ws.Seen(m.Nonce); ok {
		t.Fatal("the watch outlived its session")
	}
	if ws.live.Load() != 0 {
		t.Fatalf("%d watches counted live after the last stopped", ws.live.Load())
	}
}

// A watch ends by itself after its TTL, and the hot path sees none left.
func TestWatchExpires(t *testing.T) {
	ws := &Watches{Pod: "p", TTL: 50 * time.Millisecond}
	m := tunnel.Marker{Nonce: "0123456789abcdef", Header: "x-dev"}
	stop, err := ws.Watch(m)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, ok := ws.Seen(m.Nonce); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch is live 2s after its 50ms TTL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ws.live.Load() != 0 {
		t.Fatalf("%d watches counted live after expiry", ws.live.Load())
	}
	stop() // stopping an expired watch is harmless
}

// A sidecar keeps at most MaxWatches watches and maxHits hits per watch,
// refuses a nonce watched already and bad markers, and takes a new watch
// once one ended.
func TestWatchBounds(t *testing.T) {
	ws := &Watches{Pod: "p"}
	var stops []func()
	for i := 0; i < MaxWatches; i++ {
		stop, err := ws.Watch(tunnel.Marker{Nonce: fmt.Sprintf("%016x", i), Header: "x-dev"})
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		stops = append(stops, stop)
	}
	if _, err := ws.Watch(tunnel.Marker{Nonce: "ffffffffffffffff", Header: "x-dev"}); err == nil || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("watch beyond the limit: %v", err)
	}
	stops[0]()
	if _, err := ws.Watch(tunnel.Marker{Nonce: fmt.Sprintf("%016x", 1), Header: "x-dev"}); err == nil {
		t.Fatal("a nonce watched already was accepted again")
	}
	stop, err := ws.Watch(tunnel.Marker{Nonce: "ffffffffffffffff", Header: "x-dev"})
	if err != nil {
		t.Fatalf("watch after one ended: %v", err)
	}
	stops = append(stops, stop)
	for _, bad := range []tunnel.Marker{{Nonce: "xyz", Header: "x-dev"}, {Nonce: "0123456789abcdef"}, {Nonce: "0123456789abcdef", Header: "x dev"}} {
		if _, err := (&Watches{}).Watch(bad); err == nil {
			t.Errorf("marker %+v accepted", bad)
		}
	}

	r := marked(http.MethodGet, "/", map[string]string{"X-Dev": "doctor-ffffffffffffffff"})
	for i := 0; i < 3*maxHits; i++ {
		ws.Observe(r)
	}
	if hits, _ := ws.Seen("ffffffffffffffff"); len(hits) != maxHits {
		t.Fatalf("%d hits kept, want the bound %d", len(hits), maxHits)
	}
	for _, s := range stops {
		s()
	}
}

// Through the sidecar as it runs: a doctor's session watches over the
// control port, a marked request to the data port is recorded (and still
// reaches the app), and the watch ends with the session.
func TestWatchThroughSidecar(t *testing.T) {
	app := named("app")
	defer app.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Listen: "127.0.0.1:0", Control: "127.0.0.1:0", Pod: "web-copy-1",
			Upstream: strings.TrimPrefix(app.URL, "http://"),
			Ready:    func(data, ctrl net.Addr) { addrs <- [2]string{data.String(), ctrl.String()} },
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	a := <-addrs
	conn, err := net.Dial("tcp", a[1])
	if err != nil {
		t.Fatal(err)
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	m := tunnel.NewMarker("X-C6O-INTERCEPT", "x-intercept", "x-intercept")
	if pod, err := c.Watch(m); err != nil || pod != "web-copy-1" {
		t.Fatalf("watch: %q, %v", pod, err)
	}
	status, err := tunnel.SendMarked(context.Background(), "GET", "http://"+a[0]+"/checkout", "", m)
	if err != nil || status != http.StatusOK {
		t.Fatalf("marked request: %d, %v", status, err)
	}
	hits, err := c.Seen(m.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	if got := carriers(hits); got != "header:X-C6O-INTERCEPT,cookie:x-intercept,baggage:x-intercept" {
		t.Fatalf("recorded %q", got)
	}
	c.Close()

	// A second session does not find the first one's watch.
	conn, err = net.Dial("tcp", a[1])
	if err != nil {
		t.Fatal(err)
	}
	c2, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := c2.Seen(m.Nonce)
		if err != nil && strings.Contains(err.Error(), "no watch") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch outlived its session by 2s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
