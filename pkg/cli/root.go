// Package cli holds the kubectl-intercept commands, one file each, in
// kubectl's pattern: an Options struct, NewCmdX, Complete/Validate/Run.
package cli

import (
	"context"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/factory"
)

// NewCmdRoot builds `kubectl intercept` and its subcommands, with cobra's
// `completion` command for shell completion scripts.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	return NewCmdRootFor(factory.New(genericclioptions.NewConfigFlags(true)), streams)
}

// NewCmdRootFor is NewCmdRoot over a factory of the caller's (tests give
// one whose clients are fakes).
func NewCmdRootFor(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := NewCmdIntercept(f, streams)
	cmd.CompletionOptions.DisableDefaultCmd = false
	addKubectlFlags(cmd, f)
	cmd.SetGlobalNormalizationFunc(czctlNames)
	_ = cmd.RegisterFlagCompletionFunc("namespace", namespaceCompletion(f))
	cmd.AddCommand(
		NewCmdClose(f, streams),
		NewCmdList(f, streams),
		NewCmdStatus(f, streams),
		NewCmdDoctor(f, streams),
		NewCmdRBAC(f, streams),
		NewCmdVersion(streams),
	)
	return cmd
}

// runSteps runs a command in kubectl's order: check and fill in what the
// flags say (no network call before the work starts), then run.
func runSteps(ctx context.Context, check, fill func() error, run func(context.Context) error) error {
	if err := check(); err != nil {
		return err
	}
	if err := fill(); err != nil {
		return err
	}
	return run(ctx)
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
