// Package completion answers the shell's completion requests: Services,
// their ports and namespaces, read from the cluster the flags name.
package completion

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
)

// Shell completion. cobra's `completion bash|zsh|fish|powershell` prints
// the scripts; the functions here answer the `__complete` requests they
// make, which kubectl (1.26 and later) also makes through the
// kubectl_complete-intercept script for `kubectl intercept <TAB>`. A
// completion that fails offers nothing and prints nothing.

// completionTimeout bounds the cluster requests of one completion, so a
// cluster out of reach does not hang the shell.
const completionTimeout = 5 * time.Second

// completeWith runs a completion against the cluster and namespace the
// flags typed so far name (-n, else the context's), offering nothing when
// it cannot connect.
func completeWith(f *factory.Factory, complete func(ctx context.Context, cs kubernetes.Interface, ns string) []string) ([]string, cobra.ShellCompDirective) {
	c, err := f.ForCompletion(completionTimeout)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	return complete(ctx, c.Client, c.Namespace), cobra.ShellCompDirectiveNoFileComp
}

// ServiceArg completes the Service argument of a command; with
// interceptedOnly, only Services under an intercept (for close).
func ServiceArg(f *factory.Factory, interceptedOnly bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return completeWith(f, func(ctx context.Context, cs kubernetes.Interface, ns string) []string {
			return completeServices(ctx, cs, ns, toComplete, interceptedOnly)
		})
	}
}

// RemotePort completes -r with the ports of the Service given as
// the argument.
func RemotePort(f *factory.Factory) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		name, _, _ := cmdutil.CutServicePrefix(args[0])
		return completeWith(f, func(ctx context.Context, cs kubernetes.Interface, ns string) []string {
			return completePorts(ctx, cs, ns, name, toComplete)
		})
	}
}

// Namespace completes -n with the cluster's namespaces.
func Namespace(f *factory.Factory) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return completeWith(f, func(ctx context.Context, cs kubernetes.Interface, _ string) []string {
			return completeNamespaces(ctx, cs, toComplete)
		})
	}
}

// completeServices returns the Services of ns whose names start with what
// was typed, as NAME, or as svc/NAME when svc/ (or service/, services/)
// was typed.
func completeServices(ctx context.Context, cs kubernetes.Interface, ns, toComplete string, interceptedOnly bool) []string {
	_, prefix, _ := cmdutil.CutServicePrefix(toComplete)
	if prefix == "" && strings.Contains(toComplete, "/") {
		return nil // another kind of object: nothing to offer
	}
	list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, svc := range list.Items {
		if interceptedOnly && !session.Intercepted(&svc) {
			continue
		}
		if c := prefix + svc.Name; strings.HasPrefix(c, toComplete) {
			out = append(out, c)
		}
	}
	return out
}

// completePorts returns the names and numbers of Service name's ports that
// start with what was typed, each described by the other.
func completePorts(ctx context.Context, cs kubernetes.Interface, ns, name, toComplete string) []string {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var out []string
	add := func(value, desc string) {
		if value != "" && strings.HasPrefix(value, toComplete) {
			out = append(out, cobra.CompletionWithDesc(value, desc))
		}
	}
	for _, p := range svc.Spec.Ports {
		number, proto := strconv.Itoa(int(p.Port)), string(p.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		add(p.Name, "port "+number+"/"+proto)
		if p.Name != "" {
			proto = p.Name
		}
		add(number, proto)
	}
	return out
}

// completeNamespaces returns the namespaces whose names start with what
// was typed.
func completeNamespaces(ctx context.Context, cs kubernetes.Interface, toComplete string) []string {
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, toComplete) {
			out = append(out, ns.Name)
		}
	}
	return out
}
