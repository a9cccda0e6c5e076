package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// wiretapTimeout bounds the local app's answer to one copy: copies are
// handled one at a time, and an app stopped at a breakpoint must not hold
// the rest back for ever (the sidecar drops what does not fit its queue).
const wiretapTimeout = 30 * time.Second

// tapNote travels in a copied request's context: the forwarder records the
// exchange as a wiretap's and fills in id.
type tapNote struct {
	copy *WiretapCopy
	id   uint64
}

type tapKey struct{}

// Wiretap is the developer's end of a wiretap: it reads the copies the
// sidecar sends (the request and the cluster's answer), sends each request
// to the local app through the forwarder, as an intercepted one would go,
// and keeps the pair and their diff in the store, and in a record file if
// one is open. Nothing it does reaches the caller, who already has the
// cluster's answer.
type Wiretap struct {
	forwarder http.Handler
	store     *Store
	opts      WiretapOptions
	// recordErr is the first failure to write the record; later pairs are
	// not written.
	mu        sync.Mutex
	recordErr error
}

// WiretapOptions say how copies are compared and kept.
type WiretapOptions struct {
	// Ignore leaves parts of bodies and headers out of the diff.
	Ignore Ignore
	// Record, when set, gets every pair (--record).
	Record *Recorder
}

// NewWiretap returns the developer's end of a wiretap: forwarder (from
// NewForwarder) reaches the local app and records into store.
func NewWiretap(forwarder http.Handler, store *Store, opts WiretapOptions) *Wiretap {
	return &Wiretap{forwarder: forwarder, store: store, opts: opts}
}

// ServeStream handles the copies of one tap stream, one at a time, until
// the stream ends (nil) or breaks the format (an error that says so; the
// copies read before stay).
func (w *Wiretap) ServeStream(ctx context.Context, r io.Reader) error {
	tr := tap.NewReader(r)
	for {
		ex, err := tr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the wiretap's copies from the sidecar: %w", err)
		}
		w.Handle(ctx, ex)
	}
}

// RecordErr is the error that stopped the record file, if any.
func (w *Wiretap) RecordErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recordErr
}

// Handle sends one copy's request to the local app, compares the answer
// with the cluster's, and keeps both. It returns the diff (nil when the
// request could not be sent, e.g. its body was copied only in part).
func (w *Wiretap) Handle(ctx context.Context, ex *tap.Exchange) *Diff {
	cp := &WiretapCopy{
		Marker: ex.Route.Marker, Status: ex.Response.Status, Header: ex.Response.Header,
		Body: firstBytes(ex.Response.Body), Size: ex.Response.Body.Size,
		Duration: ex.Duration, Dropped: ex.Dropped,
	}
	w.store.countTap(func(c *WiretapCounts) { c.Copies++; c.Dropped += ex.Dropped })

	req, err := tapRequest(ex)
	if err != nil {
		cp.NotSent = err.Error()
		w.store.add(Exchange{
			Time: ex.Time, Method: ex.Request.Method, Path: ex.Request.Target, Proto: ex.Request.Proto,
			Host: ex.Request.Header.Get("Host"), Route: "wiretap " + cp.Marker,
			RequestHeader: ex.Request.Header, RequestBody: firstBytes(ex.Request.Body), RequestSize: ex.Request.Body.Size,
			Done: true, Error: cp.NotSent, Wiretap: cp,
		})
		w.store.countTap(func(c *WiretapCounts) { c.NotSent++ })
		w.record(ex, nil, nil)
		return nil
	}

	tn := &tapNote{copy: cp}
	rctx, cancel := context.WithTimeout(ctx, wiretapTimeout)
	defer cancel()
	tw := newTapWriter()
	func() {
		defer func() {
			//nolint:errorlint // recover hands back the very value panicked with, as net/http compares it
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				panic(p)
			}
		}()
		w.forwarder.ServeHTTP(tw, req.WithContext(context.WithValue(rctx, tapKey{}, tn)))
	}()
	local := tw.answer()
	diff := Compare(clusterAnswer(ex), local, w.opts.Ignore)
	w.store.update(tn.id, func(e *Exchange) {
		if e.Wiretap == nil {
			return
		}
		c := *e.Wiretap
		c.Diff = diff
		e.Wiretap = &c
	})
	w.store.countTap(func(c *WiretapCounts) {
		c.Compared++
		if diff.Differs() {
			c.Differ++
		}
	})
	w.record(ex, &local, diff)
	return diff
}

