// Package initcmd is the plugin's hidden entry point for the sandbox's
// first process: the plugin re-executes itself with sandbox.InitCommand
// inside the namespaces it creates.
package initcmd

import (
	"github.com/spf13/cobra"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// NewCmdInit is `kubectl-intercept __sandbox-init`: never typed by a
// person, hidden from help and completion.
func NewCmdInit() *cobra.Command {
	return &cobra.Command{
		Use:                sandbox.InitCommand,
		Short:              "The sandbox's first process (run by the plugin itself)",
		Hidden:             true,
		DisableFlagParsing: true,
		SilenceUsage:       true,
		Run:                func(_ *cobra.Command, args []string) { sandbox.RunInit(args) },
	}
}
