//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const laptopPod = "laptop"

// laptop is the developer's local service: it answers like the demo app,
// naming itself "laptop" (or name).
func laptop(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k, v := range r.Header {
			h[k] = strings.Join(v, ", ")
		}
		json.NewEncoder(w).Encode(echo{Pod: name, Headers: h, Proto: r.Proto})
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	return n
}

// snapshot is what a user would compare before and after an intercept.
type snapshot struct {
	Selector    map[string]string
	Ports       []corev1.ServicePort
	Annotations map[string]string
	Deployments []string
	DeployRV    string
	Pods        int
}

func takeSnapshot(t *testing.T, ns, svcName string) snapshot {
	t.Helper()
	ctx := context.Background()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{Selector: svc.Spec.Selector, Ports: svc.Spec.Ports, Annotations: svc.Annotations}
	for _, d := range ds.Items {
		s.Deployments = append(s.Deployments, d.Name)
		if d.Name == "demo" {
			s.DeployRV = strconv.FormatInt(d.Generation, 10)
		}
	}
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	s.Pods = len(pods.Items)
	return s
}

func assertRestored(t *testing.T, ns, svcName string, before snapshot) {
	t.Helper()
	var after snapshot
	waitFor(t, 60*time.Second, "the copy's pods to be gone", func() bool {
		after = takeSnapshot(t, ns, svcName)
		return after.Pods == before.Pods
	})
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the namespace is not as it was:\nbefore %+v\nafter  %+v", before, after)
	}
}

// routedTo sends a request with the headers and returns who answered.
func routedTo(t *testing.T, svc *corev1.Service, h http.Header) string {
	t.Helper()
	e, code, err := get(serviceURL(svc), h)
	if err != nil {
		t.Fatalf("request through service %s: %v", svc.Name, err)
	}
	if code != 200 {
		t.Fatalf("request through service %s: status %d", svc.Name, code)
	}
	return e.Pod
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// A developer intercepts with the default header: their requests reach the
// laptop, everyone else's the cluster; Ctrl-C restores everything.
func TestInterceptForegroundDefaultHeader(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)

	for i := 0; i < 20; i++ {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
			t.Fatalf("request %d with the header reached %q, want the laptop", i, got)
		}
		if got := routedTo(t, svc, nil); got == laptopPod || !strings.HasPrefix(got, "demo-") {
			t.Fatalf("request %d without the header reached %q, want a demo pod", i, got)
		}
		if got := routedTo(t, svc, header("x-c6o-intercept", "no")); got == laptopPod {
			t.Fatalf("request %d with another header value reached the laptop", i)
		}
	}
	// The original Deployment was never touched.
	if d, _ := cs.AppsV1().Deployments(ns).Get(context.Background(), "demo", metav1.GetOptions{}); strconv.FormatInt(d.Generation, 10) != before.DeployRV {
		t.Fatalf("the original deployment changed: generation %d", d.Generation)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept ended with %v", err)
	}
	assertRestored(t, ns, "demo", before)
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got == laptopPod {
		t.Fatal("after close, the header still reaches the laptop")
	}
}

