package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func testDNS() DNS {
	return DNS{
		Nameserver: netip.MustParseAddr(fakeDNS),
		Search:     []string{fakeNS + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Options:    []string{"ndots:5"},
	}
}

// run starts cfg's command in a sandbox over the fake pod and returns its
// output and exit code.
func run(t *testing.T, p *fakePod, cfg Config) (string, int) {
	t.Helper()
	bin := testBinary(t)
	var out syncBuffer
	cfg.Stdout, cfg.Stderr = &out, &out
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/usr/bin:/bin", "T=" + bin, "GODEBUG=netdns=go"}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "backend-intercept-7d9f-x2x"
	}
	cfg.Dial, cfg.DNS = p.dial, testDNS()
	cfg.InitArgs = []string{bin, InitCommand}
	cfg.User = ordinaryUser()
	cfg.Log = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("starting the sandbox: %v\n%s", err, out.String())
	}
	werr := sb.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	} else if werr != nil {
		t.Fatalf("the sandbox: %v", werr)
	}
	return out.String(), code
}

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// A client that knows nothing of proxies reaches the cluster by address
// and by the pod's short names; the dial leaves from the pod.
func TestSandboxReachesTheClusterWithoutProxies(t *testing.T) {
	needSandbox(t)
	p := &fakePod{}
	out, code := run(t, p, Config{Argv: sh(`
echo "uid=$(id -u)"
grep CapEff /proc/self/status
echo "host=$(hostname)"
echo "processes=$(ls /proc | grep -c '^[0-9][0-9]*$')"
$T ` + clientCommand + ` dial ` + fakeBackend + `:80
$T ` + clientCommand + ` resolve backend
$T ` + clientCommand + ` dial backend:80
$T ` + clientCommand + ` dns-udp ` + fakeDNS + `:53 backend.shop.svc.cluster.local.
$T ` + clientCommand + ` dial ` + fakeRefused + `:80
$T ` + clientCommand + ` udp 10.96.0.7:9999
exit 7`)})
	t.Log(out)
	if code != 7 {
		t.Errorf("exit code %d, want the command's 7", code)
	}
	wantUID := os.Getuid()
	if u := ordinaryUser(); u != nil {
		wantUID = int(u.UID)
	}
	for _, want := range []string{
		fmt.Sprintf("uid=%d\n", wantUID),
		"host=backend-intercept-7d9f-x2x\n",
		"CapEff:\t0000000000000000\n", // none of the first process's capabilities
		`backend got "ping" from the pod, dialed as 10.96.0.5:80`,
		"\n10.96.0.5\n", // resolve backend, through the search path
		"connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the command's output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, `backend got "ping"`); n != 2 {
		t.Errorf("the backend answered %d connections, want 2 (by address and by name):\n%s", n, out)
	}
	if n := strings.Count(out, "\n10.96.0.5\n"); n != 2 {
		t.Errorf("%d answers 10.96.0.5, want 2 (Go's resolver through the search path, and a raw UDP query):\n%s", n, out)
	}
	if !strings.Contains(out, "->10.96.0.7:9999: read: connection refused") {
		t.Errorf("UDP other than DNS is not refused at once:\n%s", out)
	}
	// /proc is the PID namespace's: the first process, the shell, its
	// subshell, ls and grep (the host's has many more).
	if !strings.Contains(out, "processes=5\n") {
		t.Errorf("/proc inside does not show the sandbox's processes alone:\n%s", out)
	}
	dials := strings.Join(p.dials(), " ")
	for _, want := range []string{"10.96.0.5:80", "10.96.0.10:53", "10.96.0.6:80"} {
		if !strings.Contains(dials, want) {
			t.Errorf("the pod was not asked to dial %s (it dialed %s)", want, dials)
		}
	}
}

// getent uses the C library's resolver (nsswitch, resolv.conf), as Java,
// Python and most database drivers do.
func TestSandboxGetentResolvesThroughTheCluster(t *testing.T) {
	needSandbox(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("no getent on this machine")
	}
	p := &fakePod{}
	out, code := run(t, p, Config{Argv: []string{"getent", "hosts", "backend"}})
	if code != 0 || !strings.Contains(out, "10.96.0.5") || !strings.Contains(out, "backend.shop.svc.cluster.local") {
		t.Errorf("getent hosts backend: exit %d:\n%s", code, out)
	}
}

