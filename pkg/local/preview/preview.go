// Package preview is a URL that carries a developer's route: every request
// to it goes on into the cluster (to the intercepted Service, or to an entry
// point in front of it) with the developer's header, cookie or baggage
// added, so a browser or a teammate clicks through the real system with one
// service replaced.
package preview

import (
	"context"
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Dialer opens a connection to the preview's target inside the cluster (a
// port-forward to a pod of it).
type Dialer func(ctx context.Context) (io.ReadWriteCloser, error)

// Target is where preview requests go.
type Target struct {
	// Host is the Host header the target expects (NAME.NAMESPACE.svc, or
	// an Ingress rule's host).
	Host string
	Dial Dialer
}

// Handler forwards every request to t with r's marker added: the header
// or baggage member on each request, the cookie on each request and in
// the browser (Set-Cookie), so links and XHR of the page carry it too.
// Of the browser's cookies only those the app set through the preview go
// on: the developer's cookies of other local apps stay here. Serve it
// behind SameOrigin (and LocalOnly on this machine).
func Handler(r route.Route, t Target) http.Handler {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := t.Dial(ctx)
			if err != nil {
				return nil, err
			}
			return conn{c}, nil
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
	}
	cookies := &appCookies{}
	rp := &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: httpwire.NewBufferPool(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", t.Host
			pr.Out.Host = t.Host
			httpwire.KeepAsSent(pr)
			cookies.filter(pr.Out.Header, r.Cookie)
			Mark(pr.Out.Header, r)
		},
		ModifyResponse: func(resp *http.Response) error {
			cookies.learn(resp.Header)
			if r.Cookie != "" {
				c := &http.Cookie{Name: r.Cookie, Value: r.Value, Path: "/"}
				resp.Header.Add("Set-Cookie", c.String())
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "preview: the cluster could not be reached: "+err.Error(), http.StatusBadGateway)
		},
	}
	return rp
}

// Mark adds what makes a request r's: the header (replacing any value the
// caller sent), the cookie, or the baggage member. An --all route needs
// nothing.
func Mark(h http.Header, r route.Route) {
	switch {
	case r.All:
	case r.Cookie != "":
		c := &http.Cookie{Name: r.Cookie, Value: r.Value}
		if old := h.Get("Cookie"); old != "" {
			h.Set("Cookie", old+"; "+c.String())
		} else {
			h.Set("Cookie", c.String())
		}
	case r.Baggage != "":
		member := r.Baggage + "=" + route.EscapeBaggage(r.Value)
		if old := h.Get("Baggage"); old != "" {
			member = old + "," + member
		}
		h.Set("Baggage", member)
	default:
		h.Set(r.Header, r.Value)
	}
}

// URL is the address a preview listener serves, as a link.
func URL(ln net.Listener) string {
	u := url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/"}
	return strings.Replace(u.String(), "[::1]", "localhost", 1)
}

// conn is a port-forward stream as a net.Conn for http.Transport.
type conn struct{ io.ReadWriteCloser }

type addr struct{}

func (addr) Network() string { return "portforward" }
func (addr) String() string  { return "portforward" }

func (conn) LocalAddr() net.Addr              { return addr{} }
func (conn) RemoteAddr() net.Addr             { return addr{} }
func (conn) SetDeadline(time.Time) error      { return nil }
func (conn) SetReadDeadline(time.Time) error  { return nil }
func (conn) SetWriteDeadline(time.Time) error { return nil }

// Protect asks for user and password (HTTP basic authentication) before h:
// a public preview URL must not be usable by whoever finds it.
func Protect(user, password string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="kubectl-intercept preview", charset="UTF-8"`)
			http.Error(w, "this preview needs the user and password its owner was given", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization") // the password stays here
		h.ServeHTTP(w, r)
	})
}
