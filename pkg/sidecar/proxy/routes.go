// Package proxy is the sidecar's data plane: requests whose header, cookie
// or baggage matches a live route go through that developer's tunnel;
// everything else goes to the app container in the same pod, unchanged.
package proxy

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// liveRoute is a live route and the way to reach its developer.
type liveRoute struct {
	route.Route
	// facts is the route compiled once, when it is added or contested:
	// what Conflicts and Takes read of it, so a request's contest check
	// parses and compiles nothing.
	facts *route.Compiled
	// re is the route's PathRegex, compiled once, anchored (nil: none).
	re *regexp.Regexp
	// narrowed: a path or a method narrows the route (Route.Narrowed).
	// whole: an All route that nothing narrows, which takes connections
	// whole (pipeToRoute); an All route narrowed takes HTTP requests, one
	// by one, as a marker's route does.
	narrowed, whole bool
	dial            tunnel.DialFunc
	transport       http.RoundTripper // HTTP/1.1 to the developer
	h2              http.RoundTripper // h2c to the developer
	// pipes are the connections an All route carries whole, closed when a
	// contest suspends the route.
	pipesMu sync.Mutex
	pipes   map[net.Conn]struct{}
}

// pipe records a connection the route carries whole until the returned
// func.
func (r *liveRoute) pipe(c net.Conn) func() {
	r.pipesMu.Lock()
	defer r.pipesMu.Unlock()
	if r.pipes == nil {
		r.pipes = map[net.Conn]struct{}{}
	}
	r.pipes[c] = struct{}{}
	return func() {
		r.pipesMu.Lock()
		delete(r.pipes, c)
		r.pipesMu.Unlock()
	}
}

// closePipes ends the connections the route carries whole.
func (r *liveRoute) closePipes() {
	r.pipesMu.Lock()
	defer r.pipesMu.Unlock()
	for c := range r.pipes {
		_ = c.Close()
	}
}

// dialFast connects to r's developer for the fast path and the relay,
// with raw reads and writes when the connection is TCP (a static route, or
// another pod's sidecar forwarding to the developer).
func (r *liveRoute) dialFast(ctx context.Context) (net.Conn, error) {
	c, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	return fastIO(c), nil
}

// Table holds the live routes. Lookups happen on every request; changes only
// when a developer comes or goes, so a copy-on-write slice behind an RWMutex
// keeps the hot path to a read lock and a short scan.
type Table struct {
	mu     sync.RWMutex
	routes []*liveRoute
	// narrowed counts the routes a path or a method narrows.
	narrowed int
	// contests are the live contests (see Suspend), each the contested
	// route under its contester's key, compiled to match requests.
	contests []*liveRoute
	// taps are the wiretap routes (wiretap.go), matched beside routes and
	// never instead of them; nTaps counts them for a lock-free check.
	taps      []*tapRoute
	nTaps     atomic.Int32
	tapBounds tapBounds // over all wiretaps (wiretap.go)
	// RemoteTLS, if set, is the TLS configuration for routes with a
	// Remote endpoint; nil trusts the usual roots.
	RemoteTLS *tls.Config
}

var _ tunnel.RouteTable = (*Table)(nil)

// Add installs r, refusing one that conflicts with a live route or that
// this sidecar cannot match.
func (t *Table) Add(r route.Route, dial tunnel.DialFunc) (func(), error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", tunnel.ErrBadRequest, err)
	}
	if !r.All {
		r.Header = http.CanonicalHeaderKey(r.Header)
	}
	tunnelDial := func(ctx context.Context) (net.Conn, error) {
		c, err := dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errTunnelGone, err)
		}
		return c, nil
	}
	nr := &liveRoute{Route: r, facts: route.Compile(r), narrowed: r.Narrowed(), whole: r.All && !r.Narrowed(), dial: dial, transport: newTransport(tunnelDial, false), h2: newTransport(tunnelDial, true)}
	nr.re = nr.facts.Regex() // Validate compiled it
	if r.Remote != "" {
		rt := newRemoteTransport(r, t.RemoteTLS)
		nr.transport, nr.h2 = rt, rt
	}
	if r.Wiretap {
		nr.whole = false // a copy of requests, never of connections
		return t.addTap(nr)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := make([]*liveRoute, 0, len(t.routes)+1)
	for _, old := range t.routes {
		if r.Client != "" && subtle.ConstantTimeCompare([]byte(old.Client), []byte(r.Client)) == 1 {
			continue // the same CLI (it holds the owner key), reconnected: the new registration wins
		}
		if old.facts.Conflicts(nr.facts) {
			return nil, fmt.Errorf("%w: %s is intercepted by %s; %s", tunnel.ErrConflict, old.Route, ownerOrSomeone(old.Owner), pickAnother(r, old.Route))
		}
		kept = append(kept, old)
	}
	t.routes = append(kept, nr)
	t.countNarrowed()
	return func() { t.remove(nr) }, nil
}

