package tunnel

import (
	"crypto/subtle"
	"fmt"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// A contest answers a route that another key registered first on a pod
// where the contesting developer's own key holds the route everywhere else
// (a teammate who forced new pods and raced the owner to them). A sidecar
// has no way to tell which of two keys is the route's opener: it knows no
// other pod and has no credentials. So a contest decides nothing about
// ownership. It suspends: while the contesting session lives, every route
// that would take the contested route's requests (route.Takes: the same
// match, or an All route) under another key matches none of the requests
// the contested route matches on this pod, whether it is there now or
// registered again, or under another key, later; those requests go to the
// app, as if no one intercepted them, the route keeps the others (a
// contest over one path takes no other path from it), and an All route's
// connections are closed. The sidecar lists such routes as suspended. A suspended route still conflicts with new registrations, so
// a contest never hands a route to anyone; when its holder lets go, the
// contester registers it as usual. A session may contest only the route
// its last register was refused, and a contest over an All route suspends
// only All routes.
//
// Anyone who may port-forward to the control port may contest, and so
// take from a teammate's route on one pod the requests of a route they
// were refused, for as long as they keep the session open: no more than the Role already lets them do (scale the copy
// down, delete it, repoint the Service); the sidecar's list shows it.

// Suspender is a RouteTable that can take routes out of matching while
// they are contested.
type Suspender interface {
	// Suspend holds the routes that take r's requests under a key other
	// than r.Client out of matching until resume; n is how many it holds
	// now. It refuses (err) a contest past what it can hold.
	Suspend(r route.Route) (resume func(), n int, err error)
}

// maxContests bounds the contests one session holds.
const maxContests = 8

// contest suspends, for as long as cs lives, the routes under other keys
// that take the requests of the route cs was just refused.
func (s *Server) contest(cs *controlSession, req Request) error {
	sus, ok := s.Routes.(Suspender)
	if !ok {
		return coded(CodeUnsupported, "this sidecar cannot suspend a route")
	}
	if req.Route == nil {
		return coded(CodeBadRequest, "contest without a route")
	}
	if err := req.Route.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if req.Route.Client == "" {
		return coded(CodeBadRequest, "contest: the route's key is required")
	}
	cs.mu.Lock()
	full := len(cs.contests) >= maxContests
	refused := cs.refused
	cs.mu.Unlock()
	if full {
		return coded(CodeBadRequest, "contest: a session holds at most %d contests", maxContests)
	}
	if refused == nil || !sameRoute(*refused, *req.Route) {
		return coded(CodeBadRequest, "contest: only the route this session's last register was refused, as it was refused, may be contested")
	}
	resume, n, err := sus.Suspend(*req.Route)
	if err != nil {
		return err
	}
	if n == 0 {
		resume()
		return coded(CodeNotFound, "no route of another key takes the requests of %s on this pod", req.Route)
	}
	cs.mu.Lock()
	cs.contests = append(cs.contests, resume)
	cs.mu.Unlock()
	return nil
}

// sameRoute says whether a and b are one registration: the same match,
// narrowed alike, under the same key.
func sameRoute(a, b route.Route) bool {
	return a.All == b.All && a.Conflicts(b) && b.Conflicts(a) &&
		a.PathPrefix == b.PathPrefix && a.PathRegex == b.PathRegex && a.Methods == b.Methods &&
		subtle.ConstantTimeCompare([]byte(a.Client), []byte(b.Client)) == 1
}

// endContests resumes what the session's contests suspended.
func (cs *controlSession) endContests() {
	cs.mu.Lock()
	resumes := cs.contests
	cs.contests = nil
	cs.mu.Unlock()
	for _, r := range resumes {
		r()
	}
}

// Contest suspends on this pod, while the session lives, the routes that
// conflict with r and that were registered under another route key (see
// contest.go); r.Client is the contesting CLI's key for this pod.
func (c *Client) Contest(r route.Route) error {
	_, err := c.call(Request{Op: "contest", Route: &r})
	return err
}
