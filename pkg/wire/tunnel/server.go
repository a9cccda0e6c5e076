package tunnel

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// DialFunc opens one connection toward a developer.
type DialFunc func(ctx context.Context) (net.Conn, error)

// RouteTable is what the sidecar's data plane exposes to the tunnel server.
type RouteTable interface {
	// Add installs a route that sends matching traffic through dial. It fails
	// when the route conflicts with a live one. remove uninstalls it.
	Add(r route.Route, dial DialFunc) (remove func(), err error)
	// List returns the live routes.
	List() []route.Route
}

// OwnedLister is a RouteTable that can mark the routes of one owner key.
type OwnedLister interface {
	ListOwned(key string) []route.Route
}

// Server is the sidecar's end of the tunnel.
type Server struct {
	// Pod names the pod the sidecar runs in, for answers.
	Pod    string
	Routes RouteTable
	// Probe requests url from inside the cluster and returns the pod of the
	// sidecar that answered.
	Probe func(ctx context.Context, url string) (string, error)
	// Watches records the requests that carry a doctor's marker; nil: this
	// sidecar cannot watch.
	Watches Watcher
	// Send requests url with a doctor's marker from inside the cluster
	// and returns the answer's status; nil: this sidecar cannot send.
	Send func(ctx context.Context, method, url, host string, m Marker) (int, error)
	// Dial connects to HOST:PORT from the pod for a developer who holds a
	// live route here (see dial.go); nil: this sidecar cannot dial.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Resolve looks a host name up as the pod does, before Dial (which
	// then gets an IP:PORT); the pod's resolver when nil.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Admitted holds the pod keys whose relays may register routes
	// through the peer port (see peer.go); nil: no peer port.
	Admitted *Admissions
	// ResolvConf reads the pod's /etc/resolv.conf (see resolvconf.go);
	// nil: this sidecar cannot.
	ResolvConf func() ([]byte, error)

	mu       sync.Mutex
	sessions map[*controlSession]struct{} // live, for routes' Mine by tag
}

// track adds cs to the live sessions, or removes it.
func (s *Server) track(cs *controlSession, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions = map[*controlSession]struct{}{}
	}
	if live {
		s.sessions[cs] = struct{}{}
	} else {
		delete(s.sessions, cs)
	}
}

// keysTagged returns the route keys (Client) that the sessions registered
// under owner tag tag.
func (s *Server) keysTagged(tag string) []string {
	s.mu.Lock()
	sessions := make([]*controlSession, 0, len(s.sessions))
	for cs := range s.sessions {
		sessions = append(sessions, cs)
	}
	s.mu.Unlock()
	var keys []string
	for _, cs := range sessions {
		cs.mu.Lock()
		if cs.tag != "" && subtle.ConstantTimeCompare([]byte(cs.tag), []byte(tag)) == 1 {
			for _, r := range cs.routes {
				if r.Client != "" && !slices.Contains(keys, r.Client) {
					keys = append(keys, r.Client)
				}
			}
		}
		cs.mu.Unlock()
	}
	return keys
}

// routesOf lists the live routes, those of the asking owner marked Mine:
// on a relay's session the key it proved, else the routes registered under
// the owner tag tag.
func (s *Server) routesOf(cs *controlSession, tag string) []route.Route {
	owned, ok := s.Routes.(OwnedLister)
	if !ok {
		return s.Routes.List()
	}
	if cs.peerKey != nil {
		return owned.ListOwned(string(cs.peerKey))
	}
	keys := []string{""}
	if tag != "" {
		if k := s.keysTagged(tag); len(k) > 0 {
			keys = k
		}
	}
	out := owned.ListOwned(keys[0])
	for _, k := range keys[1:] {
		more := owned.ListOwned(k)
		if len(more) != len(out) {
			continue // the routes changed between the two lists
		}
		for i := range out {
			out[i].Mine = out[i].Mine || more[i].Mine
		}
	}
	return out
}

// MaxControlSessions bounds the tunnel sessions one control port holds at
// once (developers' tunnels, and the short ones of status, list, doctor and
// admit). Anyone with pods/portforward reaches the control port, so a
// session that holds nothing makes room (see sessionPool): a connection
// is closed at once only when every session holds a route.
const MaxControlSessions = 128

// MaxRoutelessSessions bounds the sessions of a control port that hold no
// route; the rest of MaxControlSessions is kept for developers' tunnels.
const MaxRoutelessSessions = MaxControlSessions / 2

// IdleControlSession is how long a session on the control port may hold
// nothing (no route, no admitted key, no doctor's watch) with no call in
// flight before it is closed: a query answers and is done, a tunnel
// registers its route at once.
const IdleControlSession = 5 * time.Second

// Serve accepts tunnel connections on ln until ctx ends, at most
// MaxControlSessions at once (see sessionPool).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	pool := &sessionPool{}
	go pool.reap(ctx)
	var pause time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if acceptBackoff(ctx, err, &pause) {
				continue
			}
			return fmt.Errorf("accepting tunnel connections: %w", err)
		}
		pause = 0
		cs := newControlSession(nil)
		if !pool.add(cs, conn) {
			conn.Close()
			continue
		}
		go func() {
			defer pool.drop(cs)
			s.serveSession(ctx, conn, cs)
		}()
	}
}

