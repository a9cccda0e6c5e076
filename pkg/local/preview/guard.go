package preview

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// What a web page in the developer's browser may not do with the preview.
// The preview adds the developer's marker to every request and answers
// with what the cluster says; a page of another site could otherwise post
// through it (a request the browser sends anywhere), or, after pointing its
// own name at 127.0.0.1 (DNS rebinding), read the answers as same-origin.

// LocalOnly serves h only to requests whose Host is this machine's
// loopback at port (localhost, 127.0.0.1 or [::1]): a rebound name is
// refused, and with it every answer a page of that name could read.
func LocalOnly(port int, h http.Handler) http.Handler {
	p := strconv.Itoa(port)
	allowed := map[string]bool{}
	for _, host := range []string{"localhost", "127.0.0.1", "[::1]"} {
		allowed[host+":"+p] = true
		if port == 80 {
			allowed[host] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed[strings.ToLower(r.Host)] {
			http.Error(w, fmt.Sprintf("preview: Host %q is not this machine's loopback address: open http://localhost:%s/", r.Host, p), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// SameOrigin serves h the requests of the preview's own pages and those
// typed or clicked in the browser; a request another site's page sends (a
// form post, a fetch, an image) is refused. Another port of localhost is
// another origin too.
func SameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSite(r) && !navigation(r) {
			http.Error(w, "preview: refused a request sent by another site's page (only the preview's own pages, and links followed to it, are served)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// crossSite tells whether a browser sent r on behalf of another origin:
// by the fetch metadata it sends, else (an older browser) by Origin.
// A program's request (curl, a test) has neither and passes.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return false
	case "":
		origin := r.Header.Get("Origin")
		if origin == "" {
			return false
		}
		u, err := url.Parse(origin)
		return err != nil || !strings.EqualFold(u.Host, r.Host)
	}
	return true // same-site (another port), cross-site
}

// navigation tells whether r is the browser opening a page (a link
// followed, an address typed): a GET or HEAD of mode navigate, which
// another site cannot read the answer of.
func navigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Sec-Fetch-Mode") == "navigate"
}

// appCookies are the names of the cookies the app behind the preview set
// through it: those, and the route's, are the cookies the preview forwards;
// the developer's other cookies for localhost (any port's) stay here.
type appCookies struct {
	mu    sync.Mutex
	names map[string]bool
}

// maxAppCookies bounds what a chatty app makes the preview remember.
const maxAppCookies = 64

func (a *appCookies) learn(h http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, line := range h.Values("Set-Cookie") {
		name, _, ok := strings.Cut(line, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || len(a.names) >= maxAppCookies {
			continue
		}
		if a.names == nil {
			a.names = map[string]bool{}
		}
		a.names[name] = true
	}
}

// filter keeps in h's Cookie the cookies the app set, without the
// route's own (Mark adds that one).
func (a *appCookies) filter(h http.Header, route string) {
	in := (&http.Request{Header: http.Header{"Cookie": h.Values("Cookie")}}).Cookies()
	h.Del("Cookie")
	a.mu.Lock()
	defer a.mu.Unlock()
	var kept []string
	for _, c := range in {
		if a.names[c.Name] && c.Name != route {
			kept = append(kept, c.Name+"="+c.Value)
		}
	}
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}
