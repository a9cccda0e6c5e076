package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// An intercept narrowed by path or method (--path-prefix, --path-regex,
// --method) takes only some of the requests that carry its marker: the
// doctor's request, to be one the intercept would take, goes to a path and
// with a method of the route's.

// RouteFor picks, of the live routes, the one the doctor tests: the first
// whose marker is carried by one of the carriers that must arrive (a
// header by name in any case, a cookie by name, a baggage member by key).
// ok is false when none is.
func RouteFor(routes []route.Route, m tunnel.Marker, expect []tunnel.Carrier) (r route.Route, ok bool) {
	for _, r := range routes {
		for _, c := range expect {
			switch {
			case c == tunnel.CarrierHeader && r.Header != "" && strings.EqualFold(r.Header, m.Header),
				c == tunnel.CarrierCookie && r.Cookie != "" && r.Cookie == m.Cookie,
				c == tunnel.CarrierBaggage && r.Baggage != "" && r.Baggage == m.Baggage:
				return r, true
			}
		}
	}
	return route.Route{}, false
}

// Target is the path and method of the doctor's request for route r when
// the entry names no path: for a route narrowed by path or method, a path
// and a method it takes (route.SamplePath, route.SampleMethod); else path
// and GET, as before narrowing. ok is false when no path of the route is
// found (a regex the sample cannot satisfy): then path and GET.
func Target(r route.Route, path string) (string, string, bool) {
	if !r.Narrowed() {
		return path, http.MethodGet, true
	}
	sample, method := route.SamplePath(r), route.SampleMethod(r)
	if sample == "" || method == "" {
		return path, http.MethodGet, false
	}
	return sample, method, true
}

// Takes says whether route r takes a request the doctor saw (its method
// and path, a query cut off).
func Takes(r route.Route, method, path string) bool {
	path, _, _ = strings.Cut(path, "?")
	return r.MethodAllowed(method) && r.MatchesPath(path)
}

// SendMarked sends a request of method to url with the marker m, Host
// host when set, on a new connection, without a body, and returns the
// answer's status. It follows no redirect (the doctor tests the entry it
// was given) and reads at most 1 MiB of the answer.
func SendMarked(ctx context.Context, method, url, host string, m tunnel.Marker) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, tunnel.SendTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, fmt.Errorf("requesting %s %s: %w", method, url, err)
	}
	if host != "" {
		req.Host = host
	}
	m.Apply(req.Header)
	req.Close = true
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("requesting %s %s: %w", method, url, err)
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 1<<20)
	resp.Body.Close()
	return resp.StatusCode, nil
}
