package local

import (
	"bufio"
	"encoding/json"
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

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/procid"
)

// Without -w the intercept runs on in a background process that holds the
// tunnels; the command returns once the intercept is active. The process is
// found again by a pid file named after the context, namespace and Service.

const readyMarker = "\x00ready"

// identityMarker starts the line in which the background process tells
// its procid.Identity, for the pid file.
const identityMarker = "\x00id "

// StateDir is where pid files and logs of background intercepts live.
func StateDir() string {
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

// StateKey names the files of the background intercept of a Service in a
// kubeconfig context.
func StateKey(kubeContext, ns, svc string) string {
	return unsafeChars.ReplaceAllString(kubeContext+"_"+ns+"_"+svc, "-")
}

// Detach re-runs this command in the background with --detached, relays its
// progress until it reports the intercept active (or fails), and returns.
func Detach(key string, out, errOut io.Writer) error {
	dir, err := PrivateStateDir()
	if err != nil {
		return fmt.Errorf("the background intercept needs a private state directory: %w", err)
	}
	if pid := RunningPid(key); pid > 0 {
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
	// Until the process says who it is, the pid file holds its pid only:
	// enough to name it, never to signal it.
	writeIdentity := func(id procid.Identity) error {
		b, err := json.Marshal(id)
		if err != nil {
			return err
		}
		return os.WriteFile(pidPath, b, 0o600)
	}
	if err := writeIdentity(procid.Identity{PID: cmd.Process.Pid}); err != nil {
		return err
	}
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, identityMarker); ok {
			var id procid.Identity
			if json.Unmarshal([]byte(rest), &id) == nil && id.PID == cmd.Process.Pid {
				if err := writeIdentity(id); err != nil {
					fmt.Fprintf(errOut, "recording the background intercept's identity: %v\n", err)
				}
			}
			continue
		}
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
		return ErrAlreadyReported
	}
	return errors.New("the background intercept ended before it was active")
}

