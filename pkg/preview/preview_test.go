package preview

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
)

// A request through the preview reaches the target with the developer's
// marker and the Host the target expects; a cookie route also sets the
// cookie in the browser.
func TestHandlerMarksEveryRequest(t *testing.T) {
	var got *http.Request
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", app.Listener.Addr().String())
	}
	for _, tc := range []struct {
		r      route.Route
		check  func(h http.Header) bool
		cookie bool
	}{
		{route.Route{Header: "X-Dev", Value: "alice"}, func(h http.Header) bool { return h.Get("X-Dev") == "alice" }, false},
		{route.Route{Cookie: "dev", Value: "alice"}, func(h http.Header) bool {
			return strings.Contains(h.Get("Cookie"), "dev=alice") && strings.Contains(h.Get("Cookie"), "a=1")
		}, true},
		{route.Route{Baggage: "dev", Value: "alice smith"}, func(h http.Header) bool { return h.Get("Baggage") == "dev=alice%20smith" }, false},
	} {
		srv := httptest.NewServer(Handler(tc.r, Target{Host: "shop.team.svc", Dial: dial}))
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/cart?x=1", nil)
		req.Header.Set("X-Dev", "mallory")
		req.Header.Set("Cookie", "a=1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if got == nil || got.Host != "shop.team.svc" || got.URL.RequestURI() != "/cart?x=1" || !tc.check(got.Header) {
			t.Errorf("%s: the target got %+v", tc.r, got)
		}
		if set := resp.Header.Get("Set-Cookie"); (set != "") != tc.cookie {
			t.Errorf("%s: Set-Cookie %q", tc.r, set)
		}
		srv.Close()
	}
}

func TestParseVia(t *testing.T) {
	for in, want := range map[string]Via{
		"svc/front":          {Kind: "service", Name: "front"},
		"service/front.shop": {Kind: "service", Name: "front", Namespace: "shop"},
		"svc/front:8080":     {Kind: "service", Name: "front", Port: "8080"},
		"ingress/web.shop":   {Kind: "ingress", Name: "web", Namespace: "shop"},
	} {
		if got, err := ParseVia(in); err != nil || got != want {
			t.Errorf("%q: %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"front", "deploy/front", "svc/", "svc/Front", "svc/front:", "ingress/web:80", "svc/a.b.c"} {
		if _, err := ParseVia(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
