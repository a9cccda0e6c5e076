package local

import (
	"os"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// The test binary is also the sandbox's first process, as the plugin is
// (sandbox.Check and Start re-execute /proc/self/exe), and the small
// programs the sandbox tests run inside it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case sandbox.InitCommand:
			sandbox.RunInit(os.Args[2:])
		case insideCommand:
			os.Exit(inside(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}
