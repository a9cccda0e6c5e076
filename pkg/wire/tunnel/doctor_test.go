package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"

	"github.com/hashicorp/yamux"
)

// fakeWatcher records watches in memory; Hit adds a hit to a live watch.
type fakeWatcher struct {
	mu      sync.Mutex
	pod     string
	watches map[string][]Hit
}

func (f *fakeWatcher) Watch(m Marker) (func(), error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watches == nil {
		f.watches = map[string][]Hit{}
	}
	f.watches[m.Nonce] = []Hit{}
	return func() { f.mu.Lock(); delete(f.watches, m.Nonce); f.mu.Unlock() }, nil
}

func (f *fakeWatcher) Seen(nonce string) ([]Hit, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.watches[nonce]
	return h, ok
}

func (f *fakeWatcher) hit(nonce string, c Carrier, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.watches[nonce]; ok {
		f.watches[nonce] = append(f.watches[nonce], Hit{Carrier: c, Name: name, Method: "GET", Path: "/", Pod: f.pod, Time: time.Now()})
	}
}

func (f *fakeWatcher) live() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watches)
}

func connect(t *testing.T, srv *Server) *Client {
	t.Helper()
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// watch, seen and send over the control stream: the watch reports what
// the sidecar recorded, ends with the session, and a send carries the
// marker and answers with the status.
func TestDoctorOps(t *testing.T) {
	w := &fakeWatcher{pod: "p1"}
	var sent struct {
		method, url, host string
		m                 Marker
	}
	table := &fakeTable{routes: map[string]DialFunc{}}
	srv := &Server{Pod: "p1", Routes: table, Watches: w,
		Send: func(_ context.Context, method, url, host string, m Marker) (int, error) {
			sent.method, sent.url, sent.host, sent.m = method, url, host, m
			return http.StatusTeapot, nil
		}}
	c := connect(t, srv)
	m := NewMarker("x-dev", "dev", "dev")
	if pod, err := c.Watch(m); err != nil || pod != "p1" {
		t.Fatalf("watch: %q, %v", pod, err)
	}
	w.hit(m.Nonce, CarrierBaggage, "dev")
	hits, err := c.Seen(m.Nonce)
	if err != nil || len(hits) != 1 || hits[0].Carrier != CarrierBaggage || hits[0].Pod != "p1" {
		t.Fatalf("seen: %+v, %v", hits, err)
	}
	if _, err := c.Seen("00000000deadbeef"); err == nil || !strings.Contains(err.Error(), "no watch for marker doctor-00000000deadbeef") {
		t.Fatalf("seen of an unknown nonce: %v", err)
	}
	status, err := c.Send("GET", "http://10.0.0.1:8080/checkout", "web.shop.svc", m)
	if err != nil || status != http.StatusTeapot || sent.method != "GET" || sent.url != "http://10.0.0.1:8080/checkout" || sent.host != "web.shop.svc" || sent.m != m {
		t.Fatalf("send: %d, %v; the sidecar got %+v", status, err, sent)
	}
	if _, err := c.Send("GET", "https://example.com/", "", m); err == nil {
		t.Fatal("a send to an https URL was made")
	}
	// Another method only when a route here is narrowed to it.
	if _, err := c.Send("POST", "http://10.0.0.1:8080/checkout", "", m); err == nil || !strings.Contains(err.Error(), "no route on this sidecar is narrowed to it") {
		t.Fatalf("a POST with no route narrowed to POST: %v", err)
	}
	if _, err := table.Add(route.Route{Header: "X-Dev", Value: "alice", Methods: "POST,PUT"}, nil); err != nil {
		t.Fatal(err)
	}
	if status, err := c.Send("POST", "http://10.0.0.1:8080/checkout", "", m); err != nil || status != http.StatusTeapot || sent.method != "POST" {
		t.Fatalf("a POST for a route narrowed to POST: %d, %v; the sidecar sent %s", status, err, sent.method)
	}
	for _, bad := range []string{"DELETE", "post", "POST,PUT", "GET /"} {
		if _, err := c.Send(bad, "http://10.0.0.1:8080/checkout", "", m); err == nil {
			t.Fatalf("a send with method %q was made", bad)
		}
	}
	if _, err := c.Watch(Marker{Nonce: "zz"}); err == nil {
		t.Fatal("a watch with a bad marker was accepted")
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for w.live() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watch outlived its session by 2s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oldSidecar answers every operation but routes as a sidecar that cannot
// watch does: unsupported.
func oldSidecar(conn io.ReadWriteCloser, pod string) {
	sess, err := yamux.Server(conn, Config())
	if err != nil {
		return
	}
	defer sess.Close()
	st, err := sess.AcceptStream()
	if err != nil {
		return
	}
	c := newCodec(st)
	for {
		var req Request
		if err := c.read(&req); err != nil {
			return
		}
		resp := Response{Pod: pod}
		if req.Op != "routes" {
			resp.Error, resp.Code = fmt.Sprintf("unknown operation %q", req.Op), CodeUnsupported
		}
		if err := c.write(resp); err != nil {
			return
		}
	}
}

// A sidecar from before the doctor cannot watch: the error says so and
// names its pod.
func TestWatchOnOldSidecar(t *testing.T) {
	a, b := net.Pipe()
	go oldSidecar(a, "web-copy-old")
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Watch(NewMarker("x-dev", "", ""))
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "web-copy-old") || !strings.Contains(err.Error(), "older than this CLI") {
		t.Fatalf("watch on an old sidecar: %v", err)
	}
}

// NewMarker makes a fresh, valid nonce each time; Validate refuses what a
// sidecar could not look for.
func TestMarker(t *testing.T) {
	a, b := NewMarker("x-dev", "", ""), NewMarker("x-dev", "", "")
	if a.Nonce == b.Nonce || a.Validate() != nil || !strings.HasPrefix(a.Value(), "doctor-") {
		t.Fatalf("markers %+v %+v (%v)", a, b, a.Validate())
	}
	if got := fmt.Sprint(NewMarker("x-dev", "", "dev").Carriers()); got != "[header baggage]" {
		t.Errorf("carriers %s", got)
	}
	for _, bad := range []Marker{
		{Nonce: "0123456789abcdef"},
		{Nonce: "short", Header: "x-dev"},
		{Nonce: "0123456789abcdeg", Header: "x-dev"},
		{Nonce: "0123456789abcdef", Cookie: "de v"},
		{Nonce: "0123456789abcdef", Baggage: "de,v"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
