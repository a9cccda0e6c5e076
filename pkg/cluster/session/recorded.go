package session

import (
	"context"
	"errors"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// StateEnded: an intercept this machine recorded whose Service is not
// intercepted any more.
const StateEnded State = "ended"

// Recorded is the state of an intercept a machine recorded as its own:
// as Get says, StateEnded when the Service is not intercepted any more,
// StateUnknown (and why) when it cannot be read.
func (c Cluster) Recorded(ctx context.Context, ns, name string) Intercept {
	d, err := c.Get(ctx, ns, name)
	var in Intercept
	switch {
	case errors.Is(err, ErrNotIntercepted):
		in = Intercept{Namespace: ns, Service: name, Status: StateEnded,
			Problem: "the Service is not intercepted any more; `kubectl intercept close` forgets it"}
	case err != nil:
		in = Intercept{Namespace: ns, Service: name, Status: StateUnknown, Problem: firstLine(err.Error())}
	default:
		in = d.Intercept
	}
	if in.Routes == nil {
		in.Routes = []route.Route{}
	}
	return in
}
