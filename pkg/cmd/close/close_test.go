package close

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden" // -update, which go test ./pkg/cmd/... passes to every package

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podfiles"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/procid"
)

// The test binary doubles as an intercept's process: with
// CLI_HOLDER_HELPER set it makes itself provable in the state directory,
// prints its identity and waits for SIGTERM, as a background intercept
// does.
func TestMain(m *testing.M) {
	if os.Getenv("CLI_HOLDER_HELPER") != "" {
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		id, err := local.ProcessIdentity()
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		_ = json.NewEncoder(os.Stdout).Encode(id)
		select {
		case <-term:
			os.Exit(0)
		case <-time.After(time.Minute):
			os.Exit(3)
		}
	}
	os.Exit(m.Run())
}

// startHolder runs a process that holds an intercept of this machine.
func startHolder(t *testing.T) (procid.Identity, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CLI_HOLDER_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var id procid.Identity
	if err := json.NewDecoder(out).Decode(&id); err != nil {
		t.Fatalf("the holder said nothing: %v", err)
	}
	return id, cmd
}

// startStranger runs a process that has nothing to do with intercepts
// but whose command line says kubectl-intercept: sleep, run under that
// name.
func startStranger(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("bash", "-c", "exec -a kubectl-intercept sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if info, err := procid.Of(cmd.Process.Pid); err == nil && strings.Contains(info.Exe, "sleep") {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("the stranger did not become sleep")
		}
	}
}

// stillRuns tells whether cmd's process runs (not ended, not a zombie).
func stillRuns(cmd *exec.Cmd) bool {
	_, err := procid.Of(cmd.Process.Pid)
	return err == nil
}

// bareClose runs `kubectl intercept close` without an argument against a
// cluster that knows nothing, and returns what it printed.
func bareClose(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	o := &CloseOptions{f: &factory.Factory{Context: "dev", Client: fake.NewClientset()},
		IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &out}, Timeout: 5 * time.Second}
	_ = o.Run(context.Background())
	return out.String()
}

func recordHolder(t *testing.T, svc string, pid int, id *procid.Identity) local.Intercept {
	t.Helper()
	li := local.Intercept{Context: "dev", Namespace: "shop", Service: svc, Session: "abc123", PID: pid, Started: recordedAt, Process: id}
	if err := local.Remember(li.Key(), li); err != nil {
		t.Fatal(err)
	}
	return li
}

// A record whose pid now belongs to an unrelated process (the intercept's
// process died, the pid was given to another): bare close signals
// nothing, says what runs at the pid, and the process runs on.
func TestBareCloseLeavesAStrangerAtTheRecordedPid(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	id, holder := startHolder(t)
	_ = holder.Process.Kill()
	_ = holder.Wait()
	stranger := startStranger(t)
	id.PID = stranger.Process.Pid
	recordHolder(t, "web", id.PID, &id)

	out := bareClose(t)
	for _, want := range []string{"pid " + strconv.Itoa(id.PID) + " now belongs to", "sleep", "left alone"} {
		if !strings.Contains(out, want) {
			t.Errorf("bare close does not say %q:\n%s", want, out)
		}
	}
	if !stillRuns(stranger) {
		t.Fatalf("bare close ended an unrelated process:\n%s", out)
	}
}

// A record that names a running pid without proof (an older record) or
// with a token the process does not hold: nothing is signaled, the
// record is kept, and the user is told what was found and what to do.
func TestBareCloseSignalsNothingUnproven(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	stranger := startStranger(t)
	recordHolder(t, "web", stranger.Process.Pid, nil)
	id, holder := startHolder(t)
	forged := id
	forged.Token = strings.Repeat("0f", 32)
	recordHolder(t, "api", id.PID, &forged)

	out := bareClose(t)
	for _, want := range []string{
		"pid " + strconv.Itoa(stranger.Process.Pid) + " (", "no proof of identity", "nothing was signaled",
		"pid " + strconv.Itoa(id.PID) + " (", "identity socket", "kill " + strconv.Itoa(id.PID),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bare close does not say %q:\n%s", want, out)
		}
	}
	if !stillRuns(stranger) || !stillRuns(holder) {
		t.Fatalf("bare close signaled an unproven process:\n%s", out)
	}
	if got, _ := local.List("dev"); len(got) != 2 {
		t.Fatalf("the records of unproven processes are gone: %+v", got)
	}
}