func (w *Wiretap) record(ex *tap.Exchange, local *Answer, diff *Diff) {
	if w.opts.Record == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recordErr != nil {
		return
	}
	w.recordErr = w.opts.Record.Write(ex, local, diff)
}

// firstBytes is the part of a copied body the store keeps.
func firstBytes(b tap.Body) Body {
	data := b.Data
	if len(data) > BodyCaptureLimit {
		data = data[:BodyCaptureLimit]
	}
	return Body{Data: data, Truncated: b.Size > int64(len(data))}
}

func clusterAnswer(ex *tap.Exchange) Answer {
	b := ex.Response.Body
	return Answer{Status: ex.Response.Status, Header: ex.Response.Header, Body: b.Data, Size: b.Size, Truncated: b.Truncated}
}

// tapRequest rebuilds a copied request as the server would have handed it
// to the forwarder.
func tapRequest(ex *tap.Exchange) (*http.Request, error) {
	r := ex.Request
	if r.Body.Truncated {
		return nil, fmt.Errorf("not sent to the local app: its body of %s is past the %s a copy carries, so it cannot be sent as the caller sent it",
			formatSize(r.Body.Size), formatSize(tap.BodyCap))
	}
	return buildRequest(r.Method, r.Target, r.Proto, r.Header, r.Body.Data)
}

// buildRequest makes an inbound-style request: Host from the headers,
// target as sent.
func buildRequest(method, target, proto string, header http.Header, body []byte) (*http.Request, error) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, fmt.Errorf("the request target %q cannot be sent again: %w", target, err)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		proto, major, minor = "HTTP/1.1", 1, 1
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	host := h.Get("Host")
	h.Del("Host")
	req := &http.Request{
		Method: method, URL: u, RequestURI: target, Host: host,
		Proto: proto, ProtoMajor: major, ProtoMinor: minor,
		Header: h, Body: http.NoBody, ContentLength: int64(len(body)),
	}
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	return req, nil
}

// tapWriter keeps the local app's answer to a copy: the head, and the
// body up to tap.BodyCap, as much as the cluster's copy holds.
type tapWriter struct {
	header http.Header
	status int
	body   []byte
	size   int64
}

func newTapWriter() *tapWriter { return &tapWriter{header: http.Header{}} }

func (w *tapWriter) Header() http.Header { return w.header }

func (w *tapWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *tapWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if room := tap.BodyCap - len(w.body); room > 0 {
		w.body = append(w.body, p[:min(room, len(p))]...)
	}
	w.size += int64(len(p))
	return len(p), nil
}

// Flush lets the proxy stream into the writer.
func (w *tapWriter) Flush() {}

func (w *tapWriter) answer() Answer {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	return Answer{Status: status, Header: w.header, Body: w.body, Size: w.size, Truncated: w.size > int64(len(w.body))}
}

// diffSize is about what a diff holds in memory.
func diffSize(d *Diff) int {
	if d == nil {
		return 0
	}
	n := 64
	for _, h := range d.Headers {
		n += len(h.Name)
		for _, v := range append(append([]string(nil), h.Cluster...), h.Local...) {
			n += len(v)
		}
	}
	if d.Body != nil {
		n += len(d.Body.Note)
		for _, p := range d.Body.Paths {
			n += len(p.Path) + len(p.Cluster) + len(p.Local)
		}
	}
	return n
}
