// Package cli holds the kubectl-intercept commands, one file each, in
// kubectl's pattern: an Options struct, NewCmdX, Complete/Validate/Run.
package root

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	closecmd "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/close"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/completion"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/doctor"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/intercept"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/list"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/rbac"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/replay"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/status"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/version"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox/initcmd"
)

// NewCmdRoot builds `kubectl intercept` and its subcommands, with cobra's
// `completion` command for shell completion scripts.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	return NewCmdRootFor(factory.New(genericclioptions.NewConfigFlags(true)), streams)
}

// NewCmdRootFor is NewCmdRoot over a factory of the caller's (tests give
// one whose clients are fakes).
func NewCmdRootFor(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := intercept.NewCmdIntercept(f, streams)
	cmd.CompletionOptions.DisableDefaultCmd = false
	addKubectlFlags(cmd, f)
	cmd.SetGlobalNormalizationFunc(czctlNames)
	_ = cmd.RegisterFlagCompletionFunc("namespace", completion.Namespace(f))
	cmd.AddCommand(
		closecmd.NewCmdClose(f, streams),
		list.NewCmdList(f, streams),
		status.NewCmdStatus(f, streams),
		doctor.NewCmdDoctor(f, streams),
		rbac.NewCmdRBAC(f, streams),
		replay.NewCmdReplay(streams),
		version.NewCmdVersion(streams),
		initcmd.NewCmdInit(), // hidden: the --sandbox namespaces' first process
	)
	return cmd
}

// addKubectlFlags adds kubectl's standard flags to every command, with
// czctl's -k for --kubeconfig.
func addKubectlFlags(cmd *cobra.Command, f *factory.Factory) {
	fs := pflag.NewFlagSet("kubectl", pflag.ContinueOnError)
	f.ConfigFlags.AddFlags(fs)
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name == "kubeconfig" {
			fl.Shorthand = "k"
		}
		cmd.PersistentFlags().AddFlag(fl)
	})
}

// czctlNames accepts czctl's spellings of the flags it shares with us.
func czctlNames(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	switch name {
	case "remotePort":
		name = "remote-port"
	case "localPort":
		name = "local-port"
	}
	return pflag.NormalizedName(name)
}
