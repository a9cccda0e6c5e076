package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// watcher records watches in memory; hit adds a hit to a live watch.
type watcher struct {
	mu      sync.Mutex
	pod     string
	watches map[string][]tunnel.Hit
}

func (w *watcher) Watch(m tunnel.Marker) (func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watches == nil {
		w.watches = map[string][]tunnel.Hit{}
	}
	w.watches[m.Nonce] = []tunnel.Hit{}
	return func() { w.mu.Lock(); delete(w.watches, m.Nonce); w.mu.Unlock() }, nil
}

func (w *watcher) Seen(nonce string) ([]tunnel.Hit, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.watches[nonce]
	return h, ok
}

func (w *watcher) hit(nonce string, c tunnel.Carrier, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watches[nonce]; ok {
		w.watches[nonce] = append(w.watches[nonce], tunnel.Hit{Carrier: c, Name: name, Method: "GET", Path: "/", Pod: w.pod, Time: time.Now()})
	}
}

// noRoutes is a sidecar's route table without routes.
type noRoutes struct{}

func (noRoutes) Add(route.Route, tunnel.DialFunc) (func(), error) { return nil, tunnel.ErrConflict }
func (noRoutes) List() []route.Route                              { return nil }

// WatchSidecars watches on every pod it reaches and collects what each
// saw; a pod it cannot reach is reported as missed; a sidecar too old to
// watch fails the whole watch, naming its pod.
func TestWatchSidecars(t *testing.T) {
	watchers := map[string]*watcher{"p1": {pod: "p1"}, "p2": {pod: "p2"}}
	dial := func(_ context.Context, _, pod string, _ int) (io.ReadWriteCloser, error) {
		a, b := net.Pipe()
		switch w, ok := watchers[pod]; {
		case ok:
			go (&tunnel.Server{Pod: pod, Routes: noRoutes{}, Watches: w}).ServeConn(context.Background(), a)
		case pod == "old":
			// A sidecar that cannot watch.
			go (&tunnel.Server{Pod: pod, Routes: noRoutes{}}).ServeConn(context.Background(), a)
		default:
			return nil, fmt.Errorf("port-forward to pod %s: connection refused", pod)
		}
		return b, nil
	}
	m := tunnel.NewMarker("x-dev", "dev", "dev")
	o, err := WatchSidecars(context.Background(), Sidecars{Dial: dial, Pods: []string{"p1", "gone", "p2"}}, m)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got := strings.Join(o.Pods(), ","); got != "p1,p2" || o.Missed["gone"] == nil {
		t.Fatalf("watching %s, missed %v", got, o.Missed)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		watchers["p2"].hit(m.Nonce, tunnel.CarrierHeader, "x-dev")
		watchers["p1"].hit(m.Nonce, tunnel.CarrierBaggage, "dev")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hits, err := o.Collect(ctx, 10*time.Millisecond, func(h []tunnel.Hit) bool { return len(h) == 2 })
	if err != nil || len(hits) != 2 {
		t.Fatalf("collected %+v, %v", hits, err)
	}
	pods := map[string]tunnel.Carrier{}
	for _, h := range hits {
		pods[h.Pod] = h.Carrier
	}
	if pods["p1"] != tunnel.CarrierBaggage || pods["p2"] != tunnel.CarrierHeader {
		t.Fatalf("hits by pod: %v", pods)
	}
	// Nothing more arrives: Collect returns what it has when ctx ends.
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if hits, err := o.Collect(short, 10*time.Millisecond, func([]tunnel.Hit) bool { return false }); err != nil || len(hits) != 2 {
		t.Fatalf("collect until the deadline: %d hits, %v", len(hits), err)
	}

	_, err = WatchSidecars(context.Background(), Sidecars{Dial: dial, Pods: []string{"p1", "old"}}, tunnel.NewMarker("x-dev", "", ""))
	if !errors.Is(err, tunnel.ErrUnsupported) || !strings.Contains(err.Error(), "pod old") {
		t.Fatalf("with an old sidecar: %v", err)
	}
	if _, err := WatchSidecars(context.Background(), Sidecars{Dial: dial, Pods: []string{"gone"}}, m); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("with no reachable sidecar: %v", err)
	}
}

// The marker travels in all three carriers, added to the cookies and
// baggage a request has already; SendMarked follows no redirect.
func TestSendMarked(t *testing.T) {
	var got http.Header
	var host string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, host = r.Header.Clone(), r.Host
		http.Redirect(w, r, "/login", http.StatusFound)
	}))
	defer srv.Close()
	m := tunnel.Marker{Nonce: "0123456789abcdef", Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "x-intercept"}
	status, err := tunnel.SendMarked(context.Background(), "GET", srv.URL+"/checkout", "web.shop.svc", m)
	if err != nil || status != http.StatusFound {
		t.Fatalf("status %d, %v; want the redirect itself", status, err)
	}
	want := map[string]string{
		"X-C6o-Intercept": "doctor-0123456789abcdef",
		"Cookie":          "x-intercept=doctor-0123456789abcdef",
		"Baggage":         "x-intercept=doctor-0123456789abcdef",
	}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, got.Get(k), v)
		}
	}
	if host != "web.shop.svc" {
		t.Errorf("Host %q", host)
	}
	h := http.Header{"Cookie": {"theme=dark"}, "Baggage": {"userId=7"}}
	m.Apply(h)
	if h.Get("Cookie") != "theme=dark; x-intercept=doctor-0123456789abcdef" || h.Get("Baggage") != "userId=7,x-intercept=doctor-0123456789abcdef" {
		t.Errorf("applied to a request with cookies and baggage: %v", h)
	}
}
