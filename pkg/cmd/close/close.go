// Package close is `kubectl intercept close`: it ends intercepts; the last
// one out restores the Service.
package close

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/completion"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

// CloseOptions are the inputs of `kubectl intercept close`.
type CloseOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	All     bool
	Force   bool
	Quiet   bool
	Timeout time.Duration

	Namespace string
	Service   string
	stateKey  string
}

// NewCmdClose builds `kubectl intercept close`.
func NewCmdClose(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CloseOptions{f: f, IOStreams: streams, Timeout: 90 * time.Second}
	cmd := &cobra.Command{
		Use:   "close [[svc/]NAME | --all]",
		Short: "End your intercepts; the last one out restores the Service",
		Long: `End intercepts. With no argument: every intercept you started from this
machine in the current context, in any namespace, running (in the
foreground elsewhere or in the background) or left by a crash. With
svc/NAME: your intercept of that Service. With --all: every intercept in the
namespace, other developers' and crashed ones included.

The last developer out restores the Service: the selector and targetPort the
intercept changed go back, and a change someone else made meanwhile (a
deploy) is kept. While other developers' routes are live the Service stays
switched for them, unless --force.`,
		Example: `  # End every intercept I started from this machine
  kubectl intercept close

  # End my intercept of my-service
  kubectl intercept close svc/my-service

  # Remove every intercept's residue in the namespace, live or not
  kubectl intercept close --all`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completion.ServiceArg(f, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.RunSteps(cmd.Context(), func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "close every intercept in the namespace, including other developers' and crashed ones")
	cmd.Flags().BoolVar(&o.Force, "force", false, "restore the Service even while other developers' intercepts are live")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "print only errors")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the copy's pods to go")
	return cmd
}

// Complete resolves the namespace and the Service, without asking the
// cluster (close works when the Service is gone).
func (o *CloseOptions) Complete(args []string) error {
	if err := o.f.Complete(); err != nil {
		return err
	}
	o.Namespace = o.f.Namespace
	if len(args) == 1 {
		var err error
		if o.Namespace, o.Service, err = cmdutil.ResolveServiceName(o.f, args[0]); err != nil {
			return err
		}
		o.stateKey = local.StateKey(o.f.Context, o.Namespace, o.Service)
	}
	return nil
}

// Validate checks the flags and the argument.
func (o *CloseOptions) Validate() error {
	switch {
	case o.All && o.Service != "":
		return errors.New("give a Service (close svc/NAME) or --all, not both")
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	}
	return nil
}

// Run closes.
func (o *CloseOptions) Run(ctx context.Context) error {
	p := cmdutil.NewProgress(o.Out, o.ErrOut, o.Quiet)
	switch {
	case o.All:
		return o.closeAll(ctx, p)
	case o.Service == "":
		return o.closeMine(ctx, p)
	}
	stopped, err := local.StopBackground(o.stateKey, o.Timeout)
	if err != nil {
		p.Warn(err.Error())
	}
	if stopped {
		p.Infof("Ended the background intercept of %s.", o.Service)
	}
	crashed := o.crashedHere()
	left, err := cmdutil.ClusterOf(o.f).Leave(ctx, session.LeaveOptions{Namespace: o.Namespace, Service: o.Service,
		Force: o.Force, Crashed: !stopped && len(crashed) > 0, Timeout: o.Timeout, Progress: p})
	if err != nil {
		return err
	}
	for _, li := range crashed {
		local.Forget(li.Key())
	}
	if left.Stayed() {
		p.Infof("Service %s stays switched: %s. Nothing was restored; use --force to restore it anyway.", o.Service, cmdutil.WhyStayed(left))
		return nil
	}
	o.report(p, o.Service, left.Closed, stopped)
	return nil
}

// crashedHere is this machine's records of intercepts of the Service whose
// process is proven to have ended without leaving (a crash, kill -9): what
// they left here, the files --mount or --sandbox wrote (the pod's Secrets
// among them), goes once the cluster side is closed. A record whose
// process may still run is not among them.
func (o *CloseOptions) crashedHere() []local.Intercept {
	mine, err := local.List(o.f.Context)
	if err != nil {
		return nil
	}
	var crashed []local.Intercept
	for _, li := range mine {
		if li.Namespace == o.Namespace && li.Service == o.Service && li.Ended() {
			crashed = append(crashed, li)
		}
	}
	return crashed
}

// closeMine ends every intercept this machine started in the current
// context: a process that still holds one is asked to leave (as on
// Ctrl-C); what a crash left is cleaned up as the last one out would.
func (o *CloseOptions) closeMine(ctx context.Context, p *cmdutil.Progress) error {
	mine, err := local.List(o.f.Context)
	if err != nil {
		return err
	}
	if len(mine) == 0 {
		p.Infof("No intercepts started from this machine in context %s; nothing to close.", cmdutil.OrNone(o.f.Context))
		return nil
	}
	var errs []error
	for _, li := range mine {
		name := li.Namespace + "/" + li.Service
		// Only a process proven to be the one that started it is
		// signaled; one that may be it but does not prove it keeps its
		// intercept, and the user is told what was found.
		stopped, gone, err := local.StopRecorded(li, o.Timeout)
		if err != nil {
			p.Warn(fmt.Sprintf("service %s: %v", name, err))
		}
		if !gone && !stopped {
			errs = append(errs, fmt.Errorf("service %s: its intercept's process may still run; it was left alone", name))
			continue
		}
		left, err := cmdutil.ClusterOf(o.f).Leave(ctx, session.LeaveOptions{Namespace: li.Namespace, Service: li.Service,
			ID: li.Session, Force: o.Force, Crashed: gone && !stopped, Timeout: o.Timeout, Progress: p})
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			continue
		}
		local.Forget(li.Key())
		switch {
		case left.Stayed():
			p.Infof("Ended your intercept of service %s; the Service stays switched: %s. Use --force to restore it anyway.",
				name, cmdutil.WhyStayed(left))
		case left.Closed.Restored || len(left.Closed.Deleted) > 0:
			p.Infof("Ended your intercept of service %s; the Service is restored.", name)
		case stopped:
			p.Infof("Ended your intercept of service %s.", name)
		default:
			p.Infof("Your intercept of service %s had already ended; nothing left to clean up.", name)
		}
	}
	return errors.Join(errs...)
}

