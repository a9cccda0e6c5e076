//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// nobody is the ordinary user the sandbox tests run the plugin as: the
// sandbox is made without root.
const nobody = 65534

// sandboxKit is what the plugin needs to run as nobody: a copy of the e2e
// plugin, of the kubeconfig (flattened, its credentials inline) and the
// static client, in a directory nobody may enter (CI clones where nobody
// may not), and a state directory and home of nobody's.
type sandboxKit struct {
	dir, plugin, kubeconfig, client string
	state, home                     string
}

func newSandboxKit(t *testing.T) *sandboxKit {
	t.Helper()
	// Not t.TempDir(): its parent is for its owner alone; not under /tmp,
	// which the sandbox replaces with an empty one of its own.
	dir, err := os.MkdirTemp("/var/tmp", "e2e-sandbox-") //nolint:usetesting // nobody must traverse its parent
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &sandboxKit{dir: dir}
	if err := os.Chmod(k.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string, mode os.FileMode) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	k.plugin = filepath.Join(k.dir, "kubectl-intercept")
	copyFile(plugin, k.plugin, 0o755)
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmdapi.FlattenConfig(cfg); err != nil {
		t.Fatal(err)
	}
	k.kubeconfig = filepath.Join(k.dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, k.kubeconfig); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(k.kubeconfig, 0o644); err != nil {
		t.Fatal(err)
	}
	// A static Go binary: Go's own resolver and syscalls, no libc, no
	// proxy variables read.
	k.client = filepath.Join(k.dir, "sandboxclient")
	build := exec.Command("go", "build", "-o", k.client, "./sandboxclient")
	build.Dir = ".." // the test module
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static client: %v\n%s", err, out)
	}
	k.state, k.home = k.nobodyDir(t), k.nobodyDir(t)
	return k
}

// nobodyDir is a new directory nobody owns.
func (k *sandboxKit) nobodyDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(k.dir, "nobody-") //nolint:usetesting // in the kit's directory, which nobody may traverse
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return d
}

// cmd is the plugin run as nobody.
func (k *sandboxKit) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(k.plugin, args...)
	cmd.Dir = k.dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + k.home, "USER=nobody", "KUBECONFIG=" + k.kubeconfig,
		"XDG_STATE_HOME=" + k.state, "NO_COLOR=1", "KUBECTL_INTERCEPT_PROXY_IMAGE=" + os.Getenv("KUBECTL_INTERCEPT_PROXY_IMAGE")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, NoSetGroups: true}}
	return cmd
}

// start runs the plugin as nobody in the background.
func (k *sandboxKit) start(t *testing.T, args ...string) *pluginProc {
	t.Helper()
	p := &pluginProc{cmd: k.cmd(args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("kubectl-intercept %v output:\n%s", args, p.output())
		}
	})
	return p
}

// sandboxInit is the pid of the plugin's sandbox first process.
func sandboxInit(t *testing.T, plugin int) int {
	t.Helper()
	var pid int
	waitFor(t, 10*time.Second, "the sandbox's first process", func() bool {
		for _, c := range children(plugin) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); strings.Contains(string(b), "__sandbox-init") {
				pid = c
				return true
			}
		}
		return false
	})
	return pid
}

// children are the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// tree is pid and every process under it.
func tree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children(out[i])...)
	}
	return out
}

// alive says whether any of pids still runs (a zombie has ended).
func alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 && f[0] == "Z" {
			continue
		}
		out = append(out, p)
	}
	return out
}

// privateTree is the directory the plugin says the sandbox's files are
// copied under.
var privateTree = regexp.MustCompile(`their copy under (\S+) is removed at the end`)

