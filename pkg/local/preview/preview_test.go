package preview

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
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
			return h.Get("Cookie") == "dev=alice"
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

// A public preview answers 401 without the password, and passes the
// request on (without the password) with it.
func TestProtect(t *testing.T) {
	var auth string
	h := Protect("preview", "s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		user, password string
		want           int
	}{{"", "", 401}, {"preview", "wrong", 401}, {"other", "s3cret", 401}, {"preview", "s3cret", 204}} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.user != "" {
			r.SetBasicAuth(tc.user, tc.password)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s:%s got %d, want %d", tc.user, tc.password, w.Code, tc.want)
		}
		if w.Code == 401 && !strings.Contains(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge")
		}
	}
	if auth != "" {
		t.Errorf("the password was passed on: %q", auth)
	}
}