// sessionPool holds a control port's sessions, oldest first. A new one
// gets in when there is room: beyond MaxRoutelessSessions sessions without
// a route, or MaxControlSessions in all, the oldest session without a
// route is closed for it. One that holds nothing for IdleControlSession is
// closed. So idle connections cannot shut developers out: a tunnel that
// registers its route is never closed for another, and a new session is
// the last one closed for newcomers.
type sessionPool struct {
	mu       sync.Mutex
	sessions []pooled
}

type pooled struct {
	cs   *controlSession
	conn io.Closer
}

// add takes cs (over conn) in, closing the oldest session without a route
// when there is no room; false: every session holds a route.
func (p *sessionPool) add(cs *controlSession, conn io.Closer) bool {
	p.mu.Lock()
	// oldest is the oldest session without a route, the oldest without a
	// call in flight (a register) when there is one.
	routeless, oldest, waiting := 0, -1, false
	for i, e := range p.sessions {
		live, calling := e.cs.state()
		if live {
			continue
		}
		routeless++
		if oldest < 0 || (!waiting && !calling) {
			oldest, waiting = i, !calling
		}
	}
	var evicted io.Closer
	if len(p.sessions) >= MaxControlSessions || routeless >= MaxRoutelessSessions {
		if oldest < 0 {
			p.mu.Unlock()
			return false
		}
		evicted = p.sessions[oldest].conn
		p.sessions = slices.Delete(p.sessions, oldest, oldest+1)
	}
	p.sessions = append(p.sessions, pooled{cs, conn})
	p.mu.Unlock()
	if evicted != nil {
		evicted.Close()
	}
	return true
}

// drop forgets cs, whose session ended.
func (p *sessionPool) drop(cs *controlSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions = slices.DeleteFunc(p.sessions, func(e pooled) bool { return e.cs == cs })
}

// reap closes, every second until ctx ends, the sessions idle for
// IdleControlSession.
func (p *sessionPool) reap(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var idle []io.Closer
			p.mu.Lock()
			p.sessions = slices.DeleteFunc(p.sessions, func(e pooled) bool {
				if e.cs.idle(now) {
					idle = append(idle, e.conn)
					return true
				}
				return false
			})
			p.mu.Unlock()
			for _, c := range idle {
				c.Close()
			}
		}
	}
}

// ServeConn runs one tunnel session over an established byte stream.
func (s *Server) ServeConn(ctx context.Context, conn io.ReadWriteCloser) {
	s.serveSession(ctx, conn, newControlSession(nil))
}

// serveSession runs one tunnel session: a developer's over the
// port-forward (cs.peerKey nil), or a relay's for the developer whose
// owner key is cs.peerKey.
func (s *Server) serveSession(ctx context.Context, conn io.ReadWriteCloser, cs *controlSession) {
	sess, err := yamux.Server(coalesce(conn), Config())
	if err != nil {
		conn.Close()
		return
	}
	defer sess.Close()
	go func() {
		select {
		case <-ctx.Done():
			sess.Close()
		case <-sess.CloseChan():
		}
	}()
	ctrl, err := sess.AcceptStream()
	if err != nil {
		return
	}
	defer ctrl.Close()
	cs.dial = func(ctx context.Context) (net.Conn, error) {
		st, err := sess.OpenStream()
		if err != nil {
			return nil, fmt.Errorf("tunnel to the developer's machine is gone: %w", err)
		}
		return st, nil
	}
	s.track(cs, true)
	defer s.track(cs, false)
	defer cs.end()
	go s.serveDials(ctx, sess, cs)
	c := newCodec(ctrl)
	for {
		var req Request
		if err := c.read(&req); err != nil {
			// The developer left (or their heartbeat stopped): every route
			// of this session is removed by the deferred end.
			return
		}
		cs.busy(true)
		err := c.write(s.handle(ctx, cs, req))
		cs.busy(false)
		if err != nil {
			return
		}
	}
}

// acceptBackoff waits after an Accept error that is not the listener's end
// (out of file descriptors, say) and says to go on: a pause that doubles
// from 5 ms to 1 s, as net/http's server does. A closed listener ends.
func acceptBackoff(ctx context.Context, err error, pause *time.Duration) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	if *pause == 0 {
		*pause = 5 * time.Millisecond
	} else if *pause *= 2; *pause > time.Second {
		*pause = time.Second
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*pause):
		return true
	}
}

