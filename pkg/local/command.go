package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/term"
)

// ExitError ends the plugin with Code: the exit code of the command it ran
// (`-- CMD`), as a shell would give it.
type ExitError struct {
	Code int
	// Err says why, when the command could not even start.
	Err error
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("the command exited with code %d", e.Code)
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the plugin's exit code for err: the command's, or 1.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return 1
	}
	return 0
}

// CommandExit tells whether err is only the command's exit code.
func CommandExit(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Err == nil
}

// Exit codes of a command that cannot start, as shells give them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
)

// LookCommand finds the command before anything changes: one that does
// not exist is exit code 127 with the shell's words.
func LookCommand(argv []string) error {
	if _, err := exec.LookPath(argv[0]); err != nil {
		code := exitNotFound
		if errors.Is(err, os.ErrPermission) {
			code = exitNotExecutable
		}
		return &ExitError{Code: code, Err: fmt.Errorf("%s: command not found (%w); nothing was changed", argv[0], err)}
	}
	return nil
}

// Command is the developer's process, run with the pod's environment:
// on this machine, or in the sandbox.
type Command struct {
	cmd         *exec.Cmd
	done        chan struct{}
	err         error
	interactive bool
	signals     int
	// signal and kill reach the command; code is a sandboxed command's
	// exit code (cmd is nil then).
	signal func(os.Signal) error
	kill   func()
	code   int
}

// StartCommand starts argv with env, on the plugin's terminal. It stays in
// the plugin's process group, so Ctrl-C at a terminal reaches it directly.
func StartCommand(argv, env []string, in io.Reader, out, errOut io.Writer) (*Command, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, in, out, errOut
	if err := cmd.Start(); err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = exitNotFound
		}
		return nil, &ExitError{Code: code, Err: fmt.Errorf("starting %s: %w", argv[0], err)}
	}
	lc := &Command{cmd: cmd, done: make(chan struct{}), interactive: isTerminal(in), signal: cmd.Process.Signal,
		kill: func() { _ = cmd.Process.Kill() }}
	go func() {
		lc.err = cmd.Wait()
		close(lc.done)
	}()
	return lc, nil
}

// Signal passes a signal the plugin got on to the command: SIGTERM always;
// SIGINT unless the command got it from the terminal itself. A second
// signal kills it.
func (lc *Command) Signal(sig os.Signal) {
	lc.signals++
	switch {
	case lc.signals > 1:
		lc.kill()
	case sig == syscall.SIGTERM || !lc.interactive:
		_ = lc.signal(sig)
	}
}

// isTerminal says whether in is a terminal, which gives Ctrl-C to the
// command itself.
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Stop ends the command because the intercept ended: SIGTERM, then after
// 10 s SIGKILL.
func (lc *Command) Stop() {
	_ = lc.signal(syscall.SIGTERM)
	select {
	case <-lc.done:
	case <-time.After(10 * time.Second):
		lc.kill()
		<-lc.done
	}
}

// Result is the command's exit as the plugin's: nil for 0, an ExitError
// with the code (128+N for a signal N, as shells say) otherwise.
func (lc *Command) Result() error {
	if lc.cmd == nil && lc.code != 0 {
		return &ExitError{Code: lc.code}
	}
	if lc.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(lc.err, &ee) {
		return &ExitError{Code: 1, Err: lc.err}
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	return &ExitError{Code: code}
}

// Done is closed once the command has exited.
func (lc *Command) Done() <-chan struct{} { return lc.done }

// ErrAlreadyReported ends the plugin with a failure whose message was
// printed already (by the background process, or in a report).
var ErrAlreadyReported = errors.New("")

// IsAlreadyReported tells main not to print the error again.
func IsAlreadyReported(err error) bool {
	var ee *ExitError
	return errors.Is(err, ErrAlreadyReported) || (errors.As(err, &ee) && ee.Err == nil)
}
