package sandbox

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
)

// The test binary's further roles for these tests (before TestMain, which
// knows the others).
const (
	seccompCommand = "__sandbox-test-seccomp"
	checkCommand   = "__sandbox-test-check"
	floodCommand   = "__sandbox-test-dnsflood"
)

func init() {
	if len(os.Args) < 3 {
		return
	}
	switch os.Args[1] {
	case seccompCommand:
		os.Exit(withoutNewMountAPI(os.Args[2]))
	case checkCommand:
		if err := Check([]string{os.Args[2], InitCommand}); err != nil {
			fmt.Println("Check failed:", err)
			os.Exit(0)
		}
		fmt.Println("Check passed")
		os.Exit(0)
	case floodCommand:
		os.Exit(dnsFlood(os.Args[2]))
	}
}

// withoutNewMountAPI makes fsopen and mount_setattr fail with ENOSYS, as
// on a kernel before 5.2 and 5.12, and runs Check.
func withoutNewMountAPI(bin string) int {
	runtime.LockOSThread()
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 2, K: unix.SYS_FSOPEN},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 1, K: unix.SYS_MOUNT_SETATTR},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println("no_new_privs:", err)
		return 1
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Println("seccomp:", err)
		return 1
	}
	err := syscall.Exec(bin, []string{bin, checkCommand, bin}, os.Environ())
	fmt.Println("exec:", err)
	return 1
}

// dnsFlood makes n lookups, each from a new socket as a stub resolver
// does, then sleeps.
func dnsFlood(arg string) int {
	var n int
	_, _ = fmt.Sscan(arg, &n)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("backend.shop.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	ok := 0
	for i := 0; i < n; i++ {
		c, err := net.Dial("udp", fakeDNS+":53")
		if err != nil {
			continue
		}
		_, _ = c.Write(q)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1500)); err == nil {
			ok++
		}
		c.Close()
	}
	fmt.Printf("%d lookups answered\n", ok)
	time.Sleep(time.Hour)
	return 0
}

// namedPod is a cluster whose DNS answers the names a test gives (FQDNs),
// and whose every other dial reaches a service that says it is the
// cluster's.
type namedPod struct {
	mu     sync.Mutex
	dialed []string
	names  map[string][4]byte
}

func (p *namedPod) dial(_ context.Context, addr string) (net.Conn, error) {
	p.mu.Lock()
	p.dialed = append(p.dialed, addr)
	p.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	a, b := net.Pipe()
	if host == fakeDNS {
		go serveNames(b, p.names)
		return a, nil
	}
	go func() {
		defer b.Close()
		line, _ := bufio.NewReader(b).ReadString('\n')
		fmt.Fprintf(b, "the cluster got %q, dialed from the pod as %s\n", strings.TrimSpace(line), addr)
	}()
	return halfCloser{a}, nil
}

// serveNames answers DNS over TCP: A records for names (lower case,
// fully qualified), NXDOMAIN else.
func serveNames(c net.Conn, names map[string][4]byte) {
	defer c.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil {
			return
		}
		qs, _ := p.AllQuestions()
		h.Response, h.RecursionAvailable = true, true
		var addr [4]byte
		known := false
		if len(qs) == 1 {
			addr, known = names[strings.ToLower(qs[0].Name.String())]
		}
		if !known {
			h.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, h)
		_ = b.StartQuestions()
		for _, qq := range qs {
			_ = b.Question(qq)
		}
		_ = b.StartAnswers()
		if known && qs[0].Type == dnsmessage.TypeA {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 30}, dnsmessage.AResource{A: addr})
		}
		a, _ := b.Finish()
		binary.BigEndian.PutUint16(n[:], uint16(len(a)))
		if _, err := c.Write(append(n[:], a...)); err != nil {
			return
		}
	}
}

// runIn starts cfg's command in a sandbox over dial and returns its output
// and exit code, or why it did not start.
func runIn(t *testing.T, dial func(context.Context, string) (net.Conn, error), cfg Config) (string, int, error) {
	t.Helper()
	bin := testBinary(t)
	var out syncBuffer
	cfg.Stdout, cfg.Stderr = &out, &out
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/usr/bin:/bin", "T=" + bin, "GODEBUG=netdns=go"}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "pod"
	}
	if !cfg.DNS.Nameserver.IsValid() {
		cfg.DNS = testDNS()
	}
	cfg.Dial = dial
	cfg.InitArgs = []string{bin, InitCommand}
	cfg.User = ordinaryUser()
	cfg.Log = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := Start(ctx, cfg)
	if err != nil {
		return out.String(), -1, err
	}
	_ = sb.Wait()
	return out.String(), sb.ExitCode(), nil
}

