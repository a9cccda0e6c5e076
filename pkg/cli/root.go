// Package cli holds the kubectl-intercept commands, one file each, in
// kubectl's pattern: an Options struct, NewCmdX, Complete/Validate/Run.
package cli

import (
	"context"

	"github.com/spf13/cobra"
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
	f.ConfigFlags.AddFlags(cmd.PersistentFlags())
	_ = cmd.RegisterFlagCompletionFunc("namespace", namespaceCompletion(f))
	cmd.AddCommand(
		NewCmdClose(f, streams),
		NewCmdList(f, streams),
		NewCmdStatus(f, streams),
		NewCmdDoctor(f, streams),
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
