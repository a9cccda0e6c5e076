// Command kube is every Kubernetes component the local test cluster needs, in
// one static binary, here from Kubernetes 1.37 (go.mod is written by
// ../genmod.sh; ../main.go is the same program for the default version). It
// dispatches on the name it was invoked as (symlinks in the cache's bin
// directory) or on its first argument: `kube kubelet ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

var components = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          schedulerCommand,
	"kubelet":                 kubeletCommand,
	"kube-proxy":              proxy.NewProxyCommand,
	"kubectl":                 kubectlcmd.NewDefaultKubectlCommand,
	"cri-reset":               newCRIResetCommand,
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if _, ok := components[name]; !ok {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: kube COMPONENT [flags] (components: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, cri-reset)")
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	newCmd, ok := components[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kube: unknown component %q\n", name)
		os.Exit(2)
	}
	cmd := newCmd()
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}

func schedulerCommand() *cobra.Command { return scheduler.NewSchedulerCommand() }

// kubeletCommand: the kubelet's command takes a context here (the default
// version's does not); cmd/kubelet passes context.Background() too.
func kubeletCommand() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) }
