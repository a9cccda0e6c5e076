//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// machine is one developer's machine: one state directory that every
// command shares, as on a laptop.
type machine struct {
	state string
}

func newMachine(t *testing.T) machine { return machine{state: t.TempDir()} }

func (m machine) env() []string { return []string{"XDG_STATE_HOME=" + m.state} }

// run runs a command to completion and returns its output; want says
// whether it must succeed.
func (m machine) run(t *testing.T, want bool, args ...string) string {
	t.Helper()
	cmd := pluginCmd(t, args...)
	cmd.Env = append(cmd.Env, m.env()...)
	out, err := cmd.CombinedOutput()
	if (err == nil) != want {
		t.Fatalf("kubectl-intercept %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// startStranger runs a process unrelated to intercepts whose command line
// says kubectl-intercept (sleep, run under that name); the channel closes
// when it ends.
func startStranger(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "exec -a kubectl-intercept sleep 600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { _ = cmd.Wait(); close(ended) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-ended })
	return cmd, ended
}

// repointRecord makes this machine's record of the intercept in ns name
// pid as its process, the rest of the record as it was.
func (m machine) repointRecord(t *testing.T, ns string, pid int) {
	t.Helper()
	dir := filepath.Join(m.state, "kubectl-intercept")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil || rec["namespace"] != ns {
			continue
		}
		proc, ok := rec["process"].(map[string]any)
		if !ok {
			t.Fatalf("the record of the intercept in %s holds no process identity:\n%s", ns, b)
		}
		rec["pid"], proc["pid"] = pid, pid
		if b, err = json.Marshal(rec); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no record of the intercept in %s among %v", ns, files)
}

// The design card's own usage line: `kubectl intercept close` with no
// argument ends every intercept this machine started in the context, a
// foreground one that was kill -9ed and a --detach one, in two namespaces;
// each Service is restored exactly, and a second bare close has nothing to
// do and says so. The kill -9ed one's pid is given to an unrelated process
// first: bare close names it and leaves it running.
func TestBareCloseEndsThisMachinesIntercepts(t *testing.T) {
	t.Parallel()
	ns1, ns2 := newNamespace(t), newNamespace(t)
	deployDemo(t, ns1, demoOptions{})
	deployDemo(t, ns2, demoOptions{numericTarget: true})
	before1, before2 := takeSnapshot(t, ns1, "demo"), takeSnapshot(t, ns2, "demo")
	port := laptop(t, laptopPod)
	m := newMachine(t)

	fg := startPluginEnv(t, m.env(), "svc/demo", "-n", ns1, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "-w")
	fg.waitOutput(t, "Intercepting service", 2*time.Minute)
	_ = fg.cmd.Process.Kill()
	_ = fg.cmd.Wait()
	m.run(t, true, "svc/demo", "-n", ns2, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "--detach")

	// The killed intercept's pid now belongs to an unrelated process whose
	// command line even says kubectl-intercept: its record is made to
	// point there, as if the pid had been reused.
	stranger, strangerEnded := startStranger(t)
	m.repointRecord(t, ns1, stranger.Process.Pid)

	out := m.run(t, true, "close")
	for _, want := range []string{"service " + ns1 + "/demo", "service " + ns2 + "/demo", "restored",
		"pid " + strconv.Itoa(stranger.Process.Pid) + " now belongs to", "left alone"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bare close does not say %q:\n%s", want, out)
		}
	}
	select {
	case <-strangerEnded:
		t.Fatalf("bare close ended pid %d, an unrelated process:\n%s", stranger.Process.Pid, out)
	default:
	}
	_ = stranger.Process.Kill()
	<-strangerEnded
	assertRestored(t, ns1, "demo", before1)
	assertRestored(t, ns2, "demo", before2)
	if out := m.run(t, true, "close"); !strings.Contains(out, "nothing to close") {
		t.Fatalf("a bare close with nothing open says:\n%s", out)
	}
	// Another machine's bare close knows nothing of these.
	if out := newMachine(t).run(t, true, "close"); !strings.Contains(out, "nothing to close") {
		t.Fatalf("another machine's bare close says:\n%s", out)
	}
}

// czctl's spellings (-k, --remotePort, --localPort) start an intercept; -c
// with another developer live leaves their route alone, -c --dry-run
// changes nothing, and -c -d replaces this machine's own background
// intercept.
func TestCzctlFlagsAndClean(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	alice, bob := newMachine(t), newMachine(t)

	// -k names the kubeconfig (KUBECONFIG points elsewhere).
	cmd := pluginCmd(t, "svc/demo", "-k", kubeconfig, "-n", ns, "--remotePort", "http", "--localPort", strconv.Itoa(port), "-x", "x-dev:alice", "-d")
	cmd.Env = append(cmd.Env, alice.env()...)
	cmd.Env = append(cmd.Env, "KUBECONFIG=/nonexistent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("czctl's flags: %v\n%s", err, out)
	}
	bob.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:bob", "-d")
	routes := func() []string {
		var st struct {
			Status struct{ Routes []struct{ Value string } }
		}
		if err := json.Unmarshal([]byte(bob.run(t, true, "status", "svc/demo", "-n", ns, "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range st.Status.Routes {
			out = append(out, r.Value)
		}
		return out
	}
	if got := strings.Join(routes(), ","); got != "alice,bob" {
		t.Fatalf("routes %q, want alice and bob", got)
	}

	svcBefore, _ := cs.CoreV1().Services(ns).Get(context.Background(), "demo", metav1.GetOptions{})
	out := alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "-c", "--dry-run")
	if !strings.Contains(out, "-c would leave the intercept of service "+ns+"/demo alone") {
		t.Fatalf("-c --dry-run says:\n%s", out)
	}
	svcAfter, _ := cs.CoreV1().Services(ns).Get(context.Background(), "demo", metav1.GetOptions{})
	if svcAfter.ResourceVersion != svcBefore.ResourceVersion {
		t.Fatal("-c --dry-run changed the Service")
	}
	if got := strings.Join(routes(), ","); got != "alice,bob" {
		t.Fatalf("after -c --dry-run, routes %q", got)
	}

	// -c -d: alice's own background intercept ends, bob's stays, alice
	// comes back with a new header.
	out = alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice2", "-c", "-d")
	if !strings.Contains(out, "runs in the background") {
		t.Fatalf("-c -d says:\n%s", out)
	}
	waitFor(t, 30*time.Second, "alice's old route to go and bob's to stay", func() bool {
		return strings.Join(routes(), ",") == "bob,alice2"
	})

	alice.run(t, true, "close")
	bob.run(t, true, "close")
	assertRestored(t, ns, "demo", before)
}

// list --services says what can be intercepted and why not; status with no
// argument shows the context and this machine's intercepts in two
// namespaces.
func TestListServicesAndStatusOverview(t *testing.T) {
	t.Parallel()
	ns1, ns2 := newNamespace(t), newNamespace(t)
	deployDemo(t, ns1, demoOptions{})
	deployDemo(t, ns2, demoOptions{})
	ctx := context.Background()
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "external"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
		Selector: map[string]string{"app": "demo"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	for _, s := range []*corev1.Service{ext, headless} {
		if _, err := cs.CoreV1().Services(ns1).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m := newMachine(t)
	var cands struct {
		Items []struct {
			Metadata      struct{ Name string }
			Interceptable bool
			Reason        string
			Ports         []string
		}
	}
	if err := json.Unmarshal([]byte(m.run(t, true, "list", "--services", "-n", ns1, "-o", "json")), &cands); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cands.Items {
		got[c.Metadata.Name] = strconv.FormatBool(c.Interceptable) + " " + c.Reason
	}
	if !strings.HasPrefix(got["demo"], "true") || !strings.Contains(got["external"], "false") || !strings.Contains(got["headless"], "false") ||
		!strings.Contains(strings.ToLower(got["external"]), "externalname") || !strings.Contains(strings.ToLower(got["headless"]), "headless") {
		t.Fatalf("list --services: %v", got)
	}
	table := m.run(t, true, "list", "--services", "-n", ns1)
	if !strings.Contains(table, "INTERCEPTABLE") || !strings.Contains(table, "deployment/demo") {
		t.Fatalf("list --services table:\n%s", table)
	}

	port := laptop(t, laptopPod)
	m.run(t, true, "svc/demo", "-n", ns1, "-l", strconv.Itoa(port), "-d")
	// -q: only errors (the background intercept's one line is the command's answer).
	if out := m.run(t, true, "svc/demo", "-n", ns2, "-l", strconv.Itoa(port), "-d", "-q"); strings.Contains(out, "✓") || strings.Contains(out, "Intercepting") {
		t.Fatalf("-q printed progress:\n%s", out)
	}
	status := m.run(t, true, "status")
	for _, want := range []string{"Context:", "Cluster:", "User:", "Intercepts (2):", ns1, ns2, "active", "pid "} {
		if !strings.Contains(status, want) {
			t.Fatalf("status without an argument lacks %q:\n%s", want, status)
		}
	}
	var ov struct {
		Context struct{ Name string }
		Items   []struct {
			Metadata struct{ Namespace string }
			Status   struct {
				Phase string
				Local struct{ Held bool }
			}
		}
	}
	if err := json.Unmarshal([]byte(m.run(t, true, "status", "-o", "json")), &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Items) != 2 || !ov.Items[0].Status.Local.Held || ov.Items[1].Status.Phase != "active" {
		t.Fatalf("status -o json: %+v", ov)
	}
	m.run(t, true, "close")
}

// previewURL reads the preview's address from what the plugin printed.
func previewURL(t *testing.T, out string) string {
	t.Helper()
	i := strings.Index(out, "Preview: ")
	if i < 0 {
		t.Fatalf("no preview URL in:\n%s", out)
	}
	url, _, _ := strings.Cut(out[i+len("Preview: "):], " ")
	return url
}

// --preview: a URL on this machine that carries the developer's route
// through the Service, and through an entry point in front of it (a second
// service that calls the intercepted one, passing x-dev on); a second
// developer's preview reaches only theirs.
func TestPreviewURL(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	demo := deployDemo(t, ns, demoOptions{})
	deployDemo(t, ns, demoOptions{name: "front", replicas: 1})
	before := takeSnapshot(t, ns, "demo")
	alicePort, bobPort := laptop(t, "alice"), laptop(t, "bob")
	alice, bob := newMachine(t), newMachine(t)

	out := alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(alicePort), "-x", "x-dev:alice", "--preview", "-d")
	direct := previewURL(t, out)
	for i := 0; i < 5; i++ {
		e, code, err := get(direct+"?i="+strconv.Itoa(i), nil)
		if err != nil || e.Pod != "alice" {
			t.Fatalf("request %d through the preview reached %q (%d, %v)", i, e.Pod, code, err)
		}
	}

	out = bob.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(bobPort), "-x", "x-dev:bob",
		"--preview", "--preview-via", "svc/front", "-d")
	entry := previewURL(t, out)
	call := entry + "call?to=" + url.QueryEscape(serviceURL(demo)) + "&forward=x-dev"
	for i := 0; i < 5; i++ {
		resp, err := http.Get(call)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Pod    string
			Answer struct{ Pod string }
		}
		err = json.NewDecoder(resp.Body).Decode(&c)
		_ = resp.Body.Close()
		if err != nil || !strings.HasPrefix(c.Pod, "front-") || c.Answer.Pod != "bob" {
			t.Fatalf("request %d through the entry point: front %q, then %q (%v)", i, c.Pod, c.Answer.Pod, err)
		}
	}
	// alice's preview still reaches alice only.
	if e, _, err := get(direct, nil); err != nil || e.Pod != "alice" {
		t.Fatalf("alice's preview reached %q (%v)", e.Pod, err)
	}
	alice.run(t, true, "close")
	bob.run(t, true, "close")
	assertRestored(t, ns, "demo", before)
}