// A stale record (its process died, nobody has the pid) is cleaned up
// without a word about a process; the genuine holder is proven, ends on
// SIGTERM, and its record is gone.
func TestBareCloseEndsTheProvenHolderAndStaleRecords(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	recordHolder(t, "old", dead.Process.Pid, &procid.Identity{PID: dead.Process.Pid, Start: "1", Exe: "/x", Token: strings.Repeat("aa", 32)})
	id, holder := startHolder(t)
	li := recordHolder(t, "web", id.PID, &id)
	if !li.Held() {
		t.Fatal("the genuine holder is not proven")
	}

	out := bareClose(t)
	if strings.Contains(out, "left alone") || strings.Contains(out, "does not prove") {
		t.Errorf("bare close doubts a genuine holder or a dead pid:\n%s", out)
	}
	done := make(chan error, 1)
	go func() { done <- holder.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the holder did not end on SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("bare close did not end the genuine holder:\n%s", out)
	}
	if _, err := os.Stat(procid.SocketPath(local.StateDir(), id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the holder's identity socket is left: %v", err)
	}
}

// close svc/NAME and the already-running check go by the pid file, which
// proves its process the same way: a stranger at its pid is neither
// "already running" nor signaled.
func TestPidFileOfAStranger(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	id, _ := startHolder(t)
	key := local.StateKey("dev", "shop", "web")
	write := func(id procid.Identity) {
		b, _ := json.Marshal(id)
		if err := os.WriteFile(filepath.Join(local.StateDir(), key+".pid"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(id)
	if local.RunningPid(key) != id.PID {
		t.Fatal("the genuine background process is not found running")
	}
	stranger := startStranger(t)
	id.PID = stranger.Process.Pid
	write(id)
	if pid := local.RunningPid(key); pid != 0 {
		t.Fatalf("a stranger is taken for the background intercept (pid %d)", pid)
	}
	stopped, err := local.StopBackground(key, 5*time.Second)
	if stopped || err == nil || !strings.Contains(err.Error(), "now belongs to") {
		t.Fatalf("stopBackground: %v, %v", stopped, err)
	}
	if !stillRuns(stranger) {
		t.Fatal("stopBackground ended an unrelated process")
	}
	// An older pid file, a bare pid of a running process: named, not signaled.
	if err := os.WriteFile(filepath.Join(local.StateDir(), key+".pid"), []byte(strconv.Itoa(stranger.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if stopped, err := local.StopBackground(key, 5*time.Second); stopped || err == nil || !strings.Contains(err.Error(), "nothing was signaled") {
		t.Fatalf("stopBackground of an older pid file: %v, %v", stopped, err)
	}
	if !stillRuns(stranger) {
		t.Fatal("stopBackground ended an unrelated process")
	}
}

var recordedAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// An intercept with --mount (or --sandbox, whose files go to a private
// directory recorded the same way) crashed: its files (a token among
// them) stay on disk with their record. `close` without an argument,
// which cleans up after crashed intercepts, removes them, and so does
// `close svc/NAME`.
func TestCloseRemovesACrashedMount(t *testing.T) {
	for _, service := range []string{"", "web"} {
		name := "close"
		if service != "" {
			name += " svc/" + service
		}
		t.Run(name, func(t *testing.T) {
			root, mountRecord := crashedMount(t)
			var out, errOut bytes.Buffer
			o := &CloseOptions{f: &factory.Factory{Context: "dev", Namespace: "shop", Client: fake.NewClientset()},
				IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}, Timeout: 5 * time.Second,
				Namespace: "shop", Service: service}
			if err := o.Run(context.Background()); err != nil {
				t.Fatalf("%s: %v\n%s%s", name, err, out.String(), errOut.String())
			}
			if _, err := os.Stat(root); !os.IsNotExist(err) {
				t.Errorf("%s left the crashed intercept's files at %s (%v)\n%s%s", name, root, err, out.String(), errOut.String())
			}
			if _, err := os.Stat(mountRecord); !os.IsNotExist(err) {
				t.Errorf("%s left the mount record: %v", name, err)
			}
		})
	}
}

// crashedMount leaves what a crashed intercept of shop/web with --mount
// leaves: its record, its files and the files' record.
func crashedMount(t *testing.T) (root, mountRecord string) {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	crashed := exec.Command("sh", "-c", "exit 0")
	if err := crashed.Run(); err != nil {
		t.Fatal(err)
	}
	pid := crashed.Process.Pid
	li := local.Intercept{Context: "dev", Namespace: "shop", Service: "web", Session: "abc123", PID: pid, Started: time.Now().UTC()}
	if err := local.Remember(li.Key(), li); err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(t.TempDir(), "mnt")
	tree, err := podfiles.NewTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Sync([]podfiles.File{{Path: "var/run/secrets/kubernetes.io/serviceaccount/token", Data: []byte("eyJ..."), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	// What the crashed process wrote next to its record: where its tree
	// is, the tree's mark and its pid, not this one's.
	mountRecord = filepath.Join(local.StateDir(), li.Key()+".mount")
	b := fmt.Appendf(nil, `{"root":%q,"mark":%q,"pid":%d}`, tree.Root, tree.Mark, pid)
	if err := os.WriteFile(mountRecord, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return root, mountRecord
}

func TestCloseValidate(t *testing.T) {
	if err := (&CloseOptions{Timeout: 1}).Validate(); err != nil {
		t.Errorf("close without an argument (this machine's intercepts): %v", err)
	}
	if err := (&CloseOptions{All: true, Timeout: 1, Service: "x"}).Validate(); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("close with both a Service and --all: %v", err)
	}
}
