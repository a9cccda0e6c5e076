package httpwire

import (
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Both ends proxy intercepted HTTP with httputil.ReverseProxy and serve it
// as HTTP/1.1 or HTTP/2 cleartext; what they must agree on is here.

// forwardingHeaders are the headers a proxy in front of a Service (an
// ingress, ngrok's edge) sets to say where a request came from.
// ReverseProxy drops them from the outbound request when Rewrite is used.
var forwardingHeaders = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// ForwardingHeaders returns the names of the forwarding headers.
func ForwardingHeaders() []string { return forwardingHeaders[:] }

// KeepAsSent puts back what ReverseProxy takes out before Rewrite: the
// caller's forwarding headers, and a query it cannot parse (a=1;b=2),
// which the app may well read. Call it from Rewrite.
func KeepAsSent(pr *httputil.ProxyRequest) {
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	for _, name := range forwardingHeaders {
		if v, ok := pr.In.Header[name]; ok {
			pr.Out.Header[name] = v
		}
	}
}

// MaxHeaderBytes bounds a request head at both ends of intercepted HTTP.
const MaxHeaderBytes = 64 << 10

// NewHTTPServer returns a server for intercepted requests: HTTP/1.1 and
// HTTP/2 cleartext (the sidecar speaks h2c for gRPC and h2c ports), no write timeout
// (streams and WebSockets stay open), and no log of callers' mistakes.
func NewHTTPServer(h http.Handler) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: &p, ErrorLog: log.New(io.Discard, "", 0),
		MaxHeaderBytes: MaxHeaderBytes, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
}

// NewBufferPool returns a pool that lends ReverseProxy its copy buffers:
// without one it allocates 32 KiB for every response, most of the garbage
// a busy proxy makes.
func NewBufferPool() httputil.BufferPool { return &bufferPool{} }

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.p.Put(&buf)
	}
}