// readableDir is a new directory the sandbox's ordinary user can read.
func readableDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The test's own temporary directory, and the one above it.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The volumes' files are at their mountPaths, read-only, also where the
// mountPath's directories do not exist on this machine; a file replaced
// in the tree outside (as podfiles keeps it up to date) is seen inside;
// the rest of the host's files are there.
func TestSandboxFilesAtTheirMountPaths(t *testing.T) {
	needSandbox(t)
	cfgDir := filepath.Join(readableDir(t), "app")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	settings := filepath.Join(cfgDir, "settings.yaml")
	if err := os.WriteFile(settings, []byte("color: blue\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	targets := []string{"/etc/kubectl-intercept-test-app", "/kubectl-intercept-test/config"}
	for _, target := range targets {
		if _, err := os.Stat(target); err == nil {
			t.Fatalf("%s exists on this machine", target)
		}
	}
	p := &fakePod{}
	bin := testBinary(t)
	var out syncBuffer
	sb, err := Start(context.Background(), Config{
		Mounts: []Mount{{Source: cfgDir, Target: targets[0]}, {Source: cfgDir, Target: targets[1]}},
		Argv: sh(`cat /etc/kubectl-intercept-test-app/settings.yaml /kubectl-intercept-test/config/settings.yaml
echo changed > /etc/kubectl-intercept-test-app/other 2>/dev/null && echo WRITABLE
test -x /bin/sh && echo host-files-there
grep nameserver /etc/resolv.conf
echo ready
while ! grep -q red /etc/kubectl-intercept-test-app/settings.yaml; do sleep 0.05; done; echo update-seen`),
		Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out, Hostname: "pod",
		Dial: p.dial, DNS: testDNS(), InitArgs: []string{bin, InitCommand}, User: ordinaryUser(),
	})
	if err != nil {
		t.Fatalf("starting the sandbox: %v\n%s", err, out.String())
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// As podfiles writes: a new file renamed over the old.
	tmp := filepath.Join(cfgDir, ".tmp-settings")
	if err := os.WriteFile(tmp, []byte("color: red\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, settings); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sb.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the command: %v", err)
		}
	case <-time.After(20 * time.Second):
		sb.Kill()
		<-done
		t.Errorf("the update was not seen inside")
	}
	got := out.String()
	for _, want := range []string{"color: blue\ncolor: blue\n", "host-files-there", "nameserver " + fakeDNS, "update-seen"} {
		if !strings.Contains(got, want) {
			t.Errorf("the command's output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "WRITABLE") {
		t.Errorf("a volume's directory is writable inside:\n%s", got)
	}
	for _, target := range targets {
		if _, err := os.Stat(target); err == nil {
			t.Errorf("%s exists on this machine after the sandbox", target)
		}
	}
}

// Intercepted requests reach the command's listener on the sandbox's
// loopback; --local keeps this machine's loopback port and a host address
// on this machine.
func TestSandboxLoopbackAndLocal(t *testing.T) {
	needSandbox(t)
	hostOnly, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostOnly.Close()
	go answerEach(hostOnly, "this machine's own listener\n")
	hostPort := hostOnly.Addr().(*net.TCPAddr).Port
	local, err := ParseLocal(fmt.Sprintf("localhost:%d", hostPort))
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePod{}
	bin := testBinary(t)
	var out syncBuffer
	sb, err := Start(context.Background(), Config{
		Argv:  sh(fmt.Sprintf("$T %s dial 127.0.0.1:%d && exec $T %s serve 8080", clientCommand, hostPort, clientCommand)),
		Env:   []string{"PATH=/usr/bin:/bin", "T=" + bin},
		Local: []Local{local}, Stdout: &out, Stderr: &out, Hostname: "backend-copy",
		Dial: p.dial, DNS: testDNS(), InitArgs: []string{bin, InitCommand}, User: ordinaryUser(),
	})
	if err != nil {
		t.Fatalf("starting the sandbox: %v\n%s", err, out.String())
	}
	defer func() { sb.Kill(); _ = sb.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "this machine's own listener") {
		t.Errorf("--local localhost:%d did not reach this machine's listener from inside:\n%s", hostPort, out.String())
	}
	// The plugin's end of -l: a listener on this machine, joined to the
	// sandbox's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = sb.ForwardLoopback(ctx, ln, 8080) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	if string(b) != "hello from backend-copy\n" {
		t.Errorf("a request to the -l port got %q, want the command's answer", b)
	}
	if d := p.dials(); len(d) != 0 {
		t.Errorf("the pod was asked to dial %v; --local and the loopback stay on this machine", d)
	}
}

// Nothing of the sandbox outlives the plugin, even when it is killed with
// SIGKILL: its first process and the command go with it. The stand-in
// plugin runs as an ordinary user from the start (nobody, when the tests
// run as root), as the plugin does on a laptop.
func TestSandboxEndsWithThePluginKilled(t *testing.T) {
	needSandbox(t)
	bin := testBinary(t)
	plugin := exec.Command(bin, pluginCommand, bin)
	if u := ordinaryUser(); u != nil {
		plugin.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	}
	stdout, err := plugin.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	plugin.Stderr = os.Stderr
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var initPid int
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "pids %d", &initPid); err == nil {
			break
		}
		t.Log(sc.Text())
	}
	if initPid == 0 {
		_ = plugin.Process.Kill()
		_ = plugin.Wait()
		t.Fatal("the stand-in plugin did not start its sandbox")
	}
	var procs []int
	deadline := time.Now().Add(20 * time.Second)
	for len(procs) < 2 && time.Now().Before(deadline) {
		procs = descendants(initPid)
		time.Sleep(20 * time.Millisecond)
	}
	if len(procs) < 2 {
		t.Fatalf("the sandbox's processes: %v, want its first process and the command", procs)
	}
	if err := plugin.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = plugin.Wait()
	deadline = time.Now().Add(20 * time.Second)
	for {
		var alive []int
		for _, pid := range procs {
			if syscall.Kill(pid, 0) == nil && !zombie(pid) {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range alive {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("after kill -9 of the plugin, the sandbox's processes %v still run", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// descendants is pid and every process under it.
func descendants(pid int) []int {
	out := []int{pid}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			var c int
			if _, err := fmt.Sscan(s, &c); err == nil {
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// syncBuffer is a bytes.Buffer the command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// A signal the plugin passes on reaches the command, whose exit code is
// the plugin's; Stop ends a command that ignores SIGTERM.
func TestSandboxSignalsAndStop(t *testing.T) {
	needSandbox(t)
	start := func(script string) (*Sandbox, *syncBuffer) {
		t.Helper()
		bin := testBinary(t)
		p := &fakePod{}
		out := &syncBuffer{}
		sb, err := Start(context.Background(), Config{
			Argv: sh(script), Env: []string{"PATH=/usr/bin:/bin"}, Stdout: out, Stderr: out,
			Hostname: "pod", Dial: p.dial, DNS: testDNS(), InitArgs: []string{bin, InitCommand}, User: ordinaryUser(),
		})
		if err != nil {
			t.Fatalf("starting the sandbox: %v", err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "ready") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return sb, out
	}
	exitCode := func(sb *Sandbox) int {
		_ = sb.Wait()
		return sb.ExitCode()
	}
	sb, _ := start(`trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done`)
	if err := sb.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(sb); code != 42 {
		t.Errorf("after SIGTERM the exit code is %d, want the command's 42", code)
	}
	sb, _ = start(`trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	sb.Stop(200 * time.Millisecond)
	if code := exitCode(sb); code != 128+int(syscall.SIGKILL) {
		t.Errorf("a command that ignores SIGTERM, stopped: exit code %d, want %d", code, 128+int(syscall.SIGKILL))
	}
}

// IPv6 destinations go through the stack too, and --local CIDR keeps a
// host address on this machine.
func TestSandboxIPv6AndLocalCIDR(t *testing.T) {
	needSandbox(t)
	hostIP := nonLoopbackIPv4(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(hostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go answerEach(ln, "a listener of this machine's network\n")
	local, err := ParseLocal(netip.PrefixFrom(hostIP, 24).Masked().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePod{}
	out, code := run(t, p, Config{Local: []Local{local}, Argv: sh(`
$T ` + clientCommand + ` dial [fd00:10:96::5]:80
$T ` + clientCommand + ` dial ` + ln.Addr().String())})
	if code != 0 {
		t.Errorf("exit code %d:\n%s", code, out)
	}
	dials := strings.Join(p.dials(), " ")
	if !strings.Contains(dials, "[fd00:10:96::5]:80") {
		t.Errorf("the pod was not asked for [fd00:10:96::5]:80 (it dialed %s):\n%s", dials, out)
	}
	if strings.Contains(dials, hostIP.String()) {
		t.Errorf("the pod was asked to dial %s, which --local %s keeps here", hostIP, local)
	}
	if !strings.Contains(out, "a listener of this machine's network") {
		t.Errorf("--local %s did not reach %s:\n%s", local, ln.Addr(), out)
	}
}

func nonLoopbackIPv4(t *testing.T) netip.Addr {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok && !ip.IsLoopback() && n.IP.To4() != nil {
				return ip
			}
		}
	}
	t.Skip("this machine has no IPv4 address but its loopback")
	return netip.Addr{}
}

// answerEach writes line to each connection ln accepts, then closes it,
// until ln is closed: a service of this machine for the sandbox to reach,
// or not.
func answerEach(ln net.Listener, line string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprint(c, line)
		c.Close()
	}
}
