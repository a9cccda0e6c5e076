package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// ListOptions are the inputs of `kubectl intercept list`.
type ListOptions struct {
	configFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	AllNamespaces bool
	Output        string

	Namespace  string
	Client     kubernetes.Interface
	RESTConfig *rest.Config
}

// Entry is one intercepted Service in `list` output.
type Entry struct {
	Namespace string         `json:"namespace"`
	Service   string         `json:"service"`
	Port      string         `json:"port"`
	Workload  string         `json:"workload"`
	Copy      string         `json:"copy"`
	Ready     string         `json:"ready"`
	Routes    []tunnel.Route `json:"routes"`
	Created   time.Time      `json:"created"`
	// Status is active (live routes), idle (no live route: a stale
	// session to close), reverted (someone switched the Service away),
	// copy-missing, or residue (a copy without a switched Service).
	Status string `json:"status"`
	// Problem is set when the routes could not be read.
	Problem string `json:"problem,omitempty"`
}

// NewCmdList builds `kubectl intercept list`.
func NewCmdList(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ListOptions{configFlags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:           "list",
		Aliases:       []string{"ls"},
		Short:         "List the intercepted Services of the namespace and their live routes",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "list intercepts in every namespace")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, json or yaml (default: a table)")
	return cmd
}

// Complete resolves the namespace and clients.
func (o *ListOptions) Complete() error {
	var err error
	if o.Namespace, _, err = o.configFlags.ToRawKubeConfigLoader().Namespace(); err != nil {
		return fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	if o.AllNamespaces {
		o.Namespace = metav1.NamespaceAll
	}
	o.RESTConfig, o.Client, err = clients(o.configFlags)
	return err
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
	entries, err := o.entries(ctx)
	if err != nil {
		return err
	}
	if done, err := writeData(o.Out, o.Output, entries); done {
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
	wide := o.Output == "wide"
	tw := tabwriter.NewWriter(o.Out, 0, 8, 3, ' ', 0)
	if o.AllNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprint(tw, "SERVICE\tPORT\tCOPY\tREADY\tSTATUS\tROUTES\tAGE")
	if wide {
		fmt.Fprint(tw, "\tWORKLOAD\tPROBLEM")
	}
	fmt.Fprintln(tw)
	stale := 0
	for _, e := range entries {
		if o.AllNamespaces {
			fmt.Fprintf(tw, "%s\t", e.Namespace)
		}
		routes := describeRoutes(e.Routes)
		if routes == "" {
			routes = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", e.Service, e.Port, e.Copy, e.Ready, e.Status, routes,
			duration.HumanDuration(time.Since(e.Created)))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", e.Workload, e.Problem)
		}
		fmt.Fprintln(tw)
		if e.Status != "active" {
			stale++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if stale > 0 {
		fmt.Fprintf(o.ErrOut, "%d intercept(s) have no live route or are broken: `kubectl intercept close svc/NAME` cleans one up, `close --all` every one in the namespace.\n", stale)
	}
	return nil
}

func (o *ListOptions) entries(ctx context.Context) ([]Entry, error) {
	svcs, err := o.Client.CoreV1().Services(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	entries := []Entry{}
	switched := map[string]bool{}
	for _, s := range svcs.Items {
		if _, ok := s.Annotations[session.AnnotationRecord]; !ok {
			continue
		}
		switched[s.Namespace+"/"+s.Name] = true
		e, _ := switchedEntry(ctx, o.Client, &s, func(rec *session.Record) ([]tunnel.Route, error) {
			return liveRoutes(ctx, o.RESTConfig, o.Client, s.Namespace, rec)
		})
		entries = append(entries, e)
	}
	// Copies whose Service is not switched (a crash between creating the
	// copy and the switch, or annotations wiped): residue to clean up.
	copies, err := copiesIn(ctx, o.Client, o.Namespace)
	if err != nil {
		return nil, err
	}
	for _, c := range copies {
		if !switched[c.Namespace+"/"+c.rec.Service] {
			entries = append(entries, residueEntry(c.Deployment, c.rec))
		}
	}
	return entries, nil
}

// copyOf is a copy Deployment of ours with its readable session record.
type copyOf struct {
	*appsv1.Deployment
	rec *session.Record
}

// copiesIn lists our copies in ns (every namespace if empty) whose record
// can be read.
func copiesIn(ctx context.Context, cs kubernetes.Interface, ns string) ([]copyOf, error) {
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{
		LabelSelector: session.LabelManagedBy + "=" + session.ManagedByValue})
	if err != nil {
		return nil, fmt.Errorf("listing copies: %w", err)
	}
	var out []copyOf
	for i := range list.Items {
		d := &list.Items[i]
		if rec, err := session.DecodeRecord(d.Annotations[session.AnnotationRecord]); err == nil {
			out = append(out, copyOf{d, rec})
		}
	}
	return out, nil
}

// writeData writes v as JSON or YAML when format (-o) asks for one; done
// is false for any other format, which the caller renders itself.
func writeData(w io.Writer, format string, v any) (done bool, err error) {
	var b []byte
	switch format {
	case "json":
		if b, err = json.MarshalIndent(v, "", "  "); err == nil {
			b = append(b, '\n')
		}
	case "yaml":
		b, err = yaml.Marshal(v)
	default:
		return false, nil
	}
	if err == nil {
		_, err = w.Write(b)
	}
	return true, err
}

// switchedEntry describes a Service that carries a session record, asking
// routes for the live routes; the record is nil when it cannot be read.
func switchedEntry(ctx context.Context, cs kubernetes.Interface, s *corev1.Service, routes func(*session.Record) ([]tunnel.Route, error)) (Entry, *session.Record) {
	e := Entry{Namespace: s.Namespace, Service: s.Name, Routes: []tunnel.Route{}}
	rec, err := session.DecodeRecord(s.Annotations[session.AnnotationRecord])
	if err != nil {
		e.Status, e.Problem = "broken", err.Error()
		return e, nil
	}
	e.Port, e.Workload, e.Copy, e.Created = rec.Port, rec.Workload, rec.Copy, rec.Created
	d, err := cs.AppsV1().Deployments(s.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		e.Ready, e.Status = "-", "copy-missing"
		return e, rec
	}
	e.Ready = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0))
	live, err := routes(rec)
	switch {
	case err != nil:
		e.Status, e.Problem = "unknown", strings.SplitN(err.Error(), "\n", 2)[0]
	case !maps.Equal(s.Spec.Selector, rec.SessionSelector()):
		e.Status, e.Problem = "reverted", session.RevertMessage(s)
	case len(live) == 0:
		e.Status = "idle"
	default:
		e.Status = "active"
	}
	if live != nil {
		e.Routes = live
	}
	return e, rec
}

// residueEntry describes a copy whose Service is not switched (a crash
// between creating the copy and the switch, or our annotations wiped).
func residueEntry(d *appsv1.Deployment, rec *session.Record) Entry {
	return Entry{Namespace: d.Namespace, Service: rec.Service, Port: rec.Port, Workload: rec.Workload,
		Copy: d.Name, Ready: fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 0)),
		Routes: []tunnel.Route{}, Created: rec.Created, Status: "residue",
		Problem: "a copy without a switched Service"}
}