// countNarrowed counts the narrowed routes again; t.mu is held.
func (t *Table) countNarrowed() {
	t.narrowed = 0
	for _, r := range t.routes {
		if r.narrowed {
			t.narrowed++
		}
	}
}

// pickAnother says how to ask for a route like r that taken does not
// hold.
func pickAnother(r, taken route.Route) string {
	switch {
	case taken.All && !taken.Narrowed():
		return "it takes every connection of the port; ask them to narrow it (--path-prefix, --path-regex, --method) or to close it"
	case r.All || taken.All || r.Narrowed() || taken.Narrowed():
		return "narrow your route to paths (--path-prefix, --path-regex) or methods (--method) that it does not take, or pick another marker"
	case r.Cookie != "":
		return "pick another cookie value with --cookie"
	case r.Baggage != "":
		return "pick another baggage value with --baggage"
	}
	return "pick another header value with -x"
}

func ownerOrSomeone(o string) string {
	if o == "" {
		return "another developer"
	}
	return o
}

func (t *Table) remove(r *liveRoute) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := make([]*liveRoute, 0, len(t.routes))
	for _, x := range t.routes {
		if x != r {
			kept = append(kept, x)
		}
	}
	t.routes = kept
	t.countNarrowed()
	r.closeIdle()
}

// Suspend holds, until resume is called, every route that takes r's
// requests (route.Takes) under a key other than r's out of matching for
// the requests r matches: the routes there now, and those registered
// again or under another key while the contest lasts. Those requests go
// to the app; the route keeps the requests r does not match, and the list
// marks it Suspended. An All route that takes connections whole has its
// connections closed and takes HTTP requests one by one while the contest
// lasts. It reports how many routes it holds now. A suspended route still
// conflicts with new registrations: a contest never hands the route to
// anyone.
//
// A table holds at most MaxContests contests: every request of a
// contested route is checked against each; past it Suspend refuses.
func (t *Table) Suspend(r route.Route) (resume func(), n int, err error) {
	if !r.All {
		r.Header = http.CanonicalHeaderKey(r.Header)
	}
	// Validated by the caller; a regex that does not compile holds every
	// path.
	c := &liveRoute{Route: r, facts: route.Compile(r), narrowed: r.Narrowed()}
	c.re = c.facts.Regex()
	t.mu.Lock()
	if len(t.contests) >= MaxContests {
		t.mu.Unlock()
		return nil, 0, fmt.Errorf("%w: this pod holds %d contests already, the most it takes; the developers who contested routes here end theirs when they close their sessions (kubectl intercept list shows the suspended routes)", tunnel.ErrFailed, MaxContests)
	}
	t.contests = append(t.contests, c)
	var piped []*liveRoute
	for _, x := range t.routes {
		if suspendedBy(x, c) {
			n++
			if x.whole {
				piped = append(piped, x)
			}
		}
	}
	t.mu.Unlock()
	for _, x := range piped {
		x.closePipes()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			// A new slice: a request may be reading the old one (view).
			t.contests = slices.DeleteFunc(slices.Clone(t.contests), func(x *liveRoute) bool { return x == c })
			t.mu.Unlock()
		})
	}, n, nil
}

// MaxContests bounds the contests one table holds at once, whoever holds
// them: a control port holds at most tunnel.MaxControlSessions sessions of
// at most 8 contests each, far more than a race between teammates leaves.
const MaxContests = 64

