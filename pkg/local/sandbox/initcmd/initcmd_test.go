package initcmd

import (
	"os"
	"runtime"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// runInit makes the test binary run the command as the plugin would.
const runInit = "run-init"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == runInit {
		cmd := NewCmdInit()
		cmd.SetArgs(os.Args[2:])
		_ = cmd.Execute()
		os.Exit(1) // RunInit exits itself
	}
	os.Exit(m.Run())
}

// The hidden command is the sandbox's first process: its trial run (the
// namespaces, a TUN device, a mount) passes where the kernel allows it.
func TestInitCommandProbe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the sandbox is Linux's")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Check([]string{self, runInit}); err != nil {
		t.Errorf("the sandbox's trial run through the hidden command: %v", err)
	}
	if c := NewCmdInit(); !c.Hidden || c.Use != sandbox.InitCommand {
		t.Errorf("the command is %q, hidden %v", c.Use, c.Hidden)
	}
}
