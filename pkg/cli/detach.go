package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Without -w the intercept runs on in a background process that holds the
// tunnels; the command returns once the intercept is active. The process is
// found again by a pid file named after the context, namespace and Service.

const readyMarker = "\x00ready"

// stateDir is where pid files and logs of background intercepts live.
func stateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kubectl-intercept")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kubectl-intercept")
	}
	return filepath.Join(home, ".local", "state", "kubectl-intercept")
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// stateKey names the files of the background intercept of a Service in a
// kubeconfig context.
func stateKey(kubeContext, ns, svc string) string {
	return unsafeChars.ReplaceAllString(kubeContext+"_"+ns+"_"+svc, "-")
}

// detach re-runs this command in the background with --detached, relays its
// progress until it reports the intercept active (or fails), and returns.
func detach(key string, out, errOut io.Writer) error {
	dir := stateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s for the background intercept: %w", dir, err)
	}
	if pid := runningPid(key); pid > 0 {
		return fmt.Errorf("an intercept of this Service from this machine is already running (pid %d); end it with `kubectl intercept close`, or run with -c", pid)
	}
	logPath := filepath.Join(dir, key+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append(os.Args[1:], "--detached")...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = detachedAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the background intercept: %w", err)
	}
	pw.Close()
	pidPath := filepath.Join(dir, key+".pid")
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if line == readyMarker {
			fmt.Fprintf(out, "The intercept runs in the background (pid %d, log %s).\n", cmd.Process.Pid, logPath)
			_ = cmd.Process.Release()
			return nil
		}
		if strings.HasPrefix(line, "E ") {
			fmt.Fprintln(errOut, line[2:])
		} else {
			fmt.Fprintln(out, strings.TrimPrefix(line, "I "))
		}
	}
	err = cmd.Wait()
	os.Remove(pidPath)
	if err != nil {
		return errAlreadyReported
	}
	return errors.New("the background intercept ended before it was active")
}

// errAlreadyReported ends the command with a failure whose message the
// background process has printed already.
var errAlreadyReported = errors.New("")

// IsAlreadyReported tells main not to print the error again.
func IsAlreadyReported(err error) bool {
	var ee *ExitError
	return errors.Is(err, errAlreadyReported) || (errors.As(err, &ee) && ee.Err == nil)
}

// detachedProgress writes progress to the parent through fd 3 (prefixed by
// stream) until ready is called, then to the log (stdout).
func detachedProgress(quiet bool) (p *progress, ready func()) {
	relay := &relayWriter{pipe: os.NewFile(3, "progress")}
	return newProgress(&prefixWriter{w: relay, prefix: "I "}, &prefixWriter{w: relay, prefix: "E "}, quiet), relay.ready
}

type relayWriter struct {
	mu   sync.Mutex
	pipe *os.File
}

func (r *relayWriter) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pipe != nil {
		if _, err := r.pipe.Write(b); err == nil {
			return len(b), nil
		}
	}
	return os.Stdout.Write(b)
}

// ready tells the parent the intercept is active; from then on progress
// goes to the log.
func (r *relayWriter) ready() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pipe != nil {
		fmt.Fprintln(r.pipe, readyMarker)
		r.pipe.Close()
		r.pipe = nil
	}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// runningPid returns the pid of the background intercept for key, or 0.
func runningPid(key string) int {
	b, err := os.ReadFile(filepath.Join(stateDir(), key+".pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !ourProcess(pid, "--detached") {
		return 0
	}
	return pid
}

// ourProcess tells whether pid runs and is a kubectl-intercept whose
// command line has want (a pid may have been reused by something else).
func ourProcess(pid int, want string) bool {
	if pid <= 0 || !alive(pid) {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return len(cmdline) == 0 || strings.Contains(string(cmdline), want)
}

// stopBackground ends the background intercept for key, if there is one,
// and waits for it to clean up.
func stopBackground(key string, timeout time.Duration) (bool, error) {
	pid := runningPid(key)
	defer os.Remove(filepath.Join(stateDir(), key+".pid"))
	if pid == 0 {
		return false, nil
	}
	return stopProcess(pid, timeout)
}

// stopProcess asks an intercept's process to end (it leaves as on Ctrl-C)
// and waits for it.
func stopProcess(pid int, timeout time.Duration) (bool, error) {
	if err := terminate(pid); err != nil {
		return false, nil
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true, fmt.Errorf("the intercept's process (pid %d) did not end within %s", pid, timeout)
}
