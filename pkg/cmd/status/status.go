// Package status is `kubectl intercept status`: this machine's intercepts,
// or one intercept in detail, pod by pod.
package status

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/completion"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// StatusOptions are the inputs of `kubectl intercept status`.
type StatusOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	// PrintFlags are -o: the text, or kubectl's printers of the
	// intercept.kubectl.dev/v1alpha1 objects.
	PrintFlags *cmdutil.PrintFlags

	Namespace string
	Service   string
	// Cluster is where the intercept is read (Complete fills it).
	Cluster session.Cluster
}

// NewCmdStatus builds `kubectl intercept status`.
func NewCmdStatus(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newStatusOptions(f, streams).command()
}

func newStatusOptions(f *factory.Factory, streams genericiooptions.IOStreams) *StatusOptions {
	return &StatusOptions{f: f, IOStreams: streams, PrintFlags: cmdutil.NewPrintFlags("the text")}
}

func (o *StatusOptions) command() *cobra.Command {
	f := o.f
	cmd := &cobra.Command{
		Use:   "status [[svc/]NAME]",
		Short: "Show your intercepts, or one intercept in detail",
		Long: `Without an argument: the context, cluster and user in use, and every
intercept you started from this machine in that context (any namespace), with
its state and whether this machine still holds it.

With svc/NAME: the intercept of that Service in detail: its state (as in
list), the original workload and its copy, every live route with its holder,
and, pod by pod, the routes each sidecar of the copy holds. A route missing
from a ready pod means that pod sends the developer's requests to the
in-cluster app.`,
		Example: `  kubectl intercept status
  kubectl intercept status svc/web
  kubectl intercept status web -n shop -o yaml
  kubectl intercept status -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{"\n"}{end}'`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completion.ServiceArg(f, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.RunSteps(cmd.Context(), func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
	o.PrintFlags.AddFlags(cmd, false)
	return cmd
}

// Complete resolves the Service's name and namespace and the clients.
func (o *StatusOptions) Complete(args []string) error {
	if err := o.f.Complete(); err != nil {
		return err
	}
	o.Cluster = cmdutil.ClusterOf(o.f)
	if len(args) == 0 {
		return nil
	}
	var err error
	o.Namespace, o.Service, err = cmdutil.ResolveServiceName(o.f, args[0])
	return err
}

// Validate checks the output format.
func (o *StatusOptions) Validate() error {
	return o.PrintFlags.Validate()
}

// Run shows the status.
func (o *StatusOptions) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if o.Service == "" {
		ov, err := o.overview(ctx)
		if err != nil {
			return err
		}
		return o.printOverview(ov)
	}
	st, err := o.Cluster.Get(ctx, o.Namespace, o.Service)
	if err != nil {
		return err
	}
	var li *local.Intercept
	if o.f != nil {
		li = local.Of(o.f.Context, o.Namespace, o.Service)
	}
	return o.printDetail(st, li, time.Now())
}

// printOverview prints ov as -o asks.
func (o *StatusOptions) printOverview(ov *Overview) error {
	if !o.PrintFlags.IsHuman() {
		return o.PrintFlags.Print(ov.object(), o.Out)
	}
	return writeOverview(o.Out, ov)
}

// printDetail prints one intercept and, when li (may be nil) holds it,
// this machine's side of it as -o asks; now is the text's clock.
func (o *StatusOptions) printDetail(st *session.Detail, li *local.Intercept, now time.Time) error {
	if !o.PrintFlags.IsHuman() {
		var loc *cmdutil.LocalStatus
		if li != nil { // local.Of gives only an intercept a process holds
			loc = cmdutil.NewLocalStatus(true, li.PID, li.Local)
		}
		return o.PrintFlags.Print(cmdutil.NewInterceptDetail(st, loc), o.Out)
	}
	if err := writeStatus(o.Out, st, now); err != nil {
		return err
	}
	var side *local.Side
	if li != nil {
		side = li.Local
	}
	return writeLocalSide(o.Out, side)
}

// writeLocalSide renders what this machine's intercept gives its process.
func writeLocalSide(w io.Writer, side *local.Side) error {
	if side == nil {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "On this machine:")
	for _, kv := range [][2]string{{"Environment", side.Environment}, {"Files", side.Files}, {"Proxy", side.Proxy}, {"Command", side.Command}} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], cmdutil.Printable(kv[1]))
		}
	}
	for _, f := range side.Forwards {
		fmt.Fprintf(tw, "  Forward:\t%s\n", cmdutil.Printable(f))
	}
	if sb := side.Sandbox; sb != nil {
		fmt.Fprintf(tw, "  Sandbox:\tthe command runs in namespaces of its own, hostname %s\n", cmdutil.Printable(sb.Hostname))
		rows := [][2]string{{"DNS", sb.DNS}, {"Network", sb.Network}, {"Mounts", sb.MountsLine()}}
		for _, s := range sb.Skipped {
			rows = append(rows, [2]string{"Skipped", s})
		}
		for _, kv := range append(rows, [2]string{"Local", sb.LocalLine()}) {
			if kv[1] != "" {
				fmt.Fprintf(tw, "    %s:\t%s\n", kv[0], cmdutil.Printable(kv[1]))
			}
		}
	}
	return tw.Flush()
}

