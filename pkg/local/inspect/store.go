// Package inspect is the developer's end of intercepted HTTP traffic: a
// Forwarder that hands each request to the app on the laptop and records it,
// a Store that keeps the last exchanges in memory, and a local web page (the
// inspector) that lists them live, shows their headers and bodies, and
// replays them.
package inspect

import (
	"net/http"
	"sync"
	"time"
)

// DefaultLimit is how many exchanges a Store keeps when NewStore is given 0.
const DefaultLimit = 500

// DefaultByteLimit bounds the bytes a Store holds (headers and captured
// bodies), whatever callers send: the oldest exchanges go first.
const DefaultByteLimit = 64 << 20

// BodyCaptureLimit is how much of each request and response body is kept.
// Bodies stream through whole; only their first bytes are remembered, so a
// Store holds at most limit × 2 × 64 KiB of bodies however large they are.
const BodyCaptureLimit = 64 << 10

// Exchange is one intercepted request and what the local app answered.
type Exchange struct {
	ID uint64
	// Time is when the request arrived.
	Time time.Time
	// Method, Path (path and query, as sent) and Proto (HTTP/1.1, HTTP/2.0)
	// of the request; Host is its Host header.
	Method, Path, Proto, Host string
	// Route is the label of the intercept that brought the request here,
	// e.g. "X-C6O-INTERCEPT:yes".
	Route         string
	RequestHeader http.Header
	RequestBody   Body
	// Status is what the caller got: 0 while the app has not answered yet,
	// 101 for a WebSocket or other upgrade, 502 when the app could not be
	// reached (see Error).
	Status          int
	ResponseHeader  http.Header
	ResponseTrailer http.Header
	ResponseBody    Body
	// RequestSize and ResponseSize count the body bytes that went through
	// (for an upgrade: the bytes of the upgraded connection each way).
	RequestSize, ResponseSize int64
	// Duration runs from the request's arrival until the response body
	// (or the upgraded connection) ended; zero while in flight.
	Duration time.Duration
	// Done is false while the exchange is in flight.
	Done bool
	// Error says why the local app did not answer (or stopped answering).
	Error string
	// Replay marks a request sent again from the inspector; ReplayOf is the
	// exchange it copied.
	Replay   bool
	ReplayOf uint64
	// Wiretap is set on a copy of a request the cluster answered
	// (--wiretap): the cluster's answer and how the local app's differs.
	Wiretap *WiretapCopy
}

// WiretapCopy is what the cluster answered a copied request, and the diff
// with what the local app answered (the Exchange's response).
type WiretapCopy struct {
	// Marker is the wiretap route the request matched.
	Marker string
	Status int
	Header http.Header
	// Body is the start of the cluster's body (BodyCaptureLimit bytes, as
	// the local one), Size its length.
	Body Body
	Size int64
	// Duration is how long the cluster took to answer.
	Duration time.Duration
	// Diff is nil until the local app has answered and been compared, and
	// stays nil when the request was not sent (NotSent says why).
	Diff    *Diff
	NotSent string
	// Dropped counts the copies the sidecar dropped just before this one.
	Dropped uint64
}

// Body is the captured start of a request or response body.
type Body struct {
	// Data is at most BodyCaptureLimit bytes.
	Data []byte
	// Truncated says the body was longer than Data.
	Truncated bool
}

// Upgraded reports whether the exchange switched protocols (WebSocket).
func (e Exchange) Upgraded() bool { return e.Status == http.StatusSwitchingProtocols }

// Store keeps the last exchanges in memory. It is safe for concurrent use.
//
// Exchanges returned by its methods are copies, but they share header maps
// and body bytes with the Store: treat those as read-only.
type Store struct {
	mu    sync.Mutex
	limit int
	// byteLimit bounds bytes, the sum of the entries' sizes.
	byteLimit, bytes int
	// items are ordered by ID with no gaps, so an ID finds its index.
	items  []*entry
	nextID uint64
	seq    uint64
	// next is closed and replaced at every change, waking every waiter.
	next chan struct{}
	// taps counts the wiretap's copies, including evicted ones.
	taps WiretapCounts
}

// WiretapCounts are a wiretap's totals since the inspector started.
type WiretapCounts struct {
	// Copies came from the cluster; Compared were answered by the local
	// app and compared; Differ of them differed.
	Copies   uint64 `json:"copies"`
	Compared uint64 `json:"compared"`
	Differ   uint64 `json:"differ"`
	// NotSent could not be sent to the local app (a body copied only in
	// part); Dropped the sidecar dropped under backpressure.
	NotSent uint64 `json:"not_sent"`
	Dropped uint64 `json:"dropped"`
}

// WiretapCounts returns the wiretap's totals.
func (s *Store) WiretapCounts() WiretapCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taps
}