// With --detach the intercept runs in the background; list shows it and close
// ends it, with a numeric targetPort switched and restored.
func TestInterceptBackgroundListClose(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{numericTarget: true})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	run := laptopCLI(t)
	out := run("demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "--detach")
	if !strings.Contains(out, "runs in the background") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	// Requests through the ClusterIP, from the client pod.
	if got := routedTo(t, svc, header("X-Dev", "alice")); got != laptopPod {
		t.Fatalf("request with x-dev: alice reached %q", got)
	}
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got == laptopPod {
		t.Fatal("the default header reached the laptop although -x was given")
	}
	list := run("list", "-n", ns)
	if !strings.Contains(list, "X-Dev:alice") {
		t.Fatalf("list does not show the route:\n%s", list)
	}
	// status asks every copy pod's sidecar: the route is on both.
	status := run("status", "svc/demo", "-n", ns)
	for _, want := range []string{"Status:    active", "X-Dev:alice by ", "on 2 of 2 ready pods",
		"curl -H 'X-Dev: alice' http://demo." + ns + ":80/"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	var st struct {
		Status struct {
			Phase string
			Pods  []struct {
				Name   string
				Ready  bool
				Routes []struct{ Header, Value string }
			}
		}
	}
	if err := json.Unmarshal([]byte(run("status", "demo", "-n", ns, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Status.Phase != "active" || len(st.Status.Pods) != 2 {
		t.Fatalf("status -o json: %+v", st)
	}
	for _, p := range st.Status.Pods {
		if !p.Ready || len(p.Routes) != 1 || p.Routes[0].Value != "alice" {
			t.Fatalf("status -o json, pod %s: %+v", p.Name, p)
		}
	}
	s, _ := cs.CoreV1().Services(ns).Get(context.Background(), "demo", metav1.GetOptions{})
	if s.Spec.Ports[0].TargetPort.IntVal == 8080 {
		t.Fatal("numeric targetPort was not switched to the sidecar")
	}
	run("close", "svc/demo", "-n", ns)
	assertRestored(t, ns, "demo", before)
	// Close twice is fine.
	run("close", "svc/demo", "-n", ns)
}

// kill -9 of the CLI: the developer's requests go back to the cluster within
// 2 s; close afterwards restores the Service.
func TestFailOpenAfterKill(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q before the kill", got)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	killed := time.Now()
	waitFailedOpen(t, svc, 2*time.Second)
	t.Logf("fail-open after kill -9: %s", time.Since(killed).Round(time.Millisecond))

	if out, err := runPlugin(t, "close", "svc/demo", "-n", ns); err != nil {
		t.Fatalf("close: %v\n%s", err, out)
	}
	assertRestored(t, ns, "demo", before)
}

// Two developers share a session: each gets their own requests; the first
// to leave keeps the Service switched for the other; the last restores it.
func TestTwoDevelopers(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	alice, bob := laptop(t, "alice"), laptop(t, "bob")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(alice), "-x", "x-dev:alice", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "x-dev:bob", "-w")
	b.waitOutput(t, "Intercepting service", 2*time.Minute)

	// A third developer asking for alice's header is refused.
	if out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "X-DEV:alice", "-w", "--timeout", "30s"); err == nil || !strings.Contains(out, "alice") {
		t.Fatalf("a second intercept of x-dev:alice was not refused (err %v):\n%s", err, out)
	}
	for i := 0; i < 10; i++ {
		if got := routedTo(t, svc, header("x-dev", "alice")); got != "alice" {
			t.Fatalf("alice's request reached %q", got)
		}
		if got := routedTo(t, svc, header("x-dev", "bob")); got != "bob" {
			t.Fatalf("bob's request reached %q", got)
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("a request without header reached %q", got)
		}
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("alice's kubectl-intercept: %v", err)
	}
	if got := routedTo(t, svc, header("x-dev", "bob")); got != "bob" {
		t.Fatalf("after alice left, bob's request reached %q", got)
	}
	if got := routedTo(t, svc, header("x-dev", "alice")); !strings.HasPrefix(got, "demo-") {
		t.Fatalf("after alice left, her request reached %q", got)
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("bob's kubectl-intercept: %v", err)
	}
	assertRestored(t, ns, "demo", before)
}

// Someone changes the Service during the intercept (a deploy adds an
// annotation and a label); close keeps their change and reverts ours. Close
// still works after our annotations were wiped from the Service.
func TestCloseKeepsOthersChangesAndSurvivesWipedAnnotations(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	port := laptop(t, laptopPod)
	before := takeSnapshot(t, ns, "demo")

	run := laptopCLI(t) // one state directory: close ends the background intercept
	run("svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--detach")
	ctx := context.Background()
	patch := `{"metadata":{"labels":{"team":"shop"},"annotations":{"deployed-by":"ci","intercept.kubectl.dev/record":null}}}`
	if _, err := cs.CoreV1().Services(ns).Patch(ctx, "demo", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	run("close", "svc/demo", "-n", ns, "--force")
	before.Annotations = map[string]string{"deployed-by": "ci"}
	assertRestored(t, ns, "demo", before)
	got, _ := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if got.Labels["team"] != "shop" {
		t.Fatalf("close dropped someone else's label: %v", got.Labels)
	}
	_ = svc
}

// What cannot work is refused before anything changes, with a reason.
func TestPreflightRefusesHeadlessService(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }})
	before := takeSnapshot(t, ns, "demo")
	out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", "3000", "-w")
	if err == nil || !strings.Contains(out, "headless") {
		t.Fatalf("a headless Service was not refused (err %v):\n%s", err, out)
	}
	if after := takeSnapshot(t, ns, "demo"); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused intercept changed the namespace:\nbefore %+v\nafter  %+v", before, after)
	}
}

// --dry-run prints the copy and the Service change and touches nothing.
func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", "3000", "--dry-run")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"kind: Deployment", "name: intercept-proxy", "kind: Service", "intercept.kubectl.dev/session"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if after := takeSnapshot(t, ns, "demo"); !reflect.DeepEqual(before, after) {
		t.Fatalf("--dry-run changed the namespace")
	}
}

// waitFailedOpen waits until header requests reach the in-cluster app again:
// five in a row, each on a new connection spread by kube-proxy, so every
// copy pod must have dropped the route.
func waitFailedOpen(t *testing.T, svc *corev1.Service, bound time.Duration) {
	t.Helper()
	streak := 0
	waitFor(t, bound, "header requests to reach the cluster again", func() bool {
		e, code, err := get(serviceURL(svc), header("X-C6O-INTERCEPT", "yes"))
		if err == nil && code == 200 && strings.HasPrefix(e.Pod, "demo-") {
			streak++
		} else {
			streak = 0
		}
		return streak >= 5
	})
}

// An intercept that someone else ends (close --force) notices, says so and
// exits, instead of holding tunnels to pods that are gone.
func TestInterceptEndedElsewhereExits(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptop(t, laptopPod)))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if out, err := runPlugin(t, "close", "svc/demo", "-n", ns, "--force"); err != nil {
		t.Fatalf("close --force: %v\n%s", err, out)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(p.output(), "was ended elsewhere") {
			t.Fatalf("exit %v, output:\n%s", err, p.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the intercept still runs 20s after it was closed elsewhere:\n%s", p.output())
	}
	assertRestored(t, ns, "demo", before)
}
