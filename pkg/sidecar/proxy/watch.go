package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Bounds of the doctor's watches: a sidecar keeps at most MaxWatches at
// once and maxHits requests per watch, so a doctor run (or many) cannot make
// it hold more than a few kilobytes.
const (
	MaxWatches = 8
	maxHits    = 32
)

// Watches records the requests that carry a doctor's marker (`kubectl
// intercept doctor`), for as long as the doctor's session lives and
// tunnel.WatchTTL at most. With no watch live, which is nearly always, a
// request costs one atomic load.
type Watches struct {
	// Pod names this pod in the hits.
	Pod string
	// TTL is how long a watch lives at most; tunnel.WatchTTL when zero.
	TTL time.Duration

	live    atomic.Int32 // len(watches), for the hot path
	mu      sync.Mutex
	watches map[string]*watch // by nonce
}

var _ tunnel.Watcher = (*Watches)(nil)

type watch struct {
	tunnel.Marker
	header string // Header in canonical form, as http.Header keys are
	value  string
	hits   []tunnel.Hit
}

// Watch starts recording the requests that carry m.
func (ws *Watches) Watch(m tunnel.Marker) (func(), error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.watches == nil {
		ws.watches = map[string]*watch{}
	}
	if _, taken := ws.watches[m.Nonce]; taken {
		return nil, fmt.Errorf("marker %s is watched already", m.Value())
	}
	if len(ws.watches) >= MaxWatches {
		return nil, fmt.Errorf("this sidecar already watches %d markers, as many as it keeps; "+
			"try again in a minute, when the oldest has expired", MaxWatches)
	}
	w := &watch{Marker: m, header: http.CanonicalHeaderKey(m.Header), value: m.Value()}
	ws.watches[m.Nonce] = w
	ws.live.Store(int32(len(ws.watches)))
	ttl := ws.TTL
	if ttl <= 0 {
		ttl = tunnel.WatchTTL
	}
	timer := time.AfterFunc(ttl, func() { ws.remove(w) })
	return func() {
		timer.Stop()
		ws.remove(w)
	}, nil
}

func (ws *Watches) remove(w *watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.watches[w.Nonce] == w {
		delete(ws.watches, w.Nonce)
		ws.live.Store(int32(len(ws.watches)))
	}
}

// Seen returns the requests recorded for nonce, oldest first.
func (ws *Watches) Seen(nonce string) ([]tunnel.Hit, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := ws.watches[nonce]
	if !ok {
		return nil, false
	}
	return append([]tunnel.Hit(nil), w.hits...), true
}

// Active reports whether a watch is live: one atomic load, for the hot
// path. It is false on a nil *Watches.
func (ws *Watches) Active() bool {
	return ws != nil && ws.live.Load() > 0
}

// Observe records r in every live watch whose marker it carries. It is
// safe on a nil *Watches (a handler without watches).
func (ws *Watches) Observe(r *http.Request) {
	if !ws.Active() {
		return
	}
	ws.observe(r)
}

func (ws *Watches) observe(r *http.Request) {
	now := time.Now()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.watches {
		record := func(c tunnel.Carrier, name string) {
			if len(w.hits) < maxHits {
				w.hits = append(w.hits, tunnel.Hit{Carrier: c, Name: name, Method: r.Method, Path: r.URL.Path, Pod: ws.Pod, Time: now})
			}
		}
		// Matched as a route of the same kind would match it, so a
		// carrier that arrives here is one an intercept would catch.
		if w.Header != "" && hasValue(r.Header[w.header], w.value) {
			record(tunnel.CarrierHeader, w.Header)
		}
		if w.Cookie != "" && hasCookie(r.Header["Cookie"], w.Cookie, w.value) {
			record(tunnel.CarrierCookie, w.Cookie)
		}
		if w.Baggage != "" && hasBaggage(r.Header["Baggage"], w.Baggage, w.value) {
			record(tunnel.CarrierBaggage, w.Baggage)
		}
		// The value under another name: a service on the way renamed
		// the header (or moved the marker) on its way here.
		for name, lines := range r.Header {
			if name == w.header || name == "Cookie" || name == "Baggage" {
				continue
			}
			for _, line := range lines {
				if strings.Contains(line, w.value) {
					record(tunnel.CarrierOther, name)
					break
				}
			}
		}
	}
}
