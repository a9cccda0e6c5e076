// Package list is `kubectl intercept list`: the intercepted Services of a
// namespace and their live routes, or what can be intercepted.
package list

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

// ListOptions are the inputs of `kubectl intercept list`.
type ListOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	AllNamespaces bool
	Output        string
	// Services lists every Service and whether it can be intercepted.
	Services bool

	Namespace string
	// Cluster is where the intercepts are read (Complete fills it).
	Cluster session.Cluster
}

// NewCmdList builds `kubectl intercept list`.
func NewCmdList(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{f: f, IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the intercepted Services of the namespace and their live routes, or (--services) what can be intercepted",
		Example: `  kubectl intercept list
  kubectl intercept list -A -o wide
  kubectl intercept list --services -n shop`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.RunSteps(cmd.Context(), o.Complete, o.Validate, o.Run)
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list intercepts in every namespace")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, json or yaml (default: a table)")
	cmd.Flags().BoolVar(&o.Services, "services", false, "list every Service instead, whether it can be intercepted and, if not, why")
	return cmd
}

// Complete resolves the namespace and the clients.
func (o *ListOptions) Complete() error {
	if err := o.f.Complete(); err != nil {
		return err
	}
	o.Namespace = o.f.Namespace
	if o.AllNamespaces {
		o.Namespace = metav1.NamespaceAll
	}
	o.Cluster = cmdutil.ClusterOf(o.f)
	return nil
}

// Validate checks the output format.
func (o *ListOptions) Validate() error {
	switch o.Output {
	case "", "wide", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use wide, json or yaml", o.Output)
}

// Run lists.
func (o *ListOptions) Run(ctx context.Context) error {
	if o.Services {
		cands, err := o.Cluster.Candidates(ctx, o.Namespace)
		if err != nil {
			return err
		}
		if done, err := cmdutil.WriteData(o.Out, o.Output, cands); done {
			return err
		}
		return writeCandidates(o.Out, cands, o.AllNamespaces)
	}
	entries, err := o.Cluster.List(ctx, o.Namespace)
	if err != nil {
		return err
	}
	if done, err := cmdutil.WriteData(o.Out, o.Output, entries); done {
		return err
	}
	if len(entries) == 0 {
		where := "namespace " + o.Namespace
		if o.AllNamespaces {
			where = "any namespace"
		}
		fmt.Fprintf(o.ErrOut, "No intercepts in %s.\n", where)
		return nil
	}
	return writeList(o.Out, o.ErrOut, entries, o.AllNamespaces, o.Output == "wide", time.Now())
}

// writeList renders intercepts as a table, and a hint on stderr when some
// are stale.
func writeList(w, errw io.Writer, entries []session.Intercept, allNamespaces, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprint(tw, "SERVICE\tPORT\tWORKLOAD\tREADY\tSTATUS\tROUTES\tAGE")
	if wide {
		fmt.Fprint(tw, "\tCOPY\tPROBLEM")
	}
	fmt.Fprintln(tw)
	stale := 0
	for _, e := range entries {
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", e.Namespace)
		}
		routes := cmdutil.DescribeRoutes(e.Routes)
		if routes == "" {
			routes = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", e.Service, e.PortList(), cmdutil.OrNone(e.WorkloadRef()), e.Ready, e.Status, routes,
			duration.HumanDuration(now.Sub(e.Created)))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", e.Copy, e.Problem)
		}
		fmt.Fprintln(tw)
		if !e.Live() {
			stale++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if stale > 0 {
		fmt.Fprintf(errw, "%d intercept(s) have no live route or are broken: `kubectl intercept close svc/NAME` cleans one up, `close --all` every one in the namespace.\n", stale)
	}
	return nil
}

// writeCandidates renders what can be intercepted as a table.
func writeCandidates(w io.Writer, cands []session.Candidate, allNamespaces bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "SERVICE\tINTERCEPTABLE\tWORKLOAD\tPORTS\tREASON")
	for _, c := range cands {
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", c.Namespace)
		}
		ports := strings.Join(c.Ports, ",")
		if len(c.AllOnly) > 0 {
			ports = strings.TrimPrefix(ports+","+strings.Join(c.AllOnly, ",")+" (--all)", ",")
		}
		yes := "no"
		if c.Interceptable {
			yes = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Service, yes, cmdutil.OrNone(c.Workload), cmdutil.OrNone(ports), c.Reason)
	}
	return tw.Flush()
}
