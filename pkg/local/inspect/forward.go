package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
)

// forwarder hands intercepted requests to the app on this machine and
// records each exchange.
type forwarder struct {
	local, route string
	store        *Store
	h1, h2       http.RoundTripper
	rp           *httputil.ReverseProxy
}

// NewForwarder returns the handler for intercepted HTTP connections coming
// out of the tunnel: each request goes on to the app at local (host:port on
// this machine) and is recorded in store under the label route (e.g.
// "X-C6O-INTERCEPT:yes").
//
// Bodies stream both ways (only their first BodyCaptureLimit bytes are
// kept; server-sent events, gRPC streams and bodies of unknown length are
// flushed write by write, others within 10 ms),
// trailers and upgrades (WebSocket) pass through, and no X-Forwarded-*
// header is added: the app sees what the caller sent. Requests that arrive
// over HTTP/2 reach the app over HTTP/2 without TLS (h2c, prior knowledge):
// the sidecar keeps a request HTTP/2 only for gRPC or a port declared h2c;
// all others arrive, and go on, over HTTP/1.1, which every app speaks.
func NewForwarder(local string, route string, store *Store) http.Handler {
	f := &forwarder{
		local: local, route: route, store: store,
		h1: appTransport(local, false),
		h2: appTransport(local, true),
	}
	f.rp = &httputil.ReverseProxy{
		BufferPool:     httpwire.NewBufferPool(),
		Rewrite:        f.rewrite,
		Transport:      roundTripperFunc(f.roundTrip),
		FlushInterval:  10 * time.Millisecond, // SSE, gRPC and bodies of unknown length: at once
		ModifyResponse: f.gotResponse,
		ErrorHandler:   f.failed,
		// Failures are recorded in the exchange and answered to the caller;
		// a log line on the developer's terminal for each would be noise.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return f
}

// appTransport reaches the app over HTTP/1.1 or, with h2, h2c.
func appTransport(local string, h2 bool) *http.Transport {
	var p http.Protocols
	if h2 {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", local)
		},
		Protocols:           &p,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		// Pass Accept-Encoding and compressed bodies through untouched, so
		// the caller gets exactly what the app sent.
		DisableCompression: true,
		// No response timeout: the app may be stopped at a breakpoint while
		// the developer looks around, which is the point of intercepting.
	}
}

// flight is what ServeHTTP and the proxy's hooks share about one request.
type flight struct {
	id      uint64
	start   time.Time
	h2      bool
	reqBody *capture
	resp    *http.Response
	// respBody is set for ordinary responses, conn for upgrades.
	respBody *capture
	conn     *countingConn
	status   int
	err      string
}

type flightKey struct{}

func flightOf(ctx context.Context) *flight {
	fl, _ := ctx.Value(flightKey{}).(*flight)
	return fl
}

// replayNote travels in a replayed request's context: of is the exchange
// copied, and the forwarder fills in id, the new exchange.
type replayNote struct{ of, id uint64 }

type replayKey struct{}

func withReplay(ctx context.Context, n *replayNote) context.Context {
	return context.WithValue(ctx, replayKey{}, n)
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fl := &flight{start: time.Now(), h2: wantsH2(r)}
	ex := Exchange{
		Time: fl.start, Method: r.Method, Path: requestPath(r), Proto: r.Proto, Host: r.Host,
		Route: f.route, RequestHeader: r.Header.Clone(),
	}
	note, _ := r.Context().Value(replayKey{}).(*replayNote)
	if note != nil {
		ex.Replay, ex.ReplayOf = true, note.of
	}
	tn, _ := r.Context().Value(tapKey{}).(*tapNote)
	if tn != nil {
		ex.Wiretap, ex.Route = tn.copy, "wiretap "+tn.copy.Marker
	}
	fl.id = f.store.add(ex)
	if note != nil {
		note.id = fl.id
	}
	if tn != nil {
		tn.id = fl.id
	}

	out := r.WithContext(context.WithValue(r.Context(), flightKey{}, fl))
	if r.Body != nil && r.Body != http.NoBody {
		fl.reqBody = newCapture(BodyCaptureLimit)
		out.Body = captureReader{ReadCloser: r.Body, c: fl.reqBody}
	}
	defer func() {
		// The proxy panics with http.ErrAbortHandler when a body breaks off
		// midway; record the exchange before the server swallows it.
		p := recover()
		if p != nil && fl.err == "" {
			fl.err = "the response broke off midway: the caller or the app closed the connection"
		}
		f.finish(fl)
		if p != nil {
			panic(p)
		}
	}()
	f.rp.ServeHTTP(w, out)
}