// handle answers one call on the control stream.
func (s *Server) handle(ctx context.Context, cs *controlSession, req Request) Response {
	resp := Response{Pod: s.Pod}
	if req.Op == OpRegisterNarrowed || req.Op == OpRegisterWiretap {
		req.Op = "register" // the route says how it is narrowed, or that it is a wiretap; Add checks it
	}
	if cs.peerKey != nil && !peerOps[req.Op] {
		resp.fail(coded(CodeUnsupported, "%s is not for a relay", req.Op))
		return resp
	}
	switch req.Op {
	case "register":
		if req.Route == nil {
			resp.fail(coded(CodeBadRequest, "register without a route"))
			break
		}
		if len(req.Tag) > maxTag {
			resp.fail(coded(CodeBadRequest, "register: an owner tag has at most %d characters", maxTag))
			break
		}
		if cs.peerKey != nil {
			// A relay's routes are the developer's it proved, under the
			// key it proved: it carries no key of its own.
			if req.Route.Client != "" && subtle.ConstantTimeCompare([]byte(req.Route.Client), cs.peerKey) != 1 {
				resp.fail(coded(CodeBadRequest, "a relay registers only the routes of the developer it proved"))
				break
			}
			req.Route.Client = string(cs.peerKey)
		}
		if !cs.room(*req.Route) {
			resp.fail(coded(CodeBadRequest, "register: a session holds at most %d routes", maxSessionRoutes))
			break
		}
		rm, err := s.Routes.Add(*req.Route, cs.dial)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				refused := *req.Route
				cs.mu.Lock()
				cs.refused = &refused
				cs.mu.Unlock()
			}
			resp.fail(err)
			break
		}
		cs.added(*req.Route, rm)
		cs.pin(s.Admitted)
		if req.Tag != "" {
			cs.mu.Lock()
			cs.tag = req.Tag
			cs.mu.Unlock()
		}
	case "admit":
		if s.Admitted == nil {
			resp.fail(coded(CodeUnsupported, "this sidecar has no peer port"))
			break
		}
		if err := s.Admitted.admit(req.Key); err != nil {
			resp.fail(err)
			break
		}
		cs.mu.Lock()
		cs.admitted = true
		cs.mu.Unlock()
	case "contest":
		if err := s.contest(cs, req); err != nil {
			resp.fail(err)
		}
	case "unregister":
		// A developer leaving on purpose: no new request is routed to them.
		cs.leave()
	case "routes":
		resp.Routes = s.routesOf(cs, req.Key)
	case "probe":
		if s.Probe == nil {
			resp.fail(coded(CodeUnsupported, "this sidecar cannot probe"))
			break
		}
		pod, err := s.Probe(ctx, req.URL)
		if err != nil {
			resp.fail(err)
		}
		resp.ProbedPod = pod
	case "watch":
		stop, err := s.watch(req.Marker)
		if err != nil {
			resp.fail(err)
			break
		}
		cs.mu.Lock()
		cs.unwatches = append(cs.unwatches, stop)
		cs.mu.Unlock()
	case "seen":
		if s.Watches == nil {
			resp.fail(coded(CodeUnsupported, "this sidecar cannot watch"))
			break
		}
		hits, ok := s.Watches.Seen(req.Nonce)
		if !ok {
			resp.fail(coded(CodeNotFound, "no watch for marker %s%s on this sidecar (a watch ends after %s)", MarkerPrefix, req.Nonce, WatchTTL))
		}
		resp.Hits = hits
	case OpResolvConf:
		s.resolvConf(&resp)
	case "send":
		status, err := s.send(ctx, req)
		if err != nil {
			resp.fail(err)
		}
		resp.Status = status
	default:
		resp.fail(coded(CodeUnsupported, "unknown operation %q", req.Op))
	}
	return resp
}

func (s *Server) watch(m *Marker) (func(), error) {
	if s.Watches == nil {
		return nil, coded(CodeUnsupported, "this sidecar cannot watch")
	}
	if m == nil {
		return nil, coded(CodeBadRequest, "watch without a marker")
	}
	return s.Watches.Watch(*m)
}

// send requests a Service for the doctor. It carries only the marker (no
// other header a caller could choose) and only GETs over plain HTTP: what
// a probe may already request, with the marker instead of the probe header.
func (s *Server) send(ctx context.Context, req Request) (int, error) {
	if req.Marker == nil {
		return 0, coded(CodeBadRequest, "send without a marker")
	}
	if err := req.Marker.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := sendable(req.URL); err != nil {
		return 0, err
	}
	if s.Send == nil {
		return 0, coded(CodeUnsupported, "this sidecar cannot send")
	}
	method, err := sendMethod(req.Method, s.Routes)
	if err != nil {
		return 0, err
	}
	return s.Send(ctx, method, req.URL, req.Host, *req.Marker)
}

// sendable says whether the doctor's send may request raw from inside the
// pod: plain HTTP to a Service, by its ClusterIP (an address Dialable: not
// the pod's own, not a cloud's metadata endpoint, not unspecified) or by
// its cluster DNS name (NAME.NAMESPACE.svc...).
func sendable(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Host == "" {
		return coded(CodeBadRequest, "send to %q: only http:// URLs of a Service", raw)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !Dialable(ip) {
			return coded(CodeBadRequest, "send to %q: not a Service's address", raw)
		}
		return nil
	}
	if strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".svc.cluster.local") {
		return nil
	}
	return coded(CodeBadRequest, "send to %q: only a Service's ClusterIP or its cluster DNS name (NAME.NAMESPACE.svc)", raw)
}
