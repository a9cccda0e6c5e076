package portforward

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

// gateOpen reports whether the pod's routes gate is set.
func gateOpen(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == session.RoutesGate {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// shutGate shuts the readiness gate of a pod where another key holds the
// route.
func (f *Follower) shutGate(ctx context.Context, pod string) {
	defer func() {
		f.mu.Lock()
		delete(f.closing, pod)
		f.mu.Unlock()
	}()
	msg := fmt.Sprintf("held on pod %s by another key: route %s", pod, f.Route)
	var err error
	if f.CloseGate != nil {
		err = f.CloseGate(ctx, pod, msg)
	} else {
		err = session.ShutGate(ctx, f.Client, f.Namespace, pod, msg)
	}
	if err != nil && ctx.Err() == nil {
		f.logf("shutting the readiness gate of pod %s: %v", pod, err)
	} else if err == nil {
		f.mu.Lock()
		f.shutHere[pod] = true
		f.mu.Unlock()
		f.logf("pod %s: readiness gate shut again (held on pod %s by another key)", pod, pod)
	}
}

// Readiness gate timing: a new pod is checked every gatePause until it
// holds the routes a ready sibling holds; after DefaultGateWait (longer
// than a dead developer's route takes to drop) it is let in with what it
// has.
const (
	gatePause       = 250 * time.Millisecond
	DefaultGateWait = 10 * time.Second
)

// startGate starts one gate check for pod unless one runs; f.mu is held.
func (f *Follower) startGate(ctx context.Context, pod string, mine holder) {
	if f.NoGate || f.gating[pod] {
		return
	}
	f.gating[pod] = true
	go func() {
		defer func() {
			f.mu.Lock()
			delete(f.gating, pod)
			f.mu.Unlock()
		}()
		f.gate(ctx, pod, mine)
	}()
}

// gate opens a new pod's readiness gate once its sidecar holds every route
// a ready sibling holds: each developer's CLI checks after registering, and
// the last one to register finds the set complete. A pod with no ready
// sibling (a copy that scaled from nothing) holds all there is.
func (f *Follower) gate(ctx context.Context, pod string, mine holder) {
	wait := f.GateWait
	if wait == 0 {
		wait = DefaultGateWait
	}
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		p := f.pods[pod]
		var sibling holder
		readySiblings := 0
		for name, q := range f.pods {
			if name != pod && session.PodReady(q) && q.DeletionTimestamp == nil {
				readySiblings++
				if c, ok := f.holders[name]; ok && sibling == nil {
					sibling = c
				}
			}
		}
		f.mu.Unlock()
		if p == nil || !session.Gated(p) {
			return
		}
		var missing []route.Route
		switch {
		case readySiblings > 0 && sibling == nil:
			missing = []route.Route{{}} // no tunnel to a ready sibling yet: ask again
		case sibling != nil:
			want, err := sibling.Routes()
			have, err2 := mine.Routes()
			if err != nil || err2 != nil {
				missing = []route.Route{{}} // ask again
			} else {
				missing = session.MissingRoutes(have, want)
			}
		}
		late := time.Now().After(deadline)
		if len(missing) == 0 || late {
			msg := "holds every live route"
			if late {
				msg = fmt.Sprintf("let in after %s without %d route(s) a sibling holds", wait, len(missing))
				f.logf("pod %s of the copy becomes ready without %d route(s) its siblings hold (their developers did not reach it within %s)", pod, len(missing), wait)
			}
			if err := f.openGate(ctx, pod, msg); err != nil {
				if ctx.Err() == nil {
					f.logf("pod %s: %v", pod, err)
				}
			} else {
				f.mu.Lock()
				delete(f.shutHere, pod)
				f.mu.Unlock()
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gatePause):
		}
	}
}

func (f *Follower) openGate(ctx context.Context, pod, msg string) error {
	if f.OpenGate != nil {
		return f.OpenGate(ctx, pod, msg)
	}
	return session.OpenGate(ctx, f.Client, f.Namespace, pod, msg)
}

// shutForAConflict says whether a CLI shut the pod's gate because another
// key holds a route there (session.ShutGate).
func shutForAConflict(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == session.RoutesGate {
			return c.Status == corev1.ConditionFalse && c.Reason == session.ReasonHeldByAnotherKey
		}
	}
	return false
}
