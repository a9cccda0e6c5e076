package session

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// GateIsOpen reports whether the pod's routes gate is set.
func GateIsOpen(p *corev1.Pod) bool {
	c := gateCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// ShutForAConflict reports whether a CLI shut the pod's gate because
// another key holds a route there (ShutGate).
func ShutForAConflict(p *corev1.Pod) bool {
	c := gateCondition(p)
	return c != nil && c.Status == corev1.ConditionFalse && c.Reason == ReasonHeldByAnotherKey
}

func gateCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == RoutesGate {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// GateCheck is what a developer's CLI knows, at one moment, about a new
// copy pod that waits on its routes gate.
type GateCheck struct {
	// ReadySiblings counts the copy's other pods that are Ready and not
	// terminating.
	ReadySiblings int
	// Want holds the routes of one ready sibling, nil when the CLI has no
	// answer from one (no tunnel to it yet, or the question failed).
	Want []route.Route
	// Have holds the routes the new pod's sidecar holds, nil when it did
	// not answer.
	Have []route.Route
	// Waited is how long the pod has been checked; Wait how long it may
	// be kept out for routes it lacks.
	Waited, Wait time.Duration
}

// Verdict says whether the pod's gate opens now and the message its
// condition carries. A pod opens once it holds every route a ready
// sibling holds: each developer's CLI checks after registering, and the
// last one to register finds the set complete. A pod with no ready
// sibling (a copy that scaled from nothing) holds all there is. After
// Wait, longer than a dead developer's route takes to drop, it is let in
// with what it has, and the message says what it lacks.
func (c GateCheck) Verdict() (open bool, message string) {
	missing := 0
	switch {
	case c.ReadySiblings == 0:
	case c.Want == nil || c.Have == nil:
		missing = -1 // not known yet: ask again
	default:
		missing = len(MissingRoutes(c.Have, c.Want))
	}
	switch {
	case missing == 0:
		return true, "holds every live route"
	case c.Waited < c.Wait:
		return false, ""
	case missing < 0:
		return true, fmt.Sprintf("let in after %s without knowing the routes its siblings hold", c.Wait)
	default:
		return true, fmt.Sprintf("let in after %s without %d route(s) a sibling holds", c.Wait, missing)
	}
}