// countTap adds to the wiretap's totals.
func (s *Store) countTap(fn func(*WiretapCounts)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.taps)
}

type entry struct {
	ex   Exchange
	seq  uint64 // the Store's seq when ex last changed
	size int    // sizeOf(ex)
}

// sizeOf is about what an exchange holds in memory: its headers and
// captured bodies.
func sizeOf(ex *Exchange) int {
	n := len(ex.Method) + len(ex.Path) + len(ex.Proto) + len(ex.Host) + len(ex.Route) + len(ex.Error) +
		len(ex.RequestBody.Data) + len(ex.ResponseBody.Data)
	headers := []http.Header{ex.RequestHeader, ex.ResponseHeader, ex.ResponseTrailer}
	if w := ex.Wiretap; w != nil {
		n += len(w.Marker) + len(w.Body.Data) + len(w.NotSent) + diffSize(w.Diff)
		headers = append(headers, w.Header)
	}
	for _, h := range headers {
		for k, vs := range h {
			n += len(k)
			for _, v := range vs {
				n += len(v)
			}
		}
	}
	return n
}

// NewStore returns a Store that keeps the last limit exchanges (DefaultLimit
// when limit <= 0).
func NewStore(limit int) *Store {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Store{limit: limit, byteLimit: DefaultByteLimit, nextID: 1, next: make(chan struct{})}
}

// SetByteLimit bounds the bytes the Store holds (DefaultByteLimit unless set).
func (s *Store) SetByteLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byteLimit = n
	s.evictLocked()
}

// evictLocked drops the oldest exchanges beyond the count or the bytes;
// the newest stays.
func (s *Store) evictLocked() {
	for len(s.items) > 1 && (len(s.items) > s.limit || s.bytes > s.byteLimit) {
		s.bytes -= s.items[0].size
		s.items[0] = nil // let the evicted bodies go
		s.items = s.items[1:]
	}
}

// Limit is how many exchanges the Store keeps.
func (s *Store) Limit() int { return s.limit }

// add records a new exchange, evicting the oldest beyond the limit, and
// returns its ID.
func (s *Store) add(ex Exchange) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ex.ID = s.nextID
	s.nextID++
	e := &entry{ex: ex, size: sizeOf(&ex)}
	s.items = append(s.items, e)
	s.bytes += e.size
	s.evictLocked()
	s.changedLocked(e)
	return ex.ID
}

// update changes a kept exchange in place; an evicted one is left alone.
// fn must replace header maps and body bytes rather than modify them, since
// earlier copies share them.
func (s *Store) update(id uint64, fn func(*Exchange)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.findLocked(id)
	if e == nil {
		return
	}
	fn(&e.ex)
	s.bytes -= e.size
	e.size = sizeOf(&e.ex)
	s.bytes += e.size
	s.changedLocked(e)
	s.evictLocked()
}

func (s *Store) changedLocked(e *entry) {
	s.seq++
	e.seq = s.seq
	close(s.next)
	s.next = make(chan struct{})
}

func (s *Store) findLocked(id uint64) *entry {
	if len(s.items) == 0 || id < s.items[0].ex.ID {
		return nil
	}
	i := id - s.items[0].ex.ID
	if i >= uint64(len(s.items)) {
		return nil
	}
	return s.items[i]
}

// Get returns the exchange with id, if it is still kept.
func (s *Store) Get(id uint64) (Exchange, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.findLocked(id)
	if e == nil {
		return Exchange{}, false
	}
	return e.ex, true
}

// List returns the kept exchanges, newest first.
func (s *Store) List() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Exchange, len(s.items))
	for i, e := range s.items {
		out[len(s.items)-1-i] = e.ex
	}
	return out
}

// Changes is what happened in a Store after a point in its history.
type Changes struct {
	// Exchanges were added or changed after the point, oldest first.
	Exchanges []Exchange
	// Oldest is the ID of the oldest exchange still kept (0 when none):
	// anything older was evicted.
	Oldest uint64
	// Seq marks this point; pass it to the next Since.
	Seq uint64
	// Next is closed at the first change after Seq.
	Next <-chan struct{}
}

// Since returns the changes after seq (0: everything kept). Reading Changes
// and waiting on Next in a loop follows the Store live without missing a
// change:
//
//	for seq := uint64(0); ; {
//		c := s.Since(seq)
//		show(c.Exchanges)
//		seq = c.Seq
//		<-c.Next
//	}
func (s *Store) Since(seq uint64) Changes {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Changes{Seq: s.seq, Next: s.next}
	if len(s.items) > 0 {
		c.Oldest = s.items[0].ex.ID
	}
	for _, e := range s.items {
		if e.seq > seq {
			c.Exchanges = append(c.Exchanges, e.ex)
		}
	}
	return c
}
