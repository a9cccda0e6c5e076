package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// insideCommand makes the test binary a small program run in the sandbox.
const insideCommand = "__local-test-inside"

func inside(args []string) int {
	switch args[0] {
	case "serve": // serve PORT: answer one connection with the hostname, exit 3
		ln, err := net.Listen("tcp", "127.0.0.1:"+args[1])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("listening")
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		host, _ := os.Hostname()
		fmt.Fprintf(c, "hello from %s\n", host)
		c.Close()
		return 3
	case "env": // print the environment, one variable a line
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case "sleep":
		fmt.Println("sleeping")
		time.Sleep(time.Minute)
	}
	return 0
}

func needSandbox(t *testing.T) {
	t.Helper()
	if err := sandbox.Check(nil); err != nil {
		t.Skip(err)
	}
}

// syncBuffer is a command's output, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startInSandbox starts the test binary's inside program in a sandbox
// planned as Start plans it, with this machine's port taken as
// PrepareSandbox takes it.
func startInSandbox(t *testing.T, port int, args ...string) (*Command, *syncBuffer) {
	t.Helper()
	needSandbox(t)
	o := &Options{Sandbox: true}
	if err := o.PrepareSandbox([]int{port}, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &Setup{ctx: ctx, stop: cancel, sandbox: &sandboxPlan{listeners: o.prep.listeners, cfg: sandbox.Config{
		Hostname: "web-intercept-1",
		Dial:     func(context.Context, string) (net.Conn, error) { return nil, errors.New("no cluster in this test") },
		DNS:      sandbox.DNS{Nameserver: netip.MustParseAddr("198.18.0.53"), Upstream: "dns.test:53"},
	}}}
	t.Cleanup(func() { ls.Stop(); o.ReleaseSandbox() })
	self := binaryOutsideTmp(t)
	out := &syncBuffer{}
	lc, err := ls.StartCommand(append([]string{self, insideCommand}, args...), []string{"PATH=/usr/bin:/bin"}, nil, out, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lc.kill()
		<-lc.Done()
	})
	return lc, out
}

// binaryOutsideTmp is a copy of the test binary outside /tmp (where go
// test builds it), which the sandbox replaces with an empty one.
func binaryOutsideTmp(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "local-test-") //nolint:usetesting // t.TempDir is under /tmp
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "local.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// An intercepted request arrives at this machine's -l port and reaches
// the command's listener on the sandbox's loopback, where the hostname is
// the pod's; the command's exit code is the plugin's.
func TestSandboxedCommandServesTheLocalPort(t *testing.T) {
	port := freePort(t)
	lc, out := startInSandbox(t, port, "serve", fmt.Sprint(port))
	var answer string
	deadline := time.Now().Add(20 * time.Second)
	for answer == "" && time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			t.Fatalf("this machine's port %d: %v", port, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		answer, _ = bufio.NewReader(c).ReadString('\n')
		c.Close()
		if answer == "" { // the command does not listen yet
			time.Sleep(50 * time.Millisecond)
		}
	}
	if answer != "hello from web-intercept-1\n" {
		t.Fatalf("through localhost:%d: %q; the command said %q", port, answer, out.String())
	}
	select {
	case <-lc.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not exit")
	}
	if code := ExitCode(lc.Result()); code != 3 {
		t.Errorf("exit code %d, want the command's 3", code)
	}
}

// Ctrl-C reaches the command in the sandbox (not from a terminal: passed
// on); its exit is the plugin's, as a shell gives it (130).
func TestSandboxedCommandGetsCtrlC(t *testing.T) {
	lc, out := startInSandbox(t, freePort(t), "sleep")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "sleeping") {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not start: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lc.Signal(syscall.SIGINT)
	select {
	case <-lc.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not end on SIGINT")
	}
	if code := ExitCode(lc.Result()); code != 130 {
		t.Errorf("exit code %d, want 130 (SIGINT)", code)
	}
}

