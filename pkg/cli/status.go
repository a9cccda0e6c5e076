package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/portforward"
)

// StatusOptions are the inputs of `kubectl intercept status`.
type StatusOptions struct {
	configFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	Output string

	Namespace  string
	Service    string
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	// RoutesOf asks one copy pod's sidecar for its live routes.
	RoutesOf func(ctx context.Context, pod string, rec *session.Record) ([]tunnel.Route, error)
}

// Status is one intercept in detail: its `list` entry, the address to try
// it on, and what each of the copy's pods holds.
type Status struct {
	Entry `json:",inline"`
	// URL is the Service port's address inside the cluster.
	URL  string      `json:"url,omitempty"`
	Pods []PodStatus `json:"pods"`
}

// PodStatus is one pod of the copy and the routes its sidecar holds.
type PodStatus struct {
	Name    string         `json:"name"`
	Node    string         `json:"node,omitempty"`
	Ready   bool           `json:"ready"`
	Routes  []tunnel.Route `json:"routes"`
	Problem string         `json:"problem,omitempty"`
}

// NewCmdStatus builds `kubectl intercept status`.
func NewCmdStatus(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{configFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "status [svc/]NAME",
		Short: "Show one intercept: its routes, who holds them, and which of the copy's pods have each",
		Long: `Show the intercept of a Service in detail: its state (as in list), the
original workload and its copy, every live route with its holder, and, pod by
pod, the routes each sidecar of the copy holds. A route missing from a ready
pod means that pod sends the developer's requests to the in-cluster app.`,
		Example: `  kubectl intercept status svc/web
  kubectl intercept status web -n shop -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: serviceArgCompletion(flags, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// Complete resolves the Service's name and namespace and the clients.
func (o *StatusOptions) Complete(args []string) error {
	var err error
	if o.Namespace, o.Service, err = resolveServiceName(o.configFlags, args[0]); err != nil {
		return err
	}
	if o.RESTConfig, o.Client, err = clients(o.configFlags); err != nil {
		return err
	}
	o.RoutesOf = func(ctx context.Context, pod string, rec *session.Record) ([]tunnel.Route, error) {
		return sidecarRoutes(ctx, o.RESTConfig, o.Namespace, pod, int(rec.Plan.ControlPort))
	}
	return nil
}

// Validate checks the output format.
func (o *StatusOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use json or yaml", o.Output)
}

// Run shows the status.
func (o *StatusOptions) Run(ctx context.Context) error {
	st, err := o.status(ctx)
	if err != nil {
		return err
	}
	if done, err := writeData(o.Out, o.Output, st); done {
		return err
	}
	return writeStatus(o.Out, st, time.Now())
}

func (o *StatusOptions) status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	svc, err := o.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("service %s/%s not found: `kubectl get svc -n %s` lists the Services of the namespace", o.Namespace, o.Service, o.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("reading service %s/%s: %w", o.Namespace, o.Service, err)
	}
	st := &Status{Pods: []PodStatus{}}
	// Every pod's sidecar is asked; the intercept's routes are all they hold.
	collect := func(rec *session.Record) ([]tunnel.Route, error) {
		pods, err := o.pods(ctx, rec)
		if err != nil {
			return nil, err
		}
		st.Pods = pods
		return unionRoutes(pods)
	}
	if _, ok := svc.Annotations[session.AnnotationRecord]; ok {
		st.Entry, _ = switchedEntry(ctx, o.Client, svc, collect)
	} else {
		// Not switched: the residue of a crash, or our annotations wiped.
		e, rec, err := o.residue(ctx)
		if err != nil {
			return nil, err
		}
		if rec == nil {
			return nil, fmt.Errorf("service %s/%s is not intercepted: `kubectl intercept list` shows the intercepts of the namespace", o.Namespace, o.Service)
		}
		st.Entry = e
		if _, err := collect(rec); err != nil && len(st.Pods) == 0 {
			st.Problem += "; " + err.Error()
		}
	}
	if port := servicePort(svc, st.Port); st.Port != "" {
		st.URL = fmt.Sprintf("http://%s.%s:%s/", svc.Name, svc.Namespace, port)
	}
	return st, nil
}

// pods lists the copy's pods in name order with the routes each sidecar
// holds.
func (o *StatusOptions) pods(ctx context.Context, rec *session.Record) ([]PodStatus, error) {
	pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(rec.SessionSelector()).String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of copy %s: %w", rec.Copy, err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	out := []PodStatus{}
	for _, p := range pods.Items {
		ps := PodStatus{Name: p.Name, Node: p.Spec.NodeName, Ready: podReady(&p), Routes: []tunnel.Route{}}
		switch {
		case p.DeletionTimestamp != nil:
			ps.Problem = "terminating"
		case p.Status.Phase != corev1.PodRunning:
			ps.Problem = "not running (" + string(p.Status.Phase) + ")"
		default:
			routes, err := o.RoutesOf(ctx, p.Name, rec)
			if err != nil {
				ps.Problem = "sidecar did not answer: " + strings.SplitN(err.Error(), "\n", 2)[0]
			} else if routes != nil {
				ps.Routes = routes
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// unionRoutes is every route some pod holds, in the order first seen; an
// error when no sidecar answered.
func unionRoutes(pods []PodStatus) ([]tunnel.Route, error) {
	var out []tunnel.Route
	answered := false
	last := "no running pod of the copy"
	for _, p := range pods {
		if p.Problem != "" {
			last = p.Name + ": " + p.Problem
			continue
		}
		answered = true
		for _, r := range p.Routes {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	if !answered {
		return nil, errors.New(last)
	}
	return out, nil
}

// residue finds a copy of this Service whose Service is not switched; rec
// is nil when there is none.
func (o *StatusOptions) residue(ctx context.Context) (Entry, *session.Record, error) {
	copies, err := copiesIn(ctx, o.Client, o.Namespace)
	if err != nil {
		return Entry{}, nil, err
	}
	for _, c := range copies {
		if c.rec.Service == o.Service {
			return residueEntry(c.Deployment, c.rec), c.rec, nil
		}
	}
	return Entry{}, nil, nil
}

// sidecarRoutes asks the sidecar of one pod, through a port-forward to its
// control port, for the routes it holds.
func sidecarRoutes(ctx context.Context, cfg *rest.Config, ns, pod string, port int) ([]tunnel.Route, error) {
	conn, err := portforward.DialPod(ctx, cfg, ns, pod, port)
	if err != nil {
		return nil, err
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer c.Close()
	return c.Routes()
}

// writeStatus renders st for a person.
func writeStatus(w io.Writer, st *Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Service:\t%s/%s, port %s\n", st.Namespace, st.Service, orNone(st.Port))
	fmt.Fprintf(tw, "Status:\t%s\n", st.Status)
	if st.Problem != "" {
		fmt.Fprintf(tw, "Problem:\t%s\n", st.Problem)
	}
	if st.Workload != "" {
		fmt.Fprintf(tw, "Workload:\tdeployment/%s, copied as deployment/%s (%s ready)\n", st.Workload, st.Copy, st.Ready)
	}
	if !st.Created.IsZero() {
		fmt.Fprintf(tw, "Started:\t%s ago\n", duration.HumanDuration(now.Sub(st.Created)))
	}
	if len(st.Routes) == 0 {
		fmt.Fprintf(tw, "Routes:\t<none>\n")
	}
	ready := 0
	for _, p := range st.Pods {
		if p.Ready {
			ready++
		}
	}
	for i, r := range st.Routes {
		label := ""
		if i == 0 {
			label = "Routes:"
		}
		on := 0
		for _, p := range st.Pods {
			if p.Ready && slices.ContainsFunc(p.Routes, r.Conflicts) {
				on++
			}
		}
		fmt.Fprintf(tw, "%s\t%s by %s, on %d of %d ready pods\n", label, r.String(), orNone(r.Owner), on, ready)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Pods) > 0 {
		fmt.Fprintln(w, "Pods:")
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tREADY\tROUTES\tPROBLEM")
		for _, p := range st.Pods {
			names := make([]string, len(p.Routes))
			for i, r := range p.Routes {
				names[i] = r.String()
			}
			fmt.Fprintf(tw, "  %s\t%t\t%s\t%s\n", p.Name, p.Ready, orNone(strings.Join(names, ", ")), p.Problem)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, hint := range statusHints(st) {
		fmt.Fprintln(w, hint)
	}
	return nil
}

// statusHints says what to do about what st shows.
func statusHints(st *Status) []string {
	var out []string
	svc := "svc/" + st.Service + " -n " + st.Namespace
	switch st.Status {
	case "active":
		for _, r := range st.Routes {
			if r.All || st.URL == "" {
				continue
			}
			out = append(out, fmt.Sprintf("Try it from inside the cluster: curl -H %s %s", shellQuote(headerLine(r)), st.URL))
		}
		for _, p := range st.Pods {
			if p.Ready && len(p.Routes) < len(st.Routes) {
				out = append(out, fmt.Sprintf("Pod %s lacks a route: requests it receives go to the in-cluster app until the developer's CLI reconnects to it (it follows the copy's pods within seconds).", p.Name))
			}
		}
	case "idle", "residue", "copy-missing", "broken":
		out = append(out, fmt.Sprintf("Nobody is intercepting through it: `kubectl intercept close %s` restores the Service and removes the copy.", svc))
	case "reverted":
		out = append(out, fmt.Sprintf("Something switched the Service back; `kubectl intercept close %s` removes the copy and what is left of the switch.", svc))
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
