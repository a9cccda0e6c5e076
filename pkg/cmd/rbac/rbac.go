// Package rbac is `kubectl intercept rbac`: it prints what an administrator
// applies so that a group may intercept in a namespace.
package rbac

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	rbacobj "github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/rbac"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
)

const rbacExample = `  # Let the members of group shop-devs intercept in namespace shop, and no more
  kubectl intercept rbac -n shop --group shop-devs | kubectl apply -f -

  # The same for a mirrored sidecar image
  kubectl intercept rbac -n shop --group shop-devs --proxy-image registry.example.com/intercept-proxy:v0.1.0`

// RBACOptions are the inputs of `kubectl intercept rbac`.
type RBACOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	// Group is bound to the Role and confined by the policy.
	Group string
	// ProxyImage is the sidecar image the policy admits; empty: as
	// intercept's default.
	ProxyImage string
	// Output is yaml or json.
	Output string

	rbac rbacobj.Options
}

// NewCmdRBAC builds `kubectl intercept rbac`.
func NewCmdRBAC(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RBACOptions{f: f, IOStreams: streams, Group: rbacobj.DefaultGroup, Output: "yaml"}
	cmd := &cobra.Command{
		Use:   "rbac -n NAMESPACE --group GROUP",
		Short: "Print the Role, its binding to a group and the admission policy that confines the group",
		Long: `Print what an administrator applies so that a group of developers may intercept
in a namespace and do nothing more with those rights: the Role, its binding to
the group, and the ValidatingAdmissionPolicies (cluster-wide, for the members
of the group in every namespace) that let them change only what
kubectl-intercept changes. Nothing is sent to the cluster.

The policy admits one sidecar image, exactly: the one intercept uses by
default (` + version.ProxyImage() + `), or --proxy-image. Render and apply it
again when the developers move to another release. See docs/security.md for
what the policy confines and what it cannot.`,
		Example:       rbacExample,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmdutil.RunSteps(cmd.Context(), o.Complete, o.Validate, func(context.Context) error { return o.Run() })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Group, "group", o.Group, "the group of developers: bound to the Role, confined by the policy")
	fl.StringVar(&o.ProxyImage, "proxy-image", "", "the sidecar image the policy admits (default: $"+cmdutil.EnvProxyImage+", else "+version.ProxyImage()+")")
	fl.StringVarP(&o.Output, "output", "o", o.Output, "yaml or json")
	for _, name := range []string{"group", "proxy-image"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Complete takes the namespace from -n (a Role printed for a namespace
// nobody named would be a surprise) and the image, without the cluster.
func (o *RBACOptions) Complete() error {
	ns := o.f.Namespace
	if fl := o.f.ConfigFlags; fl != nil && fl.Namespace != nil && *fl.Namespace != "" {
		ns = *fl.Namespace
	}
	o.ProxyImage = cmdutil.ProxyImage(o.ProxyImage)
	o.rbac = rbacobj.Options{Namespace: ns, Group: o.Group, ProxyImage: o.ProxyImage}
	return nil
}

// Validate checks the flags without the network.
func (o *RBACOptions) Validate() error {
	if o.Output != "yaml" && o.Output != "json" {
		return fmt.Errorf("-o %s: rbac prints yaml or json", o.Output)
	}
	if o.rbac.Namespace == "" {
		return errors.New("give the namespace where the group may intercept with -n NAMESPACE")
	}
	return o.rbac.Validate()
}

// Run prints the objects.
func (o *RBACOptions) Run() error {
	out, err := o.rbac.YAML()
	if o.Output == "json" {
		out, err = o.rbac.JSON()
	}
	if err != nil {
		return fmt.Errorf("rendering the Role and the policy: %w", err)
	}
	_, err = o.Out.Write(out)
	return err
}