// Before the command listens inside, a request that arrives here is
// answered 502 with the reason, as the front answers when nothing
// listens on this machine.
func TestSandboxNothingListens(t *testing.T) {
	port := freePort(t)
	_, out := startInSandbox(t, port, "sleep")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "sleeping") {
		if time.Now().After(deadline) {
			t.Fatalf("the command did not start: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), fmt.Sprintf("nothing answers on 127.0.0.1:%d inside the sandbox", port)) {
		t.Errorf("a request before the command listens: %d %q", resp.StatusCode, body)
	}
}

// A -l port something else holds here is refused before anything changes
// in the cluster, with what to do.
func TestPrepareSandboxPortTaken(t *testing.T) {
	needSandbox(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	o := &Options{Sandbox: true}
	err = o.PrepareSandbox([]int{port}, false)
	if err == nil || !strings.Contains(err.Error(), "localhost:"+strconv.Itoa(port)) || !strings.Contains(err.Error(), "Nothing was changed in the cluster") {
		t.Fatalf("PrepareSandbox on a taken port: %v", err)
	}
	if err := o.PrepareSandbox([]int{port}, true); err != nil {
		t.Errorf("a dry run takes no port: %v", err)
	}
	if err := (&Options{}).PrepareSandbox([]int{port}, false); err != nil {
		t.Errorf("without --sandbox: %v", err)
	}
	unknown, err := sandbox.ParseLocal("no-such-host.invalid:5432")
	if err != nil {
		t.Fatal(err)
	}
	err = (&Options{Sandbox: true, Locals: []sandbox.Local{unknown}}).PrepareSandbox(nil, true)
	if err == nil || !strings.Contains(err.Error(), "--local no-such-host.invalid:5432: resolving no-such-host.invalid on this machine") {
		t.Errorf("a --local name this machine cannot resolve: %v", err)
	}
}

// The command in the sandbox does not get this machine's session
// variables, unless --env-allow names them, nor a TMPDIR in its /tmp; the
// pod's own variables of those names are the pod's.
func TestSandboxCommandEnvironment(t *testing.T) {
	needSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	ls := &Setup{ctx: ctx, stop: cancel, env: []podenv.Var{{Name: "TMUX", Value: "the-pod's"}}, sandbox: &sandboxPlan{envAllow: []string{"DISPLAY"}, cfg: sandbox.Config{
		Hostname: "web-intercept-1",
		Dial:     func(context.Context, string) (net.Conn, error) { return nil, errors.New("no cluster in this test") },
		DNS:      sandbox.DNS{Nameserver: netip.MustParseAddr("198.18.0.53"), Upstream: "dns.test:53"},
	}}}
	t.Cleanup(ls.Stop)
	out := &syncBuffer{}
	base := []string{"PATH=/usr/bin:/bin", "SSH_AUTH_SOCK=/tmp/ssh-XXXXabcd/agent.42", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
		"TMUX=/tmp/tmux-1000/default,1,0", "DISPLAY=:0", "TMPDIR=/tmp/user-1000"}
	lc, err := ls.StartCommand([]string{binaryOutsideTmp(t), insideCommand, "env"}, base, nil, out, out)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lc.Done():
	case <-time.After(30 * time.Second):
		lc.kill()
		t.Fatal("the command did not end")
	}
	env := "\n" + out.String()
	for _, want := range []string{"\nPATH=/usr/bin:/bin\n", "\nDISPLAY=:0\n", "\nTMUX=the-pod's\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("the command's environment lacks %q:%s", strings.TrimSpace(want), env)
		}
	}
	for _, name := range []string{"SSH_AUTH_SOCK", "DBUS_SESSION_BUS_ADDRESS", "TMPDIR"} {
		if strings.Contains(env, "\n"+name+"=") {
			t.Errorf("the command got this machine's %s:%s", name, env)
		}
	}
}
