// Package cli holds the kubectl-intercept commands, one file each, in
// kubectl's pattern: an Options struct, NewCmdX, Complete/Validate/Run.
package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewCmdRoot builds `kubectl intercept` and its subcommands, with cobra's
// `completion` command for shell completion scripts.
func NewCmdRoot(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := NewCmdIntercept(flags, streams)
	cmd.CompletionOptions.DisableDefaultCmd = false
	flags.AddFlags(cmd.PersistentFlags())
	_ = cmd.RegisterFlagCompletionFunc("namespace", namespaceCompletion(flags))
	cmd.AddCommand(
		NewCmdClose(flags, streams),
		NewCmdList(flags, streams),
		NewCmdStatus(flags, streams),
		NewCmdDoctor(flags, streams),
		NewCmdVersion(streams),
	)
	return cmd
}
