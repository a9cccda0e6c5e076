// Command kubectl-intercept is the kubectl plugin: `kubectl intercept`.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // cloud auth providers in kubeconfigs

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/root"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
)

func main() {
	cmd := root.NewCmdRoot(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		if !local.IsAlreadyReported(err) {
			fmt.Fprintln(os.Stderr, "error:", cmdutil.ErrorText(err))
		}
		os.Exit(local.ExitCode(err))
	}
}
