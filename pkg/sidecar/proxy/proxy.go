package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Handler routes each request (each HTTP/2 stream on its own) either to a
// developer's tunnel or to the upstream app.
type Handler struct {
	Table *Table
	// Upstream is the app container's address, host:port.
	Upstream string
	// Pod names this pod in probe answers.
	Pod string
	// H2C says the port speaks HTTP/2 without TLS (appProtocol h2c): HTTP/2
	// requests stay HTTP/2 on the way to the app and the developer.
	H2C bool
	Log *slog.Logger
	// Watches, if set, records the requests that carry a doctor's marker.
	Watches *Watches

	upstream1, upstream2 http.RoundTripper
	rp                   *httputil.ReverseProxy
}

type ctxKey struct{}

// NewHandler builds the handler for an upstream app.
func NewHandler(table *Table, upstream, pod string, log *slog.Logger) *Handler {
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", upstream)
	}
	h := &Handler{Table: table, Upstream: upstream, Pod: pod, Log: log,
		upstream1: newTransport(dial, false), upstream2: newTransport(dial, true)}
	h.rp = &httputil.ReverseProxy{
		BufferPool: httpwire.NewBufferPool(),
		// Rewrite (not Director) so no X-Forwarded-* header is added: the
		// app sees what the client sent.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Host
			if pr.Out.URL.Host == "" {
				pr.Out.URL.Host = upstream
			}
			pr.Out.Host = pr.In.Host
			httpwire.KeepAsSent(pr)
		},
		Transport: roundTripperFunc(h.roundTrip),
		// SSE, gRPC and bodies of unknown length go out at once; a body of
		// known length within 10 ms, in as few writes as it arrives in.
		FlushInterval: 10 * time.Millisecond,
		ErrorHandler:  h.errorHandler,
		ErrorLog:      nil,
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	headDone(r.Context())
	if r.Header.Get(wire.ProbeHeader) != "" {
		w.Header().Set(wire.ProbePodHeader, h.Pod)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Watches.Observe(r)
	d := decision{route: h.Table.match(r.Method, r.RequestURI, r.Header), h2: h.wantsH2(r)}
	if taps := h.Table.matchTaps(r.Method, r.RequestURI, r.Header); len(taps) > 0 && tappable(r) {
		h.serveTapped(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, d)), taps)
		return
	}
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, d)))
}

// decision is where ServeHTTP sent a request, for roundTrip.
type decision struct {
	route *liveRoute // nil: the app
	h2    bool
}

// wantsH2 decides how a request travels on: HTTP/2 (h2c) when it came in
// over HTTP/2 and either is gRPC (which needs HTTP/2's trailers and full
// duplex) or the port is declared h2c; otherwise HTTP/1.1, which every
// HTTP server speaks, so an HTTP/2 caller still reaches an HTTP/1.1 app.
func (h *Handler) wantsH2(r *http.Request) bool {
	if r.ProtoMajor != 2 {
		return false
	}
	return h.H2C || strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func (h *Handler) roundTrip(r *http.Request) (*http.Response, error) {
	d, _ := r.Context().Value(ctxKey{}).(decision)
	app := h.upstream1
	if d.h2 {
		app = h.upstream2
	}
	if d.route == nil {
		return app.RoundTrip(r)
	}
	rt := d.route.transport
	if d.h2 {
		rt = d.route.h2
	}
	// The transport closes the body on every error; keep it open so the
	// request can still go to the app if the tunnel turns out to be gone.
	tr := r
	if r.Body != nil && r.Body != http.NoBody {
		tr = r.Clone(r.Context())
		tr.Body = keepOpen{r.Body}
	}
	resp, err := rt.RoundTrip(tr)
	if err != nil && errors.Is(err, errTunnelGone) {
		// The developer left a moment ago and this sidecar has not yet
		// seen it: fail open. Nothing of the request was sent (the dial
		// failed), so the app gets it whole.
		if h.Log != nil {
			h.Log.Debug("tunnel gone, request goes to the app", "route", d.route.String())
		}
		return app.RoundTrip(r)
	}
	if err != nil && tr != r {
		r.Body.Close()
	}
	return resp, err
}

// errTunnelGone marks a failed dial through a developer's tunnel.
var errTunnelGone = errors.New("tunnel to the developer is gone")

type keepOpen struct{ io.Reader }

func (keepOpen) Close() error { return nil }

func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left; nobody to answer
	}
	// Anything else, a cancellation on the way included, is an error the
	// caller must see as one, never an empty 200.
	if h.Log != nil {
		h.Log.Warn("proxy error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, "intercept-proxy: %v\n", err)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newTransport returns a transport that reaches one destination through dial,
// over HTTP/1.1 or, with h2, HTTP/2 with prior knowledge (h2c). Only the
// request's URL host differs between requests; the dial ignores it.
func newTransport(dial tunnel.DialFunc, h2 bool) *http.Transport {
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		},
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
		// The app may send only this much of a response ahead of the
		// caller: the defaults (4 MiB a stream) let a sidecar hold every
		// concurrent stream's whole body.
		t.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: h2StreamWindow, MaxReceiveBufferPerConnection: h2ConnWindow}
	}
	return t
}

// The HTTP/2 flow-control windows of the sidecar's connections: what the
// other end may send ahead of what the sidecar has passed on.
const (
	h2StreamWindow = 64 << 10
	h2ConnWindow   = 1 << 20
)

// newRemoteTransport returns the way to a route's Remote endpoint over
// HTTPS (HTTP/2 where the endpoint offers it, which gRPC needs), with each
// request rewritten by httpwire.ToRemote. A failed dial counts as the
// developer gone, so the request goes to the app.
func newRemoteTransport(r route.Route, tlsConf *tls.Config) http.RoundTripper {
	if tlsConf == nil {
		tlsConf = &tls.Config{RootCAs: webRoots()}
	}
	var d net.Dialer
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errTunnelGone, err)
			}
			return c, nil
		},
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		DisableCompression:    true,
	}
	return remoteTransport{Transport: t, route: r}
}

type remoteTransport struct {
	*http.Transport
	route route.Route
}

func (t remoteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	out := r.Clone(r.Context())
	if err := httpwire.ToRemote(out, t.route); err != nil {
		return nil, err
	}
	return t.Transport.RoundTrip(out)
}

// webRoots are the usual web roots, for remote endpoints: the sidecar's
// image has no CA bundle. Parsed on the first remote route, not at start.
var webRoots = sync.OnceValue(func() *x509.CertPool {
	p := x509.NewCertPool()
	for c := range bundle.Roots() {
		cert, err := x509.ParseCertificate(c.Certificate)
		if err != nil {
			continue
		}
		if c.Constraint == nil {
			p.AddCert(cert)
		} else {
			p.AddCertWithConstraint(cert, c.Constraint)
		}
	}
	return p
})
