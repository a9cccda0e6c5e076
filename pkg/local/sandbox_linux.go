package local

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// startSandboxed starts argv with env in the sandbox ls planned, and joins
// this machine's intercepted ports to the sandbox's loopback.
func (ls *Setup) startSandboxed(ctx context.Context, argv, env []string, in io.Reader, out, errOut io.Writer) (*Command, error) {
	cfg := ls.sandbox.cfg
	cfg.Argv, cfg.Env = argv, env
	cfg.Stdin, cfg.Stdout, cfg.Stderr = in, out, errOut
	sb, err := sandbox.Start(ctx, cfg)
	if err != nil {
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			return nil, &ExitError{Code: coded.ExitCode(), Err: err}
		}
		return nil, &ExitError{Code: 1, Err: err}
	}
	for port, ln := range ls.sandbox.listeners {
		go func() { _ = sb.ForwardLoopback(ls.ctx, ln, port) }()
	}
	lc := &Command{done: make(chan struct{}), interactive: isTerminal(in),
		signal: func(sig os.Signal) error {
			s, ok := sig.(syscall.Signal)
			if !ok {
				return nil
			}
			return sb.Signal(s)
		},
		kill: sb.Kill,
	}
	go func() {
		_ = sb.Wait()
		if code := sb.ExitCode(); code != 0 {
			lc.code = code
		}
		close(lc.done)
	}()
	return lc, nil
}
