package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// CloseOptions are the inputs of `kubectl intercept close`.
type CloseOptions struct {
	configFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	All     bool
	Force   bool
	Quiet   bool
	Timeout time.Duration

	Namespace  string
	Service    string
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	stateKey   string
}

// NewCmdClose builds `kubectl intercept close`.
func NewCmdClose(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CloseOptions{configFlags: flags, IOStreams: streams, Timeout: 90 * time.Second}
	cmd := &cobra.Command{
		Use:   "close ([svc/]NAME | --all)",
		Short: "End your intercept of a Service; the last one out restores the Service",
		Example: `  # End my intercept of my-service
  kubectl intercept close svc/my-service

  # Remove every intercept's residue in the namespace, live or not
  kubectl intercept close --all`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: serviceArgCompletion(flags, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(args); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.All, "all", false, "close every intercept in the namespace, including other developers' and crashed ones")
	cmd.Flags().BoolVar(&o.Force, "force", false, "restore the Service even while other developers' intercepts are live")
	cmd.Flags().BoolVarP(&o.Quiet, "quiet", "q", false, "print only errors")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the copy's pods to go")
	return cmd
}

// Complete resolves the namespace, the Service and the clients.
func (o *CloseOptions) Complete(args []string) error {
	var err error
	if len(args) == 1 {
		if o.Namespace, o.Service, err = resolveServiceName(o.configFlags, args[0]); err != nil {
			return err
		}
		o.stateKey = stateKey(o.configFlags, o.Namespace, o.Service)
	} else if o.Namespace, _, err = o.configFlags.ToRawKubeConfigLoader().Namespace(); err != nil {
		return fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	o.RESTConfig, o.Client, err = clients(o.configFlags)
	return err
}

// Validate checks the arguments.
func (o *CloseOptions) Validate(args []string) error {
	if o.All == (len(args) == 1) {
		return errors.New("give a Service (close svc/NAME) or --all, not both")
	}
	return nil
}

// Run closes.
func (o *CloseOptions) Run(ctx context.Context) error {
	p := newProgress(o.Out, o.ErrOut, o.Quiet)
	if o.All {
		names, err := session.FindAll(ctx, o.Client, o.Namespace)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			p.Infof("No intercepts in namespace %s.", o.Namespace)
			return nil
		}
		var errs []error
		for _, name := range names {
			stopped, _ := stopBackground(stateKey(o.configFlags, o.Namespace, name), o.Timeout)
			if err := o.closeService(ctx, p, name, stopped); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	stopped, err := stopBackground(o.stateKey, o.Timeout)
	if err != nil {
		p.Warn(err.Error())
	}
	if stopped {
		p.Infof("Ended the background intercept of %s.", o.Service)
	}
	if !o.Force {
		rec, _ := currentRecord(ctx, o.Client, o.Namespace, o.Service)
		if rec != nil {
			routes, err := othersLive(ctx, o.RESTConfig, o.Client, o.Namespace, rec, nil)
			if err == nil && len(routes) > 0 {
				p.Infof("%d intercept(s) of service %s by others are live (%s); the Service stays switched. Use --force to end them all.",
					len(routes), o.Service, describeRoutes(routes))
				return nil
			}
		}
	}
	return o.closeService(ctx, p, o.Service, stopped)
}

// closeService restores one Service; stopped says a background intercept
// of ours ended just before (and so may have restored it already).
func (o *CloseOptions) closeService(ctx context.Context, p *progress, name string, stopped bool) error {
	res, err := session.Close(ctx, o.Client, session.CloseOptions{Namespace: o.Namespace, Service: name, Timeout: o.Timeout, Force: o.Force, Progress: p})
	if err != nil {
		return err
	}
	if len(res.Busy) > 0 {
		p.Infof("Another kubectl-intercept is starting an intercept of service %s/%s right now (deployment %s); it is left to them. Use --force to end it anyway.",
			o.Namespace, name, strings.Join(res.Busy, ", "))
		if !res.Restored && len(res.Deleted) == 0 {
			return nil
		}
	}
	if !res.Restored && len(res.Deleted) == 0 && !stopped {
		p.Infof("Service %s/%s has no intercept; nothing to do.", o.Namespace, name)
		return nil
	}
	p.Infof("Service %s/%s is restored.", o.Namespace, name)
	return nil
}

func describeRoutes(rs []tunnel.Route) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += r.String()
		if r.Owner != "" {
			s += " by " + r.Owner
		}
	}
	return s
}

// currentRecord reads the session record on the Service, if any.
func currentRecord(ctx context.Context, cs kubernetes.Interface, ns, name string) (*session.Record, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	raw, ok := svc.Annotations[session.AnnotationRecord]
	if !ok {
		return nil, nil
	}
	return session.DecodeRecord(raw)
}

// othersLive returns the live routes that are not exclude's. A route whose
// developer just crashed can outlive them by one heartbeat timeout, so when
// there are others it asks again once that has passed: what is left then is
// really live.
func othersLive(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ns string, rec *session.Record, exclude *tunnel.Route) ([]tunnel.Route, error) {
	var others []tunnel.Route
	for attempt := 0; attempt < 2; attempt++ {
		routes, err := liveRoutes(ctx, cfg, cs, ns, rec)
		if err != nil {
			return nil, err
		}
		others = others[:0]
		for _, r := range routes {
			// Our own route may not have been seen to drop yet; a route
			// can't be held twice, so an equal one is ours.
			if exclude == nil || !(r.Conflicts(*exclude) && r.All == exclude.All) {
				others = append(others, r)
			}
		}
		if len(others) == 0 || attempt == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return others, nil
		case <-time.After(tunnel.KeepAliveInterval + tunnel.KeepAliveTimeout + time.Second):
		}
	}
	return others, nil
}

// liveRoutes asks a sidecar of the session which routes are live: the
// truth about who still intercepts, since a route lives only with its tunnel.
func liveRoutes(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ns string, rec *session.Record) ([]tunnel.Route, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sel := labels.SelectorFromSet(rec.SessionSelector()).String()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var last error = errors.New("no running pod of the copy")
	for _, pod := range pods.Items {
		if pod.Status.Phase != "Running" || pod.DeletionTimestamp != nil {
			continue
		}
		routes, err := sidecarRoutes(ctx, cfg, ns, pod.Name, int(rec.Plan.ControlPort))
		if err == nil {
			return routes, nil
		}
		last = err
	}
	return nil, last
}

// resolveServiceName is resolveService without a lookup of the Service, so
// close works when the Service is gone.
func resolveServiceName(flags *genericclioptions.ConfigFlags, arg string) (string, string, error) {
	ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	for _, prefix := range []string{"svc/", "service/", "services/", "service.v1/"} {
		if len(arg) > len(prefix) && arg[:len(prefix)] == prefix {
			return ns, arg[len(prefix):], nil
		}
	}
	for i := range arg {
		if arg[i] == '/' {
			return "", "", fmt.Errorf("%s is not a Service: give svc/NAME", arg)
		}
	}
	return ns, arg, nil
}
