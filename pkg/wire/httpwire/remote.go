package httpwire

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// A route with a Remote endpoint sends matching requests over the internet
// (ngrok) rather than through the port-forward. Anyone who learns the
// endpoint's URL can send requests to it, so the sidecar adds the route's
// secret to each request and the developer's end refuses those without it.
// The request's own Host and X-Forwarded-* headers travel in headers of
// ours, since the endpoint's edge rewrites the originals, and are put back
// before the request reaches the developer's service.
const (
	// SecretHeader carries the route's secret.
	SecretHeader = "X-Kubectl-Intercept-Secret"
	// HostHeader carries the request's original Host.
	HostHeader = "X-Kubectl-Intercept-Host"
	// savedPrefix prefixes the request's own X-Forwarded-* headers.
	savedPrefix = "X-Kubectl-Intercept-Saved-"
	// SkipWarningHeader makes ngrok's free plan pass the request on
	// instead of answering with its browser warning page.
	SkipWarningHeader = "Ngrok-Skip-Browser-Warning"
)

// forwardedHeaders are the headers the endpoint's edge adds or rewrites.
var forwardedHeaders = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"}

// NewSecret returns a fresh random secret for a remote route.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ToRemote rewrites out, a request on its way to the route's Remote
// endpoint: the URL and Host become the endpoint's, the original Host and
// X-Forwarded-* headers are saved in headers of ours, and the secret and the
// browser-warning skip are added.
func ToRemote(out *http.Request, r route.Route) error {
	u, err := url.Parse(r.Remote)
	if err != nil {
		return fmt.Errorf("remote endpoint: %w", err)
	}
	out.Header.Set(HostHeader, out.Host)
	for _, name := range forwardedHeaders {
		if v, ok := out.Header[name]; ok {
			out.Header[savedPrefix+name] = v
			delete(out.Header, name)
		}
	}
	out.Header.Set(SecretHeader, r.Secret)
	out.Header.Set(SkipWarningHeader, "1")
	out.URL.Scheme, out.URL.Host = u.Scheme, u.Host
	out.Host = u.Host
	return nil
}

// Guard is the developer's end of a remote endpoint: it answers 403 to a
// request without the secret and, for the others, undoes what ToRemote and
// the endpoint's edge did before next sees the request.
func Guard(secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get(SecretHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fromRemote(r)
		next.ServeHTTP(w, r)
	})
}

// fromRemote restores the request as the sidecar received it.
func fromRemote(r *http.Request) {
	if h := r.Header.Get(HostHeader); h != "" {
		r.Host = h
	}
	for _, name := range forwardedHeaders {
		delete(r.Header, name)
	}
	for name, v := range r.Header {
		if orig, ok := strings.CutPrefix(name, savedPrefix); ok {
			r.Header[orig] = v
			delete(r.Header, name)
		}
	}
	for _, name := range []string{SecretHeader, HostHeader, SkipWarningHeader} {
		delete(r.Header, name)
	}
}