// DetachedOutput is where the background process writes its progress:
// to the parent through fd 3 (prefixed by stream) until ready is called,
// then to the log (stdout). It first tells the parent this process's
// identity, for the pid file; idErr says why it could not.
func DetachedOutput() (out, errOut io.Writer, ready func(), idErr error) {
	relay := &relayWriter{pipe: os.NewFile(3, "progress")}
	out, errOut = &prefixWriter{w: relay, prefix: "I "}, &prefixWriter{w: relay, prefix: "E "}
	id, err := ProcessIdentity()
	if err != nil {
		return out, errOut, relay.ready, err
	}
	if b, err := json.Marshal(id); err == nil {
		_, _ = relay.Write([]byte(identityMarker + string(b) + "\n"))
	}
	return out, errOut, relay.ready, nil
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

// Which process holds an intercept is proven, never assumed from a pid: a
// pid is reused once its process ends, and signaling it then ends a
// stranger. The records (the pid file of a background intercept, the JSON
// record of every intercept) keep the holder's procid.Identity; the holder
// answers for it on a socket in the private state directory.

var (
	selfOnce sync.Once
	selfID   *procid.Identity
	selfErr  error
)

// ProcessIdentity makes this process provable, once, and is what its
// records keep; nil (and why) when it cannot be.
func ProcessIdentity() (*procid.Identity, error) {
	selfOnce.Do(func() {
		dir, err := PrivateStateDir()
		if err != nil {
			selfErr = err
			return
		}
		procid.Sweep(dir)
		s, err := procid.Serve(dir)
		if err != nil {
			selfErr = fmt.Errorf("this process cannot prove it holds the intercept (%w): `kubectl intercept close` will not end it", err)
			return
		}
		id := s.Identity()
		selfID = &id
	})
	return selfID, selfErr
}

// PrivateStateDir is the state directory, created if need be, once it is
// known to be this user's alone: records and identity sockets in a
// directory another user can write would be theirs to forge.
func PrivateStateDir() (string, error) {
	dir := StateDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := checkPrivate(dir); err != nil {
		return "", fmt.Errorf("%s is not private to you (%w): move it away or set XDG_STATE_HOME to a directory of your own", dir, err)
	}
	return dir, nil
}

// readIdentity reads a background intercept's pid file: a procid.Identity
// in JSON; an older file (a bare pid) yields only the pid.
func readIdentity(key string) (procid.Identity, bool) {
	b, err := os.ReadFile(filepath.Join(StateDir(), key+".pid"))
	if err != nil {
		return procid.Identity{}, false
	}
	var id procid.Identity
	if json.Unmarshal(b, &id) == nil && id.PID > 0 {
		return id, true
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
		return procid.Identity{PID: pid}, true
	}
	return procid.Identity{}, false
}

// checkProcess says what runs at the process recorded as id.
func checkProcess(id procid.Identity) procid.Finding {
	return procid.Check(StateDir(), id)
}

// RunningPid returns the pid of the background intercept for key, when it
// is proven to run; else 0.
func RunningPid(key string) int {
	id, ok := readIdentity(key)
	if !ok || checkProcess(id).Verdict != procid.Ours {
		return 0
	}
	return id.PID
}

// Held tells whether the process recorded in li is proven to hold it now.
func (li Intercept) Held() bool {
	id, ok := li.identity()
	return ok && checkProcess(id).Verdict == procid.Ours
}

// Ended tells whether the process that held li is proven to have ended:
// no process has its pid, or another one has it since. What it left on
// this machine may then be removed.
func (li Intercept) Ended() bool {
	id, ok := li.identity()
	if !ok {
		return true
	}
	v := checkProcess(id).Verdict
	return v == procid.Gone || v == procid.Other
}

// identity is the recorded holder of li: its Identity, or, in a record of
// an older version, only its pid.
func (li Intercept) identity() (procid.Identity, bool) {
	if li.Process != nil && li.Process.PID == li.PID {
		return *li.Process, true
	}
	return procid.Identity{PID: li.PID}, li.PID > 0
}

// StopBackground ends the background intercept for key, if there is one
// proven to be ours, and waits for it to clean up. A pid file whose pid is
// not proven ours is left alone (and said so through the error).
func StopBackground(key string, timeout time.Duration) (bool, error) {
	id, ok := readIdentity(key)
	if !ok {
		return false, nil
	}
	stopped, gone, err := stopProven(id, timeout)
	if gone {
		os.Remove(filepath.Join(StateDir(), key+".pid"))
	}
	return stopped, err
}

// StopRecorded ends the process recorded as holding li if it is proven to
// be the one that started it. gone says the intercept's process no longer
// runs (it ended now or before), so what it left in the cluster may be
// cleaned up; false with a nil error never happens: a process that may be
// the holder but does not prove it is left alone, with the error saying
// what was found.
func StopRecorded(li Intercept, timeout time.Duration) (stopped, gone bool, err error) {
	id, ok := li.identity()
	if !ok {
		return false, true, nil
	}
	return stopProven(id, timeout)
}

// stopProven signals the process recorded as id only once it is proven to
// be that process (procid.Check), then waits for it to end.
func stopProven(id procid.Identity, timeout time.Duration) (stopped, gone bool, err error) {
	f := checkProcess(id)
	switch f.Verdict {
	case procid.Gone:
		removeSocket(id)
		return false, true, nil
	case procid.Other:
		removeSocket(id)
		return false, true, fmt.Errorf("the recorded intercept process has ended, and its pid %d now belongs to %s (%s): left alone", id.PID, f.Found.What(), f.Why)
	case procid.Unproven:
		return false, false, fmt.Errorf("pid %d (%s) was recorded as the intercept's process but does not prove it: %s; nothing was signaled. If it is yours, end it (kill %d) and run close again",
			id.PID, f.Found.What(), f.Why, id.PID)
	}
	if err := procid.Terminate(id); err != nil {
		if errors.Is(err, procid.ErrNoProcess) {
			return false, true, nil
		}
		return false, false, fmt.Errorf("ending the intercept's process (pid %d): %w", id.PID, err)
	}
	if !procid.WaitGone(id, timeout) {
		return true, false, fmt.Errorf("the intercept's process (pid %d) did not end within %s", id.PID, timeout)
	}
	removeSocket(id)
	return true, true, nil
}

// removeSocket removes the identity socket of a process that has ended.
func removeSocket(id procid.Identity) {
	if id.Token != "" {
		_ = os.Remove(procid.SocketPath(StateDir(), id))
	}
}
