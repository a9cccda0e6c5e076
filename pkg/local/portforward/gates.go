package portforward

import (
	"context"
	"fmt"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

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

// gate opens a new pod's readiness gate when session.GateCheck's verdict
// says so, asking the pod's sidecar and a ready sibling's for their routes
// every gatePause.
func (f *Follower) gate(ctx context.Context, pod string, mine holder) {
	wait := f.GateWait
	if wait == 0 {
		wait = DefaultGateWait
	}
	start := time.Now()
	for {
		f.mu.Lock()
		p := f.pods[pod]
		var sibling holder
		check := session.GateCheck{Wait: wait, Waited: time.Since(start)}
		for name, q := range f.pods {
			if name != pod && session.PodReady(q) && q.DeletionTimestamp == nil {
				check.ReadySiblings++
				if c, ok := f.holders[name]; ok && sibling == nil {
					sibling = c
				}
			}
		}
		f.mu.Unlock()
		if p == nil || !session.Gated(p) {
			return
		}
		if sibling != nil {
			check.Want, _ = nonNil(sibling.Routes())
			check.Have, _ = nonNil(mine.Routes())
		}
		if open, msg := check.Verdict(); open {
			if check.Waited >= wait {
				f.logf("pod %s of the copy becomes ready: %s (their developers did not reach it within %s)", pod, msg, wait)
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

// nonNil keeps an answer's routes apart from no answer: an empty list is
// an answer, an error is not.
func nonNil(rs []route.Route, err error) ([]route.Route, error) {
	if err != nil {
		return nil, err
	}
	if rs == nil {
		rs = []route.Route{}
	}
	return rs, nil
}

func (f *Follower) openGate(ctx context.Context, pod, msg string) error {
	if f.OpenGate != nil {
		return f.OpenGate(ctx, pod, msg)
	}
	return session.OpenGate(ctx, f.Client, f.Namespace, pod, msg)
}
