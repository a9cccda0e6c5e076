package tunnel

import (
	"crypto/subtle"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// controlSession is what one developer's session holds on a sidecar: the
// way to reach them, their routes and their doctor's watches.
type controlSession struct {
	dial DialFunc
	// peerKey is the developer's owner key on a relay's session (which may
	// register only that developer's routes), nil on the developer's own.
	peerKey []byte
	// mu guards what follows: the dial streams and the pool read them.
	mu                 sync.Mutex
	removes, unwatches []func()
	routes             []route.Route // as registered, owner key included
	// tag is the owner tag the developer registered with (see keys.go).
	tag string
	// admitted says the session admitted a pod key.
	admitted bool
	// contests resume what the session's contests suspended; refused is
	// the route the session's last register was refused, as taken: the
	// one route it may contest.
	contests []func()
	refused  *route.Route
	// unpin lets go of the admission a relay's session keeps in use while
	// it holds a route (see Admissions.use); nil when none is.
	unpin func()
	// calls is how many calls are in flight; last is when the last ended
	// (or the session began).
	calls int
	last  time.Time
}

func newControlSession(peerKey []byte) *controlSession {
	return &controlSession{peerKey: peerKey, last: time.Now()}
}

// busy marks a call on the session begun (true) or ended.
func (cs *controlSession) busy(on bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if on {
		cs.calls++
	} else {
		cs.calls--
		cs.last = time.Now()
	}
}

// state says whether the session holds a route, and whether a call is in
// flight.
func (cs *controlSession) state() (live, calling bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.removes) > 0 || len(cs.contests) > 0, cs.calls > 0
}

// idle says whether the session has held nothing (no route, no admitted
// key, no watch) and asked nothing for IdleControlSession at now.
func (cs *controlSession) idle(now time.Time) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.removes) == 0 && !cs.admitted && len(cs.unwatches) == 0 && len(cs.contests) == 0 && cs.calls == 0 &&
		now.Sub(cs.last) >= IdleControlSession
}

// leave removes the session's routes; the tunnel stays up for the requests
// in flight.
func (cs *controlSession) leave() {
	cs.mu.Lock()
	removes, unpin := cs.removes, cs.unpin
	cs.removes, cs.routes, cs.unpin = nil, nil, nil
	cs.mu.Unlock()
	for _, rm := range removes {
		rm()
	}
	if unpin != nil {
		unpin()
	}
}

// maxSessionRoutes bounds the routes one session holds: a CLI holds one
// per pod and port, and registering again under the same key replaces it.
const maxSessionRoutes = 16

// room says whether the session may hold r: it replaces one of the
// session's under the same key, or there is room for one more.
func (cs *controlSession) room(r route.Route) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.indexOf(r.Client) >= 0 || len(cs.routes) < maxSessionRoutes
}

// indexOf is the session's route under key, -1 if none; cs.mu is held.
func (cs *controlSession) indexOf(key string) int {
	if key == "" {
		return -1
	}
	for i, r := range cs.routes {
		if subtle.ConstantTimeCompare([]byte(r.Client), []byte(key)) == 1 {
			return i
		}
	}
	return -1
}

// added records a route the session installed: in place of the one under
// the same key, which the table replaced, so registering again never
// grows the session.
func (cs *controlSession) added(r route.Route, rm func()) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.refused = nil
	if i := cs.indexOf(r.Client); i >= 0 {
		cs.routes[i], cs.removes[i] = r, rm
		return
	}
	cs.removes = append(cs.removes, rm)
	cs.routes = append(cs.routes, r)
}

// pin keeps the relay's admission in use while the session holds a route.
func (cs *controlSession) pin(a *Admissions) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.unpin == nil && a != nil && cs.peerKey != nil {
		cs.unpin = a.use(cs.peerKey)
	}
}

// registered returns the routes a relay may carry for this session (those
// with an owner key), as a peer gets them: without this pod's key (the
// peer fills in the key the relay proved there) and without a remote
// endpoint's secret (the peer sends their requests through the relay);
// and the session's owner tag.
func (cs *controlSession) registered() ([]route.Route, string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []route.Route
	var key string
	for _, r := range cs.routes {
		if r.Client != "" && (key == "" || r.Client == key) {
			key = r.Client
			r.Client, r.Remote, r.Secret = "", "", ""
			out = append(out, r)
		}
	}
	return out, cs.tag
}

// peerOps are the calls a relay may make on a peer's session.
var peerOps = map[string]bool{"register": true, "unregister": true, "routes": true}

// live tells whether the session holds a route.
func (cs *controlSession) live() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.removes) > 0
}

// end removes everything the session holds: a doctor's watches end with it.
func (cs *controlSession) end() {
	cs.leave()
	cs.endContests()
	cs.mu.Lock()
	unwatches := cs.unwatches
	cs.unwatches = nil
	cs.mu.Unlock()
	for _, stop := range unwatches {
		stop()
	}
}