// hostResolver is this machine's resolver (which resolves --local names)
// answering names as a LAN's DNS would.
func hostResolver(names map[string][4]byte) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		a, b := net.Pipe()
		go serveNames(b, names)
		return a, nil
	}}
}

// A pod's volume at a program's path of this machine does not replace it:
// the developer's id is still this machine's, and nothing of the pod runs.
func TestPodVolumeCannotReplaceAProgramOfThisMachine(t *testing.T) {
	needSandbox(t)
	marks := readableDir(t)
	if err := os.Chmod(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	tools := readableDir(t)
	script := "#!/bin/sh\necho 'the pod ran this' > " + marks + "/planted\necho uid=1000\n"
	if err := os.WriteFile(filepath.Join(tools, "id"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code, err := runIn(t, (&namedPod{}).dial, Config{
		Mounts: []Mount{{Source: filepath.Join(tools, "id"), Target: "/usr/bin/id"}, {Source: filepath.Join(tools, "id"), Target: "/etc/profile.d/pod.sh"}},
		Argv:   sh(`id -u; ls /etc/profile.d/pod.sh 2>&1`)})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(marks, "planted")); err == nil {
		t.Errorf("the pod's volume replaced /usr/bin/id; running id wrote on this machine: %q", b)
	}
	want := fmt.Sprint(os.Getuid())
	if u := ordinaryUser(); u != nil {
		want = fmt.Sprint(u.UID)
	}
	if !strings.HasPrefix(out, want+"\n") || !strings.Contains(out, "No such file") || code == 0 {
		t.Errorf("exit %d, output:\n%s\nwant this machine's id (%s) and no /etc/profile.d/pod.sh", code, out, want)
	}
}

// A volume's files are read, never run: no exec, setuid or devices, also
// where the developer names the mountPath to cover this machine's file.
func TestVolumeFilesAreNotPrograms(t *testing.T) {
	needSandbox(t)
	tools := readableDir(t)
	if err := os.WriteFile(filepath.Join(tools, "tool"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := "/opt/kubectl-intercept-test-tools"
	if exists(target) {
		t.Fatalf("%s exists on this machine", target)
	}
	out, _, err := runIn(t, (&namedPod{}).dial, Config{
		Mounts: []Mount{{Source: tools, Target: target}, {Source: filepath.Join(tools, "tool"), Target: "/usr/bin/id"}},
		Cover:  []string{"/usr/bin/id"},
		Argv: sh(target + `/tool; echo "tool exit $?"; /usr/bin/id; echo "id exit $?"; head -1 /usr/bin/id
grep -E ' (` + target + `|/usr/bin/id) ' /proc/self/mountinfo | cut -d' ' -f5,6`)})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	for _, want := range []string{"tool exit 126", "id exit 126", "#!/bin/sh", target + " ro,nosuid,nodev,noexec", "/usr/bin/id ro,nosuid,nodev,noexec"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nran\n") || strings.HasPrefix(out, "ran\n") {
		t.Errorf("a volume's file ran as a program:\n%s", out)
	}
}

// A mountPath on a dangling symlink of this machine creates nothing where
// the symlink points, even when the developer names it.
func TestVolumeAtASymlinkCreatesNothingOnThisMachine(t *testing.T) {
	needSandbox(t)
	d, e := readableDir(t), readableDir(t)
	if err := os.Chmod(e, 0o777); err != nil {
		t.Fatal(err)
	}
	escaped := filepath.Join(e, "created-by-the-sandbox")
	link := filepath.Join(d, "link")
	if err := os.Symlink(escaped, link); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(readableDir(t), "settings")
	if err := os.WriteFile(src, []byte("from the pod\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	out, _, err := runIn(t, (&namedPod{}).dial, Config{Mounts: []Mount{{Source: src, Target: link}}, Cover: []string{link}, Argv: sh(`cat ` + link + `; true`)})
	t.Logf("start: %v; output: %s", err, out)
	if fi, err := os.Lstat(escaped); err == nil {
		t.Errorf("the sandbox created %s on this machine (%v)", escaped, fi.Mode())
	}
}

// Many volumes under a directory the host lacks cost a mount each, not a
// mount for every pair of them.
func TestManyVolumesUnderOneDirectory(t *testing.T) {
	needSandbox(t)
	src := readableDir(t)
	base := filepath.Join(readableDir(t), "vols")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	count := func(n int) int {
		var ms []Mount
		for i := 0; i < n; i++ {
			ms = append(ms, Mount{Source: src, Target: filepath.Join(base, fmt.Sprintf("m%d", i))})
		}
		out, _, err := runIn(t, (&namedPod{}).dial, Config{Mounts: ms, Argv: sh(`wc -l < /proc/self/mountinfo`)})
		if err != nil {
			t.Fatalf("start: %v\n%s", err, out)
		}
		var k int
		_, _ = fmt.Sscan(out, &k)
		return k
	}
	one, many := count(1), count(100)
	if many-one > 2*99 {
		t.Errorf("1 volume: %d mounts inside; 100 volumes: %d (want at most one or two more per volume)", one, many)
	}
}

// --local NAME keeps NAME on this machine: the pod's search path does not
// send it to the cluster, whatever the resolver (glibc's, Go's, a raw
// query of NAME with the search path added).
func TestLocalNameStaysOnThisMachine(t *testing.T) {
	needSandbox(t)
	hostIP := nonLoopbackIPv4(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(hostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go answerEach(ln, "this machine's database answered\n")
	port := ln.Addr().(*net.TCPAddr).Port
	local, err := ParseLocal(fmt.Sprintf("db.lan:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	p := &namedPod{names: map[string][4]byte{"db.lan.shop.svc.cluster.local.": {10, 96, 0, 66}}}
	out, _, err := runIn(t, p.dial, Config{Local: []Local{local}, Resolver: hostResolver(map[string][4]byte{"db.lan.": hostIP.As4()}), Argv: sh(fmt.Sprintf(`
echo "go: $($T %[1]s resolve db.lan)"
echo "getent: $(getent hosts db.lan)"
echo "search: $($T %[1]s dns-udp %[2]s:53 db.lan.shop.svc.cluster.local.)"
$T %[1]s dial db.lan:%[3]d`, clientCommand, fakeDNS, port))})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	for _, want := range []string{"go: " + hostIP.String() + "\n", "getent: " + hostIP.String() + " ", "search: \n", "this machine's database answered"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s\n(the pod dialed %v)", want, out, p.dialed)
		}
	}
}

// The cluster's DNS cannot point a cluster name at this machine's network
// or loopback services that --local keeps here.
func TestClusterDNSCannotSteerIntoThisMachine(t *testing.T) {
	needSandbox(t)
	hostIP := nonLoopbackIPv4(t)
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	lan, _ := ParseLocal(netip.PrefixFrom(hostIP, 24).Masked().String())
	loc, _ := ParseLocal(fmt.Sprintf("localhost:%d", lo.Addr().(*net.TCPAddr).Port))
	p := &namedPod{names: map[string][4]byte{
		"backend.shop.svc.cluster.local.":  hostIP.As4(),
		"payments.shop.svc.cluster.local.": {127, 0, 0, 1},
		"orders.shop.svc.cluster.local.":   {10, 96, 0, 8},
	}}
	// Over UDP, and over TCP (where a resolver goes for a long answer).
	for _, tcp := range []bool{false, true} {
		dns := testDNS()
		if tcp {
			dns.Options = append(dns.Options, "use-vc")
		}
		out, _, err := runIn(t, p.dial, Config{Local: []Local{lan, loc}, DNS: dns, Argv: sh(fmt.Sprintf(`
for n in backend payments orders; do echo "$n: $($T %s resolve $n)"; done`, clientCommand))})
		if err != nil {
			t.Fatalf("start: %v\n%s", err, out)
		}
		for _, want := range []string{"backend: error", "payments: error", "orders: 10.96.0.8"} {
			if !strings.Contains(out, want) {
				t.Errorf("over TCP %v: output lacks %q:\n%s", tcp, want, out)
			}
		}
	}
}

// A hostname that is not a DNS label is refused before anything of the
// sandbox is made; the pod's DNS configuration is written without its
// lines of its own.
func TestHostnameAndDNSConfigAreChecked(t *testing.T) {
	needSandbox(t)
	for _, h := range []string{"pod\n10.96.0.66\tdb.lan", strings.Repeat("a", 65)} {
		out, _, err := runIn(t, (&namedPod{}).dial, Config{Hostname: h, Argv: sh(`tail -2 /etc/hosts`)})
		if err == nil || !strings.Contains(err.Error(), "at most 63 characters") {
			t.Errorf("hostname %.20q: start %v, output %q; want it refused with the limit named", h, err, out)
		}
	}
	dns := testDNS()
	dns.Search = append(dns.Search, "corp.example\nnameserver 203.0.113.9")
	dns.Options = append(dns.Options, "rotate\nsearch attacker.example")
	out, _, err := runIn(t, (&namedPod{}).dial, Config{DNS: dns, Argv: sh(`cat /etc/resolv.conf`)})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if strings.Contains(out, "203.0.113.9") || strings.Contains(out, "attacker") || !strings.Contains(out, "nameserver "+fakeDNS) {
		t.Errorf("resolv.conf inside:\n%s", out)
	}
}

// This machine's daemons (the session's D-Bus and systemd, Docker) are
// not reachable through their socket files from inside.
func TestHostDaemonSocketsHidden(t *testing.T) {
	needSandbox(t)
	uid := os.Getuid()
	if u := ordinaryUser(); u != nil {
		uid = int(u.UID)
	}
	dir := fmt.Sprintf("/run/user/%d", uid)
	if !exists(dir) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Skipf("no %s to test with: %v", dir, err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		_ = os.Chown(dir, uid, uid)
	}
	path := filepath.Join(dir, fmt.Sprintf("test-daemon-%d.sock", os.Getpid()))
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("a socket in %s: %v", dir, err)
	}
	defer ln.Close()
	_ = os.Chown(path, uid, uid)
	go answerEach(ln, "a daemon of this machine answered\n")
	out, _, err := runIn(t, (&namedPod{}).dial, Config{Argv: sh(`python3 -c "
import socket,sys
s=socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print(s.recv(100).decode())
except OSError as e:
    print('refused:', e)" ` + path + `; ls -A /run/user/` + fmt.Sprint(uid) + ` | wc -l`)})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if !strings.Contains(out, "refused:") || strings.Contains(out, "answered") {
		t.Errorf("a daemon's socket in %s inside:\n%s", dir, out)
	}
}

// The command cannot end the sandbox's first process with a signal the Go
// runtime would crash on, and no stack of it lands on the command's stderr.
func TestCommandCannotKillTheFirstProcess(t *testing.T) {
	needSandbox(t)
	bin := testBinary(t)
	var out syncBuffer
	sb, err := Start(context.Background(), Config{
		Argv: sh(`grep SigIgn /proc/self/status
for s in ABRT SEGV ILL TRAP SYS BUS FPE 16 USR1 USR2 PIPE ALRM; do kill -$s 1; done
exec $T ` + clientCommand + ` serve 8080`),
		Env:    []string{"PATH=/usr/bin:/bin", "T=" + bin},
		Stdout: &out, Stderr: &out, Hostname: "pod", Dial: (&namedPod{}).dial, DNS: testDNS(),
		InitArgs: []string{bin, InitCommand}, User: ordinaryUser(), Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sb.Kill(); _ = sb.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "listening") && time.Now().Before(deadline) {
		select {
		case <-sb.Done():
			t.Fatalf("the sandbox ended (exit %d):\n%.2000s", sb.ExitCode(), out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sb.DialLoopback(ctx, 8080)
	if err != nil {
		t.Fatalf("the first process does not answer after the signals: %v\n%.2000s", err, out.String())
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(b), "hello from pod") {
		t.Errorf("the command's listener: %q", b)
	}
	sb.Stop(5 * time.Second)
	if code := sb.ExitCode(); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d after Stop; want the command's %d", code, 128+int(syscall.SIGTERM))
	}
	if s := out.String(); strings.Contains(s, "goroutine ") || strings.Contains(s, "SIGABRT") || strings.Contains(s, "PC=") {
		t.Errorf("a stack of the first process on the command's output:\n%.2000s", s)
	}
	// The signals the first process takes and drops are not left ignored
	// for the command (others it inherits as any command does, from the
	// plugin's own parent: nohup's SIGHUP, say).
	if ignored, ok := sigIgn(out.String()); !ok {
		t.Errorf("no SigIgn line from the command:\n%.200s", out.String())
	} else {
		for _, sig := range []syscall.Signal{syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGILL, syscall.SIGTRAP,
			syscall.SIGSYS, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSTKFLT} {
			if ignored&(1<<(uint(sig)-1)) != 0 {
				t.Errorf("the command inherits %v ignored (SigIgn %016x)", sig, ignored)
			}
		}
	}
}

// sigIgn reads the mask of a "SigIgn:" line of /proc/PID/status in out.
func sigIgn(out string) (uint64, bool) {
	_, rest, ok := strings.Cut(out, "SigIgn:")
	if !ok {
		return 0, false
	}
	line, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
	mask, err := strconv.ParseUint(strings.TrimSpace(line), 16, 64)
	return mask, err == nil
}

// A kernel without the new mount API (fsopen before 5.2, mount_setattr
// before 5.12) is told by the preflight, before anything changes, rather
// than failing when the sandbox starts.
func TestPreflightFailsWhereStartWould(t *testing.T) {
	needSandbox(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("the seccomp filter is written for amd64 and arm64")
	}
	bin := testBinary(t)
	cmd := exec.Command(bin, seccompCommand, bin)
	if u := ordinaryUser(); u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Check failed") || !strings.Contains(string(out), "Linux 5.") {
		t.Errorf("without fsopen and mount_setattr: %s", out)
	}
}

// Each DNS lookup's socket is let go once answered: a command's lookups do
// not pile up goroutines and buffers in the plugin.
func TestDNSLookupsAreLetGo(t *testing.T) {
	needSandbox(t)
	const n = 500
	bin := testBinary(t)
	p := &namedPod{names: map[string][4]byte{"backend.shop.svc.cluster.local.": {10, 96, 0, 5}}}
	var out syncBuffer
	g0 := runtime.NumGoroutine()
	sb, err := Start(context.Background(), Config{Argv: []string{bin, floodCommand, fmt.Sprint(n)},
		Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out, Hostname: "pod", Dial: p.dial, DNS: testDNS(),
		InitArgs: []string{bin, InitCommand}, User: ordinaryUser()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sb.Kill(); _ = sb.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "answered") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("%d lookups answered", n)) {
		t.Fatalf("the lookups: %q", out.String())
	}
	deadline = time.Now().Add(10 * time.Second)
	g := runtime.NumGoroutine()
	for g > g0+100 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		g = runtime.NumGoroutine()
	}
	if g > g0+100 {
		t.Errorf("%d lookups, answered, still hold %d goroutines in the plugin", n, g-g0)
	}
}

// A connection the command left open ends on the pod's side when the
// sandbox ends: no stream through the tunnel stays behind.
func TestPodConnectionsEndWithTheSandbox(t *testing.T) {
	needSandbox(t)
	podEnd := make(chan net.Conn, 1)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "10.96.0.9:") {
			a, b := net.Pipe()
			podEnd <- b
			return halfCloser{a}, nil
		}
		return (&namedPod{}).dial(ctx, addr)
	}
	bin := testBinary(t)
	var out syncBuffer
	sb, err := Start(context.Background(), Config{Argv: []string{bin, clientCommand, "dial", "10.96.0.9:80"},
		Env: []string{"PATH=/usr/bin:/bin"}, Stdout: &out, Stderr: &out, Hostname: "pod", Dial: dial, DNS: testDNS(),
		InitArgs: []string{bin, InitCommand}, User: ordinaryUser()})
	if err != nil {
		t.Fatal(err)
	}
	var b net.Conn
	select {
	case b = <-podEnd:
	case <-time.After(20 * time.Second):
		t.Fatal("no dial from the command")
	}
	if line, _ := bufio.NewReader(b).ReadString('\n'); line != "ping\n" {
		t.Fatalf("the pod's end read %q", line)
	}
	sb.Kill()
	_ = sb.Wait()
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = b.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the pod's end of the connection is still open 10 s after the sandbox ended")
	}
}

// --local NAME:PORT where this machine's resolver gives NAME a loopback
// address (its own hostname: 127.0.1.1 on Debian and Ubuntu) reaches this
// machine's service there, not the sandbox's own loopback.
func TestLocalNameOnThisMachinesLoopback(t *testing.T) {
	needSandbox(t)
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Skipf("no 127.0.1.1 here: %v", err)
	}
	defer ln.Close()
	go answerEach(ln, "this machine's database answered\n")
	port := ln.Addr().(*net.TCPAddr).Port
	local, err := ParseLocal(fmt.Sprintf("devbox:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runIn(t, (&namedPod{}).dial, Config{Local: []Local{local}, Resolver: hostResolver(map[string][4]byte{"devbox.": {127, 0, 1, 1}}), Argv: sh(fmt.Sprintf(`$T %s dial devbox:%d`, clientCommand, port))})
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if !strings.Contains(out, "this machine's database answered") {
		t.Errorf("--local %s (127.0.1.1 on this machine): %s", local, out)
	}
}
