// Package version is `kubectl intercept version`.
package version

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	buildinfo "github.com/kubectl-intercept/kubectl-intercept/pkg/version"
)

// NewCmdVersion builds `kubectl intercept version`.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl-intercept and of the sidecar image it uses",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(streams.Out, "kubectl-intercept %s (commit %s)\nproxy image: %s\n", buildinfo.Version, buildinfo.Commit, buildinfo.ProxyImage())
		},
	}
}
