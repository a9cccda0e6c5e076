package portforward

import (
	"context"
	"errors"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// refused ends Run when the sidecar refused the route for good (a kind it
// cannot match); a route another key holds is an alarm on that pod (see
// conflicted); other failures are logged, and retried.
func (f *Follower) refused(err error, format, pod string) {
	if errors.Is(err, tunnel.ErrConflict) {
		if !f.conflicted(pod, err) && f.holdsElsewhere(pod) {
			f.mu.Lock()
			f.direct[pod] = true // its own tunnel contests (see contest)
			f.mu.Unlock()
		}
		return
	}
	if errors.Is(err, tunnel.ErrUnsupported) || errors.Is(err, tunnel.ErrBadRequest) {
		select {
		case f.fatal <- err:
		default:
		}
		return
	}
	f.logf(format, pod, err)
}

// conflicted records that another key holds the route on pod. While some
// pod holds it for this CLI, that is an alarm, not the end: the other pods
// keep the route, this one is retried (it gets the route once the other
// key's drops), is not the relay, and its readiness gate stays shut (sync
// shuts it again if someone opens it), so the Service sends it nothing.
// Only when every serving pod of the copy refuses the route is it taken,
// and Run ends with the sidecar's answer, as when a teammate holds it.
// It reports whether the route is taken.
func (f *Follower) conflicted(pod string, err error) (taken bool) {
	f.mu.Lock()
	first := f.conflicts[pod] == nil
	f.conflicts[pod] = err
	taken = len(f.holders) == 0
	for name, p := range f.pods {
		if session.Reachable(p) && f.conflicts[name] == nil {
			taken = false
		}
	}
	f.mu.Unlock()
	if taken {
		select {
		case f.fatal <- err:
		default:
		}
		return true
	}
	if first {
		f.logf("alarm: route %s held on pod %s by another key (%v). Another kubectl-intercept registered the same route there first; "+
			"the other pods keep your route, pod %s stays out of the Service while it is held, "+
			"and gets your route once it is free", f.Route, pod, err, pod)
	}
	select {
	case f.retry <- struct{}{}: // a relay that was refused moves
	default:
	}
	return false
}

// holdsElsewhere says whether this CLI holds its route on a pod other than
// pod: only then is another key's route on pod a squat to contest. A
// teammate who asked for a header someone holds meets the conflict on
// every pod, holds none, and contests nothing on the way to being told.
func (f *Follower) holdsElsewhere(pod string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.holders {
		if p != pod {
			return true
		}
	}
	return false
}

// contestPause is how often a contested pod is asked for the route again.
const contestPause = time.Second

// contest answers a route another key holds on pod while this CLI holds
// it elsewhere: the sidecar suspends the other key's route (its requests
// go to the app, to nobody's laptop) while this tunnel lives, and the
// route is asked for again until the other key lets go. It returns nil
// once the route is registered here, or why not.
func (f *Follower) contest(ctx context.Context, c *tunnel.Client, pod string, r route.Route) error {
	tag := tunnel.OwnerTag(f.Route.Client)
	if err := c.Contest(r); err != nil {
		if !errors.Is(err, tunnel.ErrNotFound) { // not found: the other key just left
			f.logf("pod %s: the sidecar did not suspend the other key's route: %v", pod, err)
		}
	} else {
		f.logf("pod %s: the other key's route is suspended there (its requests go to the app) while this intercept lasts", pod)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(contestPause):
		}
		_, err := c.RegisterTagged(r, tag)
		if !errors.Is(err, tunnel.ErrConflict) {
			return err
		}
	}
}

// freed notes that pod holds the route after all.
func (f *Follower) freed(pod string) {
	f.mu.Lock()
	was := f.conflicts[pod] != nil
	delete(f.conflicts, pod)
	f.mu.Unlock()
	if was {
		f.logf("pod %s is no longer held by another key", pod)
	}
}

// Conflicts returns the pods where another key holds the route.
func (f *Follower) Conflicts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.conflicts))
	for p := range f.conflicts {
		out = append(out, p)
	}
	return out
}