// requestPath is the path and query as the caller sent them.
func requestPath(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// wantsH2 says whether a request must reach the app over HTTP/2: it came
// through the tunnel over HTTP/2, which the sidecar keeps for gRPC (trailers,
// full duplex) and for ports declared h2c; the rest comes as HTTP/1.1.
func wantsH2(r *http.Request) bool {
	return r.ProtoMajor == 2
}

func (f *forwarder) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = f.local
	pr.Out.Host = pr.In.Host
	// So the app sees the request as it would in the cluster.
	httpwire.KeepAsSent(pr)
}

func (f *forwarder) roundTrip(r *http.Request) (*http.Response, error) {
	if fl := flightOf(r.Context()); fl != nil && fl.h2 {
		return f.h2.RoundTrip(r)
	}
	return f.h1.RoundTrip(r)
}

// gotResponse runs once the app's response head is in, before its body.
func (f *forwarder) gotResponse(resp *http.Response) error {
	fl := flightOf(resp.Request.Context())
	if fl == nil {
		return nil
	}
	fl.resp = resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The proxy needs the body to stay a ReadWriteCloser to splice the
		// upgraded connection; count it instead of capturing it.
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			fl.conn = &countingConn{ReadWriteCloser: rwc}
			resp.Body = fl.conn
		}
	} else {
		fl.respBody = newCapture(BodyCaptureLimit)
		resp.Body = captureReader{ReadCloser: resp.Body, c: fl.respBody}
	}
	status, header := resp.StatusCode, resp.Header.Clone()
	f.store.update(fl.id, func(ex *Exchange) {
		ex.Status, ex.ResponseHeader = status, header
	})
	return nil
}

// failed answers when the app could not be reached or gave no valid
// response.
func (f *forwarder) failed(w http.ResponseWriter, r *http.Request, err error) {
	fl := flightOf(r.Context())
	if fl == nil {
		fl = &flight{}
	}
	if r.Context().Err() != nil {
		fl.err = "the caller went away before the app answered"
		return
	}
	route := f.route
	if tn, _ := r.Context().Value(tapKey{}).(*tapNote); tn != nil {
		route = "" // a copy: no caller was sent here
	}
	msg := failureMessage(f.local, route, err)
	fl.status, fl.err = http.StatusBadGateway, strings.TrimSpace(msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = io.WriteString(w, msg) // if the caller is gone, the record below still tells
	// Record the answer as the caller got it.
	header := w.Header().Clone()
	fl.respBody = newCapture(BodyCaptureLimit)
	fl.respBody.note([]byte(msg))
	f.store.update(fl.id, func(ex *Exchange) { ex.ResponseHeader = header })
}

// failureMessage is the 502 body. Whoever sent the request reads it, who
// may not know the request was intercepted, so it says so and what to do.
func failureMessage(local, route string, err error) string {
	var b strings.Builder
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		_, port, _ := net.SplitHostPort(local)
		fmt.Fprintf(&b, "kubectl intercept: nothing answers on %s on the developer's machine.\n", local)
		if route != "" {
			fmt.Fprintf(&b, "This request matched the intercept %s, so it was sent there instead of to the cluster.\n", route)
		}
		fmt.Fprintf(&b, "Start your service on port %s (or intercept with the port it listens on), then send the request again.\n", port)
		return b.String()
	}
	fmt.Fprintf(&b, "kubectl intercept: the app on %s did not answer this request: %v\n", local, err)
	fmt.Fprintf(&b, "Check the app's log on the developer's machine.\n")
	return b.String()
}

// finish records how the exchange ended.
func (f *forwarder) finish(fl *flight) {
	reqBody, reqN := fl.reqBody.result()
	respBody, respN := fl.respBody.result()
	if fl.conn != nil {
		reqN += fl.conn.written.Load()
		respN = fl.conn.read.Load()
	}
	var trailer http.Header
	if fl.resp != nil && len(fl.resp.Trailer) > 0 {
		trailer = fl.resp.Trailer.Clone()
	}
	if err := fl.respBody.failure(); err != nil && fl.err == "" {
		fl.err = fmt.Sprintf("the app's response broke off after %d bytes: %v", respN, err)
	}
	d := time.Since(fl.start)
	f.store.update(fl.id, func(ex *Exchange) {
		if fl.status != 0 {
			ex.Status = fl.status
		}
		ex.RequestBody, ex.RequestSize = reqBody, reqN
		ex.ResponseBody, ex.ResponseSize = respBody, respN
		ex.ResponseTrailer = trailer
		ex.Duration, ex.Error, ex.Done = d, fl.err, true
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
