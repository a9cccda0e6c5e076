package intercept

import (
	"context"
	"errors"
	"fmt"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
)

// clean is -c: end this machine's background intercept of the Service and
// clean up what is left of earlier intercepts, as close does (never a
// teammate's live route without --force); under --dry-run it only says
// what it would do.
func (r *runner) clean(ctx context.Context) error {
	p := cmdutil.NewProgress(r.Out, r.ErrOut, r.Quiet)
	if r.DryRun {
		d, err := cmdutil.ClusterOf(r.f).Get(ctx, r.Namespace, r.Service)
		switch {
		case errors.Is(err, session.ErrNotIntercepted):
			p.Infof("-c: service %s/%s has no intercept to clean up.", r.Namespace, r.Service)
		case err != nil:
			return err
		case d.Live() && !r.Force:
			p.Infof("-c would leave the intercept of service %s/%s alone: routes of others are live (%s); --force would end them.", r.Namespace, r.Service, cmdutil.DescribeRoutes(d.Routes))
		default:
			p.Infof("-c would close the intercept of service %s/%s (%s) and restore the Service.", r.Namespace, r.Service, d.Status)
		}
		return nil
	}
	if stopped, err := local.StopBackground(r.stateKey, r.Timeout); err != nil {
		p.Warn(err.Error())
	} else if stopped {
		p.Infof("Ended this machine's background intercept of %s.", r.Service)
	}
	left, err := cmdutil.ClusterOf(r.f).Leave(ctx, session.LeaveOptions{Namespace: r.Namespace, Service: r.Service,
		Force: r.Force, Timeout: r.Timeout, Progress: p})
	if err != nil {
		return fmt.Errorf("cleaning up service %s/%s (-c): %w", r.Namespace, r.Service, err)
	}
	local.Forget(r.stateKey)
	if left.Stayed() {
		p.Infof("-c left the intercept of service %s alone: %s; this intercept joins it. --force ends theirs.",
			r.Service, cmdutil.WhyStayed(left))
	}
	return nil
}
