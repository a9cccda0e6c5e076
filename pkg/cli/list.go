package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: a table)")
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
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use json or yaml", o.Output)
}

// Run lists.
func (o *ListOptions) Run(ctx context.Context) error {
	entries, err := o.entries(ctx)
	if err != nil {
		return err
	}
	switch o.Output {
	case "json":
		b, _ := json.MarshalIndent(entries, "", "  ")
		fmt.Fprintf(o.Out, "%s\n", b)
		return nil
	case "yaml":
		b, _ := yaml.Marshal(entries)
		fmt.Fprintf(o.Out, "%s", b)
		return nil
	}
	if len(entries) == 0 {
		where := "namespace " + o.Namespace
		if o.AllNamespaces {
			where = "any namespace"
		}
		fmt.Fprintf(o.ErrOut, "No intercepts in %s.\n", where)
		return nil
	}
	tw := tabwriter.NewWriter(o.Out, 0, 8, 3, ' ', 0)
	if o.AllNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "SERVICE\tPORT\tWORKLOAD\tCOPY\tREADY\tROUTES\tAGE")
	for _, e := range entries {
		if o.AllNamespaces {
			fmt.Fprintf(tw, "%s\t", e.Namespace)
		}
		routes := describeRoutes(e.Routes)
		if e.Problem != "" {
			routes = "unknown (" + e.Problem + ")"
		} else if routes == "" {
			routes = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Service, e.Port, e.Workload, e.Copy, e.Ready, routes,
			duration.HumanDuration(time.Since(e.Created)))
	}
	return tw.Flush()
}

func (o *ListOptions) entries(ctx context.Context) ([]Entry, error) {
	svcs, err := o.Client.CoreV1().Services(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	entries := []Entry{}
	for _, s := range svcs.Items {
		raw, ok := s.Annotations[session.AnnotationRecord]
		if !ok {
			continue
		}
		e := Entry{Namespace: s.Namespace, Service: s.Name}
		rec, err := session.DecodeRecord(raw)
		if err != nil {
			e.Problem = err.Error()
			entries = append(entries, e)
			continue
		}
		e.Port, e.Workload, e.Copy, e.Created = rec.Port, rec.Workload, rec.Copy, rec.Created
		if d, err := o.Client.AppsV1().Deployments(s.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{}); err == nil {
			want := int32(0)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			e.Ready = fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want)
		} else {
			e.Ready = "missing"
		}
		if e.Routes, err = liveRoutes(ctx, o.RESTConfig, o.Client, s.Namespace, rec); err != nil {
			e.Problem = strings.SplitN(err.Error(), "\n", 2)[0]
		}
		if e.Routes == nil {
			e.Routes = []tunnel.Route{}
		}
		entries = append(entries, e)
	}
	return entries, nil
}