// writeStatus renders st for a person.
func writeStatus(w io.Writer, st *session.Detail, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	// What the record (an annotation), the cluster and the sidecars
	// say is printed as cmdutil.Printable() makes it: quoted when it holds a
	// character a terminal would act on.
	ports := "port " + cmdutil.OrNone(cmdutil.Printable(st.Port))
	if len(st.Ports) > 1 {
		ports = "ports " + cmdutil.Printable(st.PortList())
	}
	fmt.Fprintf(tw, "Service:\t%s/%s, %s\n", cmdutil.Printable(st.Namespace), cmdutil.Printable(st.Service), ports)
	fmt.Fprintf(tw, "Status:\t%s\n", cmdutil.Printable(string(st.Status)))
	if st.Problem != "" {
		fmt.Fprintf(tw, "Problem:\t%s\n", cmdutil.Printable(st.Problem))
	}
	if st.Workload != "" {
		if st.Mode == "decoy" {
			fmt.Fprintf(tw, "Workload:\t%s keeps serving through service/%s (the decoy); proxy deployment/%s (%s ready)\n",
				cmdutil.Printable(st.WorkloadRef()), cmdutil.Printable(st.Decoy), cmdutil.Printable(st.Copy), cmdutil.Printable(st.Ready))
		} else {
			fmt.Fprintf(tw, "Workload:\t%s, copied as deployment/%s (%s ready)\n", cmdutil.Printable(st.WorkloadRef()), cmdutil.Printable(st.Copy), cmdutil.Printable(st.Ready))
		}
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
		same := func(o route.Route) bool { return sameRoute(r, o) }
		for _, p := range st.Pods {
			if p.Ready && slices.ContainsFunc(p.Routes, same) {
				on++
			}
		}
		fmt.Fprintf(tw, "%s\t%s by %s, on %d of %d ready pods\n", label, routeLabel(r), cmdutil.OrNone(cmdutil.Printable(r.Owner)), on, ready)
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
				names[i] = routeLabel(r)
			}
			fmt.Fprintf(tw, "  %s\t%t\t%s\t%s\n", cmdutil.Printable(p.Name), p.Ready, cmdutil.OrNone(strings.Join(names, ", ")), cmdutil.Printable(p.Problem))
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

// sameRoute says whether two sidecars' listings show one developer's
// route: the same marker (a header in any case), paths and methods, owner
// and port. Two developers may share a marker on different paths.
func sameRoute(a, b route.Route) bool {
	return a.All == b.All && http.CanonicalHeaderKey(a.Header) == http.CanonicalHeaderKey(b.Header) &&
		a.Cookie == b.Cookie && a.Baggage == b.Baggage && a.Value == b.Value &&
		a.PathPrefix == b.PathPrefix && a.PathRegex == b.PathRegex && a.Methods == b.Methods &&
		a.Owner == b.Owner && a.Port == b.Port
}

// routeLabel names a route and, in an intercept of several ports, its port.
func routeLabel(r route.Route) string {
	if r.Port != "" {
		return cmdutil.Printable(r.String()) + " on port " + cmdutil.Printable(r.Port)
	}
	return cmdutil.Printable(r.String())
}

// statusHints says what to do about what st shows.
func statusHints(st *session.Detail) []string {
	var out []string
	svc := "svc/" + cmdutil.Printable(st.Service) + " -n " + cmdutil.Printable(st.Namespace)
	switch st.Status {
	case session.StateActive:
		for _, r := range st.Routes {
			if st.URL == "" || (r.Port != "" && r.Port != st.Port) || cmdutil.Printable(st.URL) != st.URL {
				continue
			}
			// Empty for an --all route (any connection will do), and for a
			// crafted route, shown quoted above.
			if curl := cmdutil.TryCurl(r, st.URL); curl != "" {
				out = append(out, "Try it from inside the cluster: "+curl)
			}
		}
		for _, p := range st.Pods {
			if p.Ready && len(p.Routes) < len(st.Routes) {
				out = append(out, fmt.Sprintf("Pod %s lacks a route: requests it receives go to the in-cluster app until the developer's CLI reconnects to it (it follows the copy's pods within seconds).", cmdutil.Printable(p.Name)))
			}
		}
	case session.StateIdle, session.StateResidue, session.StateCopyMissing, session.StateBroken:
		out = append(out, fmt.Sprintf("Nobody is intercepting through it: `kubectl intercept close %s` restores the Service and removes the copy.", svc))
	case session.StateReverted:
		out = append(out, fmt.Sprintf("Something switched the Service back; `kubectl intercept close %s` removes the copy and what is left of the switch.", svc))
	}
	return out
}

// Overview is `status` without an argument: where this machine points and
// the intercepts it started there.
type Overview struct {
	Context    string
	Cluster    string
	User       string
	Intercepts []MineIntercept
}

// MineIntercept is one intercept this machine started.
type MineIntercept struct {
	session.Intercept
	// Held says a process of this machine holds it now (PID); false: it
	// was left by a crash, or ended elsewhere.
	Held bool
	PID  int
}

// object is ov as -o prints it: the intercepts, each with what this
// machine knows of it, and the context they were read in.
func (ov *Overview) object() *cmdutil.InterceptList {
	list := &cmdutil.InterceptList{TypeMeta: metav1.TypeMeta{APIVersion: cmdutil.GroupVersion.String(), Kind: "InterceptList"},
		Context: &cmdutil.KubeContext{Name: ov.Context, Cluster: ov.Cluster, User: ov.User},
		Items:   make([]cmdutil.Intercept, len(ov.Intercepts))}
	for i := range ov.Intercepts {
		m := &ov.Intercepts[i]
		item := cmdutil.NewIntercept(&m.Intercept)
		item.Status.Local = cmdutil.NewLocalStatus(m.Held, m.PID, nil)
		list.Items[i] = *item
	}
	return list
}

func (o *StatusOptions) overview(ctx context.Context) (*Overview, error) {
	ov := &Overview{Context: o.f.Context, Cluster: o.f.Server, User: o.f.User, Intercepts: []MineIntercept{}}
	mine, err := local.List(o.f.Context)
	if err != nil {
		return nil, err
	}
	for _, li := range mine {
		m := MineIntercept{Held: li.Held()}
		if m.Held {
			m.PID = li.PID
		}
		m.Intercept = o.Cluster.Recorded(ctx, li.Namespace, li.Service)
		ov.Intercepts = append(ov.Intercepts, m)
	}
	return ov, nil
}

// writeOverview renders ov for a person.
func writeOverview(w io.Writer, ov *Overview) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Context:\t%s\n", cmdutil.OrNone(cmdutil.Printable(ov.Context)))
	fmt.Fprintf(tw, "Cluster:\t%s\n", cmdutil.OrNone(cmdutil.Printable(ov.Cluster)))
	fmt.Fprintf(tw, "User:\t%s\n", cmdutil.OrNone(cmdutil.Printable(ov.User)))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(ov.Intercepts) == 0 {
		fmt.Fprintln(w, "Intercepts: none started from this machine in this context")
		return nil
	}
	fmt.Fprintf(w, "Intercepts (%d):\n", len(ov.Intercepts))
	tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tSERVICE\tSTATUS\tHELD BY\tROUTES\tPROBLEM")
	for _, m := range ov.Intercepts {
		held := "nothing (crashed or ended)"
		if m.Held {
			held = fmt.Sprintf("pid %d", m.PID)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", cmdutil.Printable(m.Namespace), cmdutil.Printable(m.Service), cmdutil.Printable(string(m.Status)), held, cmdutil.OrNone(cmdutil.DescribeRoutes(m.Routes)), cmdutil.Printable(m.Problem))
	}
	return tw.Flush()
}