// closeAll closes every intercept in the namespace, live or not.
func (o *CloseOptions) closeAll(ctx context.Context, p *cmdutil.Progress) error {
	names, err := session.FindAll(ctx, o.f.Client, o.Namespace)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		p.Infof("No intercepts in namespace %s.", o.Namespace)
		return nil
	}
	var errs []error
	for _, name := range names {
		stopped, _ := local.StopBackground(local.StateKey(o.f.Context, o.Namespace, name), o.Timeout)
		res, err := session.Close(ctx, o.f.Client, session.CloseOptions{Namespace: o.Namespace, Service: name, Timeout: o.Timeout, Force: o.Force, Progress: p})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.report(p, name, res, stopped)
	}
	return errors.Join(errs...)
}

// report says what closing one Service did; stopped says a background
// intercept of ours ended just before (and so may have restored it already).
func (o *CloseOptions) report(p *cmdutil.Progress, name string, res *session.Closed, stopped bool) {
	if len(res.Busy) > 0 {
		p.Infof("Another kubectl-intercept is starting an intercept of service %s/%s right now (deployment %s); it is left to them. Use --force to end it anyway.",
			o.Namespace, name, strings.Join(res.Busy, ", "))
		if !res.Restored && len(res.Deleted) == 0 {
			return
		}
	}
	if !res.Restored && len(res.Deleted) == 0 && !stopped {
		p.Infof("Service %s/%s has no intercept; nothing to do.", o.Namespace, name)
		return
	}
	p.Infof("Service %s/%s is restored.", o.Namespace, name)
}
