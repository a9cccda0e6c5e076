package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
)

// StatusOptions are the inputs of `kubectl intercept status`.
type StatusOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	Output string

	Namespace string
	Service   string
	// Cluster is where the intercept is read (Complete fills it).
	Cluster session.Cluster
}

// NewCmdStatus builds `kubectl intercept status`.
func NewCmdStatus(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{f: f, IOStreams: streams}
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
		ValidArgsFunction: serviceArgCompletion(f, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(cmd.Context(), o.Validate, func() error { return o.Complete(args) }, o.Run)
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// Complete resolves the Service's name and namespace and the clients.
func (o *StatusOptions) Complete(args []string) error {
	if err := o.f.Complete(); err != nil {
		return err
	}
	var err error
	if o.Namespace, o.Service, err = resolveServiceName(o.f, args[0]); err != nil {
		return err
	}
	o.Cluster = clusterOf(o.f)
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
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := o.Cluster.Get(ctx, o.Namespace, o.Service)
	if err != nil {
		return err
	}
	if done, err := writeData(o.Out, o.Output, st); done {
		return err
	}
	return writeStatus(o.Out, st, time.Now())
}

// writeStatus renders st for a person.
func writeStatus(w io.Writer, st *session.Detail, now time.Time) error {
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
func statusHints(st *session.Detail) []string {
	var out []string
	svc := "svc/" + st.Service + " -n " + st.Namespace
	switch st.Status {
	case session.StateActive:
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
	case session.StateIdle, session.StateResidue, session.StateCopyMissing, session.StateBroken:
		out = append(out, fmt.Sprintf("Nobody is intercepting through it: `kubectl intercept close %s` restores the Service and removes the copy.", svc))
	case session.StateReverted:
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
