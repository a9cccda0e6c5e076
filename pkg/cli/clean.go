package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

// clean is -c: end this machine's background intercept of the Service and
// clean up what is left of earlier intercepts, as close does (never a
// teammate's live route without --force); under --dry-run it only says
// what it would do.
func (o *InterceptOptions) clean(ctx context.Context) error {
	p := newProgress(o.Out, o.ErrOut, o.Quiet)
	if o.DryRun {
		d, err := clusterOf(o.f).Get(ctx, o.Namespace, o.Service)
		switch {
		case errors.Is(err, session.ErrNotIntercepted):
			p.Infof("-c: service %s/%s has no intercept to clean up.", o.Namespace, o.Service)
		case err != nil:
			return err
		case d.Live() && !o.Force:
			p.Infof("-c would leave the intercept of service %s/%s alone: routes of others are live (%s); --force would end them.", o.Namespace, o.Service, describeRoutes(d.Routes))
		default:
			p.Infof("-c would close the intercept of service %s/%s (%s) and restore the Service.", o.Namespace, o.Service, d.Status)
		}
		return nil
	}
	if stopped, err := stopBackground(o.stateKey, o.Timeout); err != nil {
		p.Warn(err.Error())
	} else if stopped {
		p.Infof("Ended this machine's background intercept of %s.", o.Service)
	}
	left, err := clusterOf(o.f).Leave(ctx, session.LeaveOptions{Namespace: o.Namespace, Service: o.Service,
		Force: o.Force, Timeout: o.Timeout, Progress: p})
	if err != nil {
		return fmt.Errorf("cleaning up service %s/%s (-c): %w", o.Namespace, o.Service, err)
	}
	forgetLocal(o.stateKey)
	if left.Stayed() {
		p.Infof("-c left the intercept of service %s alone: %s; this intercept joins it. --force ends theirs.",
			o.Service, whyStayed(left))
	}
	return nil
}

// whyStayed says why the last-one-out rule kept a Service switched.
func whyStayed(left *session.Left) string {
	why := printable(left.Why())
	if len(left.Others) > 0 {
		why = strings.Replace(why, "are live", "are live ("+describeRoutes(left.Others)+")", 1)
	}
	return why
}
