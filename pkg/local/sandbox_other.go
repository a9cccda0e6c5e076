//go:build !linux

package local

import (
	"context"
	"io"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// startSandboxed fails where there is no sandbox (PrepareSandbox has said
// so before anything changed).
func (ls *Setup) startSandboxed(context.Context, []string, []string, io.Reader, io.Writer, io.Writer) (*Command, error) {
	return nil, &ExitError{Code: 1, Err: sandbox.Check(nil)}
}
