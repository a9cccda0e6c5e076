package tunnel

import (
	"crypto/subtle"
	"fmt"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
)

// A contest answers a route that another key registered first on a pod
// where the contesting developer's own key holds the route everywhere else
// (a teammate who forced new pods and raced the owner to them). A sidecar
// has no way to tell which of two keys is the route's opener: it knows no
// other pod and has no credentials. So a contest decides nothing about
// ownership. It suspends: while the contesting session lives, the routes
// that conflict with its route and were registered under another owner
// tag match nothing on this pod, and their requests go to the app, as if
// no one intercepted them. Only the contester's own route key is spared
// (the same CLI's route, registered through another tunnel or a relay):
// an owner tag proves nothing and travels between pods, so it spares
// nobody. The suspended route still conflicts with new
// registrations, so a contest never hands a route to anyone; when its
// holder lets go, the contester registers it as usual.
//
// Anyone who may port-forward to the control port may contest, and so
// suspend a teammate's route on one pod for as long as they keep the
// session open: no more than the Role already lets them do (scale the copy
// down, delete it, repoint the Service), and the suspended developer's CLI
// names the pod.

// Suspender is a RouteTable that can take routes out of matching while
// they are contested.
type Suspender interface {
	// Suspend takes the live routes registered under key that conflict
	// with r out of matching until resume; n is how many it took.
	Suspend(r route.Route, key string) (resume func(), n int)
}

// maxContests bounds the contests one session holds.
const maxContests = 8

// contest suspends, for as long as cs lives, the routes conflicting with
// req.Route that other sessions registered under another route key.
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
	cs.mu.Unlock()
	if full {
		return coded(CodeBadRequest, "contest: a session holds at most %d contests", maxContests)
	}
	var resumes []func()
	taken := 0
	for _, key := range s.keysConflicting(cs, *req.Route) {
		resume, n := sus.Suspend(*req.Route, key)
		resumes = append(resumes, resume)
		taken += n
	}
	if taken == 0 {
		for _, r := range resumes {
			r()
		}
		return coded(CodeNotFound, "no route of another owner conflicts with %s on this pod", req.Route)
	}
	cs.mu.Lock()
	cs.contests = append(cs.contests, resumes...)
	cs.mu.Unlock()
	return nil
}

// keysConflicting returns the route keys other than r's that live
// sessions other than cs registered for routes that conflict with r.
func (s *Server) keysConflicting(cs *controlSession, r route.Route) []string {
	s.mu.Lock()
	sessions := make([]*controlSession, 0, len(s.sessions))
	for o := range s.sessions {
		if o != cs {
			sessions = append(sessions, o)
		}
	}
	s.mu.Unlock()
	var keys []string
	for _, o := range sessions {
		o.mu.Lock()
		for _, held := range o.routes {
			own := subtle.ConstantTimeCompare([]byte(held.Client), []byte(r.Client)) == 1
			if !own && held.Client != "" && held.Conflicts(r) {
				keys = append(keys, held.Client)
			}
		}
		o.mu.Unlock()
	}
	return keys
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