// suspendedBy says whether contest c holds r out of matching (for the
// requests c matches).
func suspendedBy(r *liveRoute, c *liveRoute) bool {
	return subtle.ConstantTimeCompare([]byte(r.Client), []byte(c.Client)) != 1 && r.facts.Takes(c.facts)
}

// liveNow is live for a caller that does not hold t.mu.
func (t *Table) liveNow(r *liveRoute) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.live(r)
}

// live says whether no contest holds r, for any request; t.mu is held.
func (t *Table) live(r *liveRoute) bool {
	for _, c := range t.contests {
		if suspendedBy(r, c) {
			return false
		}
	}
	return true
}

// view is what matching reads of the table, taken under t.mu and read
// without it: the table replaces its slices, never changes them in place,
// and an installed liveRoute does not change. So a route's regex runs with
// no lock held, and a registration never waits for a request's match.
type view struct {
	routes, contests []*liveRoute
	narrowed         bool
}

func (t *Table) view() view {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return view{routes: t.routes, contests: t.contests, narrowed: t.narrowed > 0}
}

// held says whether a contest holds r out of matching for a request that
// contest matches (contested reports whether it does).
func (v view) held(r *liveRoute, contested func(c *liveRoute) bool) bool {
	for _, c := range v.contests {
		if suspendedBy(r, c) && contested(c) {
			return true
		}
	}
	return false
}

// List returns the live routes.
func (t *Table) List() []route.Route { return t.ListOwned("") }

// ListOwned returns the live routes, those of owner key marked Mine.
func (t *Table) ListOwned(key string) []route.Route {
	t.mu.RLock()
	defer t.mu.RUnlock()
	all := t.routes
	for _, x := range t.taps {
		all = append(all[:len(all):len(all)], x.lr)
	}
	out := make([]route.Route, len(all))
	for i, r := range all {
		out[i] = r.Route
		out[i].Mine = key != "" && subtle.ConstantTimeCompare([]byte(r.Client), []byte(key)) == 1
		// Suspended: for the contested route's requests at least.
		out[i].Suspended = !t.live(r)
		out[i].Secret, out[i].Client = "", "" // only its own developer knows them
	}
	return out
}

// match returns the route a request belongs to, or nil for the app:
// net/http's request, its method, its target as sent (RequestURI) and
// header.
func (t *Table) match(method, target string, h http.Header) *liveRoute {
	v := t.view()
	for _, r := range v.routes {
		if r.matches(method, target, h) &&
			(len(v.contests) == 0 || !v.held(r, func(c *liveRoute) bool { return c.matches(method, target, h) })) {
			return r
		}
	}
	return nil
}

// matchFields is match for an HTTP/2 request's header fields, its
// pseudo-headers included.
func (t *Table) matchFields(fields []hpack.HeaderField) *liveRoute {
	v := t.view()
	var method, path string
	if v.narrowed || len(v.contests) > 0 {
		method, path = pseudoLine(fields)
	}
	for _, r := range v.routes {
		if r.matchesFields(method, path, fields) &&
			(len(v.contests) == 0 || !v.held(r, func(c *liveRoute) bool { return c.matchesFields(method, path, fields) })) {
			return r
		}
	}
	return nil
}

// matchHead is match for a raw request head, read in place.
func (t *Table) matchHead(head []byte) *liveRoute {
	line, fields, _ := bytes.Cut(head, []byte("\r\n"))
	v := t.view()
	var method, path []byte
	if v.narrowed || len(v.contests) > 0 { // the request line is read only for a narrowed route or a contest
		method, path = requestLine(line)
	}
	for _, r := range v.routes {
		if r.matchesHead(method, path, fields) &&
			(len(v.contests) == 0 || !v.held(r, func(c *liveRoute) bool { return c.matchesHead(method, path, fields) })) {
			return r
		}
	}
	return nil
}

// any reports whether some route is live.
func (t *Table) any() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.routes) > 0
}

// all returns the route that takes every connection whole, if there is
// one: an All route nothing narrows.
func (t *Table) all() *liveRoute {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.routes {
		if r.whole && t.live(r) {
			return r
		}
	}
	return nil
}

func (r *liveRoute) closeIdle() {
	for _, rt := range []http.RoundTripper{r.transport, r.h2} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}