// TestSandbox runs a command with --sandbox, as an ordinary user, and
// checks from inside it what clients that ignore proxy variables get:
// a raw TCP client, getent, a static Go binary doing HTTP and gRPC to a
// Service by name and a DNS query over UDP, a pod IP's closed port
// refused, the ConfigMap at its mountPath and its update, --local reaching
// this machine's loopback, the pod's hostname; intercepted requests reach
// the command's server inside; Ctrl-C reaches the command and its exit
// code is the plugin's; nothing stays on the host; a volume at a path
// this machine has is left out, with what mounts it. Then the plugin is
// killed with SIGKILL (the volume now covered with --sandbox-cover):
// nothing of the sandbox runs on, and close (of this machine's
// intercepts) cleans up and restores the Service without --force. (NetworkPolicy: the local cluster's bridge CNI does not enforce
// them; a dial the pod cannot make is refused inside the sandbox as this
// test's closed port is, and pkg/local/sandbox tests the refusal path.)
func TestSandbox(t *testing.T) {
	t.Parallel()
	ns, svc := localWorld(t)
	// A volume at a path this machine has: a directory made here.
	covered := "/var/tmp/e2e-cover-" + ns
	if err := os.Mkdir(covered, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(covered) })
	mountAt(t, ns, "demo", "config", covered)
	before := takeSnapshot(t, ns, "demo")
	k := newSandboxKit(t)

	// The preflight, and what a dry run says the sandbox gives.
	dry, err := k.cmd("svc/demo", "-n", ns, "--dry-run", "--sandbox", "--", "true").CombinedOutput()
	if strings.Contains(string(dry), "--sandbox is not available here") {
		t.Skipf("this machine cannot run the sandbox as nobody: %s", dry)
	}
	if err != nil || !strings.Contains(string(dry), "# sandbox: this machine can run it") {
		t.Fatalf("--dry-run --sandbox: %v\n%s", err, dry)
	}

	// A listener only this machine's loopback has: --local shows it.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprint(c, "host-only listener\n")
			c.Close()
		}
	}()
	hostPort := host.Addr().(*net.TCPAddr).Port
	backendPods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=backend"})
	if err != nil || len(backendPods.Items) == 0 || backendPods.Items[0].Status.PodIP == "" {
		t.Fatalf("the backend's pod IP: %v", err)
	}
	backendIP := backendPods.Items[0].Status.PodIP

	out := k.nobodyDir(t)
	port := freePort(t)
	c := k.client
	script := fmt.Sprintf(`trap 'kill $server; echo got-int > %[1]s/signal; exit 7' INT
env > %[1]s/env
hostname > %[1]s/hostname
getent hosts backend > %[1]s/getent 2>&1
%[2]s tcp backend:9090 through-tcp > %[1]s/tcp 2>&1
%[2]s http http://backend/ > %[1]s/http 2>&1
%[2]s http http://backend.%[3]s.svc.cluster.local/ > %[1]s/fqdn 2>&1
%[2]s grpc backend:80 > %[1]s/grpc 2>&1
%[2]s dns backend.%[3]s.svc.cluster.local > %[1]s/dns 2>&1
%[2]s tcp %[4]s > %[1]s/refused 2>&1
%[2]s tcp localhost:%[5]d > %[1]s/local 2>&1
%[2]s serve 127.0.0.1:%[6]d sandbox &
server=$!
touch %[1]s/checked
while :; do cat /etc/demo/config.yaml > %[1]s/config.new 2>&1; mv %[1]s/config.new %[1]s/config; sleep 0.2; done
`, out, c, ns, net.JoinHostPort(backendIP, "81"), hostPort, port)
	p := k.start(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--sandbox", "--local", fmt.Sprintf("localhost:%d", hostPort),
		"--", "sh", "-c", script)
	p.waitOutput(t, "the intercept ends when it exits", 2*time.Minute)
	if want := "the volume at " + covered + " is not in the sandbox: that directory exists on this machine"; !strings.Contains(p.output(), want) ||
		!strings.Contains(p.output(), "--sandbox-cover "+covered) {
		t.Errorf("the start does not say %q, with --sandbox-cover:\n%s", want, p.output())
	}
	waitFor(t, 60*time.Second, "the command's checks", func() bool {
		_, err := os.Stat(filepath.Join(out, "checked"))
		return err == nil
	})
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(out, name))
		return strings.TrimSpace(string(b))
	}
	for _, tc := range []struct{ file, want string }{
		{"getent", "backend." + ns + ".svc.cluster.local"},
		{"tcp", ": through-tcp"},
		{"http", `"pod": "backend-`},
		{"fqdn", `"pod": "backend-`},
		{"grpc", "grpc answered by backend-"},
		{"refused", "connection refused"},
		{"local", "host-only listener"},
		{"hostname", "demo-"},
	} {
		if got := read(tc.file); !strings.Contains(got, tc.want) {
			t.Errorf("inside the sandbox, %s: %q, want %q", tc.file, got, tc.want)
		}
	}
	if got := read("dns"); net.ParseIP(strings.Fields(got + " x")[0]) == nil {
		t.Errorf("a DNS query over UDP inside the sandbox: %q", got)
	}
	env := read("env")
	for _, v := range []string{"HTTP_PROXY=", "ALL_PROXY=", "KUBECTL_INTERCEPT_ROOT="} {
		if strings.Contains(env, "\n"+v) || strings.HasPrefix(env, v) {
			t.Errorf("the sandbox's command got %s...: it needs no proxy, and its files are at their paths", v)
		}
	}
	if !strings.Contains(env, "GREETING="+greeting) {
		t.Errorf("the sandbox's command lacks the pod's environment:\n%s", env)
	}
	for _, want := range []string{"runs as you in namespaces of its own, hostname demo-", "DNS: nameserver", "Network: every TCP connection leaves from pod demo-", "Files: 2 mounts at their paths", "/etc/demo", "/etc/secret",
		fmt.Sprintf("Local: localhost:%d", hostPort)} {
		if !p.printsSoon(want) {
			t.Errorf("the active message lacks %q", want)
		}
	}

	inPart(t, "files", func(t *testing.T) {
		// The command's loop writes it after its checks.
		waitFor(t, 20*time.Second, "the command's first read of /etc/demo/config.yaml", func() bool { return read("config") != "" })
		if got := read("config"); got != "feature: on" {
			t.Errorf("/etc/demo/config.yaml inside: %q", got)
		}
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "demo-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["config.yaml"] = "feature: off\n"
		if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the ConfigMap's change at its mountPath inside", func() bool { return read("config") == "feature: off" })
	})
	inPart(t, "intercepted requests reach the command inside", func(t *testing.T) {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != "sandbox" {
			t.Errorf("a marked request went to %q, want the server in the sandbox", got)
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Errorf("an unmarked request went to %q", got)
		}
	})
	inPart(t, "status", func(t *testing.T) {
		b, err := k.cmd("status", "svc/demo", "-n", ns).CombinedOutput()
		for _, want := range []string{"Sandbox:", "DNS:", "Network:", "Mounts:", "Skipped:", covered, "Local:"} {
			if err != nil || !strings.Contains(string(b), want) {
				t.Errorf("status lacks %q (%v):\n%s", want, err, b)
			}
		}
	})

	// Ctrl-C: the command gets it, the plugin exits with its code, and
	// nothing of the sandbox stays: no process, no files.
	init := sandboxInit(t, p.cmd.Process.Pid)
	procs := tree(init)
	m := privateTree.FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("the plugin did not say where the files are copied:\n%s", p.output())
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	err = p.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("after Ctrl-C the plugin ended with %v, want the command's 7", err)
	}
	if read("signal") != "got-int" {
		t.Error("the command in the sandbox did not get Ctrl-C")
	}
	if left := alive(procs); len(left) > 0 {
		t.Errorf("processes of the sandbox outlived the plugin: %v", left)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("the sandbox's files %s are still there: %v", m[1], err)
	}
	assertRestored(t, ns, "demo", before)

	// kill -9 of the plugin: the sandbox ends with it; close restores the
	// Service and removes the files. This time --sandbox-cover mounts the
	// volume over this machine's directory.
	p = k.start(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--sandbox", "--sandbox-cover", covered,
		"--", "sh", "-c", fmt.Sprintf("cat %s/config.yaml > %s/covered 2>&1; sleep 600", covered, out))
	p.waitOutput(t, "the intercept ends when it exits", 2*time.Minute)
	if strings.Contains(p.output(), "the volume at "+covered+" is not in the sandbox") || !p.printsSoon("Files: 3 mounts at their paths") {
		t.Errorf("with --sandbox-cover %s the volume is not mounted:\n%s", covered, p.output())
	}
	waitFor(t, 20*time.Second, "the covered volume read inside", func() bool { return read("covered") != "" })
	// The ConfigMap as the files part left it.
	if got := read("covered"); got != "feature: off" {
		t.Errorf("%s/config.yaml inside, with --sandbox-cover: %q", covered, got)
	}
	if entries, _ := os.ReadDir(covered); len(entries) != 0 {
		t.Errorf("the covered directory on this machine changed: %v", entries)
	}
	init = sandboxInit(t, p.cmd.Process.Pid)
	waitFor(t, 10*time.Second, "the command in the sandbox", func() bool {
		procs = tree(init)
		return len(procs) > 1
	})
	if !p.printsSoon("is removed at the end") {
		t.Fatal("the plugin did not say where the files are copied")
	}
	m = privateTree.FindStringSubmatch(p.output())
	p.cmd.Process.Kill()
	p.cmd.Wait()
	waitFor(t, 10*time.Second, "the sandbox's processes to end with the plugin", func() bool { return len(alive(procs)) == 0 })
	// close without an argument ends what this machine's crashed
	// intercepts left, their files included, and, the crashed plugin's
	// route gone from the sidecars after the heartbeat window, restores
	// the Service: no --force.
	b, err := k.cmd("close").CombinedOutput()
	if err != nil {
		t.Fatalf("close after kill -9: %v\n%s", err, b)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("close left the sandbox's files %s: %v", m[1], err)
	}
	if strings.Contains(string(b), "stays switched") || strings.Contains(string(b), "--force") {
		t.Errorf("close after kill -9 kept the Service switched:\n%s", b)
	}
	assertRestored(t, ns, "demo", before)
}

// mountAt adds a mount of the deployment's volume at path to its first
// container and waits until the rollout is done, the old pods gone.
func mountAt(t *testing.T, ns, name, volume, path string) {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &d.Spec.Template.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path, ReadOnly: true})
	if _, err := cs.AppsV1().Deployments(ns).Update(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "deployment "+name+" rolled out with a volume at "+path, func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil {
			return false
		}
		st, want := d.Status, *d.Spec.Replicas
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.Replicas != want || st.AvailableReplicas != want {
			return false
		}
		pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
		return err == nil && len(pods.Items) == int(want)
	})
}
