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

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

// ListOptions are the inputs of `kubectl intercept list`.
type ListOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	AllNamespaces bool
	// PrintFlags are -o (the table, wide, or kubectl's printers of the
	// intercept.kubectl.dev/v1alpha1 objects) and --no-headers.
	PrintFlags *cmdutil.PrintFlags
	// Services lists every Service and whether it can be intercepted.
	Services bool

	Namespace string
	// Cluster is where the intercepts are read (Complete fills it).
	Cluster session.Cluster
}

// NewCmdList builds `kubectl intercept list`.
func NewCmdList(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newListOptions(f, streams).command()
}

func newListOptions(f *factory.Factory, streams genericiooptions.IOStreams) *ListOptions {
	return &ListOptions{f: f, IOStreams: streams, PrintFlags: cmdutil.NewPrintFlags("the table", "wide")}
}

func (o *ListOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the intercepted Services of the namespace and their live routes, or (--services) what can be intercepted",
		Example: `  kubectl intercept list
  kubectl intercept list -A -o wide
  kubectl intercept list -o jsonpath='{.items[*].metadata.name}'
  kubectl intercept list --services -n shop`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.RunSteps(cmd.Context(), o.Complete, o.Validate, o.Run)
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list intercepts in every namespace")
	o.PrintFlags.AddFlags(cmd, true)
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
	return o.PrintFlags.Validate()
}

// Run lists.
func (o *ListOptions) Run(ctx context.Context) error {
	if o.Services {
		cands, err := o.Cluster.Candidates(ctx, o.Namespace)
		if err != nil {
			return err
		}
		return o.printCandidates(cands)
	}
	entries, err := o.Cluster.List(ctx, o.Namespace)
	if err != nil {
		return err
	}
	return o.printIntercepts(entries, time.Now())
}

// printIntercepts prints entries as -o asks; now is the table's clock.
func (o *ListOptions) printIntercepts(entries []session.Intercept, now time.Time) error {
	if !o.PrintFlags.IsHuman() {
		return o.PrintFlags.Print(cmdutil.NewInterceptList(entries), o.Out)
	}
	if len(entries) == 0 {
		where := "namespace " + o.Namespace
		if o.AllNamespaces {
			where = "any namespace"
		}
		fmt.Fprintf(o.ErrOut, "No intercepts in %s.\n", where)
		return nil
	}
	return writeList(o.Out, o.ErrOut, entries, o.tableOptions(), now)
}

// printCandidates prints what list --services found as -o asks.
func (o *ListOptions) printCandidates(cands []session.Candidate) error {
	if !o.PrintFlags.IsHuman() {
		return o.PrintFlags.Print(cmdutil.NewCandidateList(cands), o.Out)
	}
	return writeCandidates(o.Out, cands, o.tableOptions())
}

// tableOptions are the columns and header the flags ask of a table.
type tableOptions struct {
	allNamespaces, wide, noHeaders bool
}

func (o *ListOptions) tableOptions() tableOptions {
	return tableOptions{allNamespaces: o.AllNamespaces, wide: o.PrintFlags.IsWide(), noHeaders: o.PrintFlags.NoHeaders}
}

// writeList renders intercepts as a table, and a hint on stderr when some
// are stale. What the record (an annotation) and the sidecars say is
// printed as cmdutil.Printable makes it: quoted when it holds a character
// a terminal would act on.
func writeList(w, errw io.Writer, entries []session.Intercept, t tableOptions, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if !t.noHeaders {
		if t.allNamespaces {
			fmt.Fprint(tw, "NAMESPACE\t")
		}
		fmt.Fprint(tw, "SERVICE\tPORT\tWORKLOAD\tREADY\tSTATUS\tROUTES\tAGE")
		if t.wide {
			fmt.Fprint(tw, "\tCOPY\tPROBLEM")
		}
		fmt.Fprintln(tw)
	}
	stale := 0
	for _, e := range entries {
		if t.allNamespaces {
			fmt.Fprintf(tw, "%s\t", cmdutil.Printable(e.Namespace))
		}
		routes := cmdutil.DescribeRoutes(e.Routes)
		if routes == "" {
			routes = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", cmdutil.Printable(e.Service), cmdutil.Printable(e.PortList()),
			cmdutil.OrNone(cmdutil.Printable(e.WorkloadRef())), cmdutil.Printable(e.Ready), cmdutil.Printable(string(e.Status)), routes,
			duration.HumanDuration(now.Sub(e.Created)))
		if t.wide {
			fmt.Fprintf(tw, "\t%s\t%s", cmdutil.Printable(e.Copy), cmdutil.Printable(e.Problem))
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
func writeCandidates(w io.Writer, cands []session.Candidate, t tableOptions) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if !t.noHeaders {
		if t.allNamespaces {
			fmt.Fprint(tw, "NAMESPACE\t")
		}
		fmt.Fprintln(tw, "SERVICE\tINTERCEPTABLE\tWORKLOAD\tPORTS\tREASON")
	}
	for _, c := range cands {
		if t.allNamespaces {
			fmt.Fprintf(tw, "%s\t", cmdutil.Printable(c.Namespace))
		}
		ports := strings.Join(c.Ports, ",")
		if len(c.AllOnly) > 0 {
			ports = strings.TrimPrefix(ports+","+strings.Join(c.AllOnly, ",")+" (--all)", ",")
		}
		yes := "no"
		if c.Interceptable {
			yes = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cmdutil.Printable(c.Service), yes, cmdutil.OrNone(cmdutil.Printable(c.Workload)), cmdutil.OrNone(cmdutil.Printable(ports)), cmdutil.Printable(c.Reason))
	}
	return tw.Flush()
}
