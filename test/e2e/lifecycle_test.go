//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

const managedBy = "app.kubernetes.io/managed-by=kubectl-intercept"

// laptopCLI returns a runner of kubectl-intercept commands that share one
// state directory, as on one developer's machine (so close finds the
// background intercept), failing the test when a command fails.
func laptopCLI(t *testing.T) func(args ...string) string {
	state := t.TempDir()
	return func(args ...string) string {
		t.Helper()
		cmd := pluginCmd(t, args...)
		cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+state)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl-intercept %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
}

// theCopy returns the copy Deployment of the namespace's one intercept.
func theCopy(t *testing.T, ns string) *appsv1.Deployment {
	t.Helper()
	ds, err := cs.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{LabelSelector: managedBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Items) != 1 {
		t.Fatalf("%d copy deployments, want 1", len(ds.Items))
	}
	return &ds.Items[0]
}

// readyCopyPods lists the copy's ready, not terminating pods.
func readyCopyPods(t *testing.T, d *appsv1.Deployment) []corev1.Pod {
	t.Helper()
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	pods, err := cs.CoreV1().Pods(d.Namespace).List(t.Context(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}

// sidecarPorts returns the sidecar's traffic port and its control port.
func sidecarPorts(t *testing.T, pod corev1.Pod) (data, control string) {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		if c.Name != "intercept-proxy" {
			continue
		}
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--control=127.0.0.1:"); ok {
				control = v
			}
		}
		return strconv.Itoa(int(c.Ports[0].ContainerPort)), control
	}
	t.Fatalf("pod %s has no intercept-proxy container", pod.Name)
	return "", ""
}

// podRoutesToLaptop asks one copy pod's sidecar directly, bypassing the
// Service, whether the header reaches the laptop.
func podRoutesToLaptop(t *testing.T, pod corev1.Pod, h http.Header) bool {
	data, _ := sidecarPorts(t, pod)
	e, code, err := get("http://"+pod.Status.PodIP+":"+data+"/", h)
	return err == nil && code == 200 && e.Pod == laptopPod
}

// A copy pod dies and the copy is scaled: the developer's route is on every
// ready copy pod again within seconds.
func TestRoutesFollowCopyPods(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	run := laptopCLI(t)
	run("svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--detach")
	dev := header("X-C6O-INTERCEPT", "yes")

	// everyPod waits until want ready copy pods all route the header to
	// the laptop and reports how long that took.
	everyPod := func(what string, want int) {
		t.Helper()
		start := time.Now()
		waitFor(t, 60*time.Second, fmt.Sprintf("%d ready copy pods routing to the laptop (%s)", want, what), func() bool {
			pods := readyCopyPods(t, theCopy(t, ns))
			if len(pods) != want {
				return false
			}
			for _, p := range pods {
				if !podRoutesToLaptop(t, p, dev) {
					return false
				}
			}
			return true
		})
		t.Logf("%s: route on all %d copy pods after %s", what, want, time.Since(start).Round(time.Millisecond))
	}
	everyPod("start", 2)

	// A copy pod is deleted (evicted, node drained): its replacement gets
	// the route as soon as it is ready.
	victim := readyCopyPods(t, theCopy(t, ns))[0]
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	readyAt := waitReplacement(t, ns, victim.Name, 2)
	everyPod("copy pod replaced", 2)
	t.Logf("replacement pod ready to route on it: %s", time.Since(readyAt).Round(time.Millisecond))

	// The copy is scaled out, then in.
	scale(t, ns, theCopy(t, ns).Name, 3)
	everyPod("copy scaled to 3", 3)
	// Scaled in: the two deleted pods drain for a few seconds, still
	// getting requests from kube-proxy; the developer's must reach the
	// laptop through them too, not fail or land in the cluster.
	scale(t, ns, theCopy(t, ns).Name, 1)
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if got := routedTo(t, svc, dev); got != laptopPod {
			t.Fatalf("while the copy scaled in, a request with the header reached %q", got)
		}
	}
	everyPod("copy scaled to 1", 1)
	for i := 0; i < 10; i++ {
		if got := routedTo(t, svc, dev); got != laptopPod {
			t.Fatalf("through the Service, request %d with the header reached %q", i, got)
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("through the Service, request %d without the header reached %q", i, got)
		}
	}

	run("close", "svc/demo", "-n", ns)
	assertRestored(t, ns, "demo", before)
}

// waitReplacement waits until the copy has want ready pods again, none of
// them gone, and returns when that happened.
func waitReplacement(t *testing.T, ns, gone string, want int) time.Time {
	t.Helper()
	waitFor(t, 60*time.Second, "the copy pod's replacement to be ready", func() bool {
		pods := readyCopyPods(t, theCopy(t, ns))
		for _, p := range pods {
			if p.Name == gone {
				return false
			}
		}
		return len(pods) == want
	})
	return time.Now()
}

func scale(t *testing.T, ns, name string, n int32) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	if _, err := cs.AppsV1().Deployments(ns).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// restricted makes the demo pass the restricted Pod Security level.
func restricted(d *appsv1.Deployment) {
	d.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	c := &d.Spec.Template.Spec.Containers[0]
	c.SecurityContext = &corev1.SecurityContext{
		RunAsUser:                ptr.To(int64(65532)),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// In a namespace that enforces the restricted Pod Security level, the copy
// (with the sidecar) is admitted whenever the original is, and the sidecar
// has the security context and resources it promises.
func TestPodSecurityRestricted(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	patch := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/enforce-version":"latest"}}}`
	if _, err := cs.CoreV1().Namespaces().Patch(t.Context(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := deployDemo(t, ns, demoOptions{deploymentMutate: restricted})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	// The header through the ClusterIP, from the client pod.
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q", got)
	}
	pods := readyCopyPods(t, theCopy(t, ns))
	if len(pods) != 2 {
		t.Fatalf("%d ready copy pods in the restricted namespace, want 2", len(pods))
	}
	for _, c := range pods[0].Spec.Containers {
		if c.Name != "intercept-proxy" {
			continue
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Fatal("the sidecar has no security context")
		case !ptr.Deref(sc.RunAsNonRoot, false) || sc.RunAsUser == nil || *sc.RunAsUser == 0:
			t.Errorf("the sidecar does not run as a numeric non-root user: %+v", sc)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("the sidecar's seccomp profile is %+v", sc.SeccompProfile)
		case !ptr.Deref(sc.ReadOnlyRootFilesystem, false):
			t.Error("the sidecar's root filesystem is writable")
		case ptr.Deref(sc.AllowPrivilegeEscalation, true):
			t.Error("the sidecar allows privilege escalation")
		case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("the sidecar's capabilities are %+v", sc.Capabilities)
		}
		r := c.Resources
		if r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() || r.Requests.Cpu().IsZero() || !r.Limits.Cpu().IsZero() {
			t.Errorf("the sidecar's resources are %+v; want memory request and limit, a CPU request and no CPU limit", r)
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
	}
	assertRestored(t, ns, "demo", before)
}

// dialPod runs the demo image as a pod that only tries a TCP connection to
// addr, and reports whether it got one.
func dialPod(t *testing.T, ns, name, addr string) (bool, string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "dial", Image: demoImage, ImagePullPolicy: demoPullPolicy,
				Args: []string{"--dial", addr},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	waitFor(t, 60*time.Second, "pod "+name+" to finish", func() bool {
		p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		phase = p.Status.Phase
		return phase == corev1.PodSucceeded || phase == corev1.PodFailed
	})
	logs, _ := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(t.Context())
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	return phase == corev1.PodSucceeded, strings.TrimSpace(string(logs))
}

// The sidecar's control port, which registers routes to laptops, listens on
// the pod's loopback only: another pod cannot reach it, while it reaches
// the traffic port beside it.
func TestControlPortUnreachableFromOtherPods(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)

	pod := readyCopyPods(t, theCopy(t, ns))[0]
	data, control := sidecarPorts(t, pod)
	if control == "" {
		t.Fatal("the sidecar's control address is not on loopback")
	}
	if ok, logs := dialPod(t, ns, "dial-data", pod.Status.PodIP+":"+data); !ok {
		t.Fatalf("another pod cannot reach the sidecar's traffic port (so this check proves nothing): %s", logs)
	}
	if ok, logs := dialPod(t, ns, "dial-control", pod.Status.PodIP+":"+control); ok {
		t.Fatalf("another pod reached the sidecar's control port %s: %s", control, logs)
	} else {
		t.Logf("from another pod: %s", logs)
	}
}

// Two developers start and close intercepts of one Service with random
// timing, in two rounds: both starting at once, then one starting while the
// other closes. Every start and close succeeds, each gets their own
// requests while both are in, and after every round the Service is exactly
// as it was.
func TestTwoCLIsRace(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	devs := []struct {
		name, state string
		port        int
	}{{"alice", t.TempDir(), laptop(t, "alice")}, {"bob", t.TempDir(), laptop(t, "bob")}}
	run := func(i int, args ...string) error {
		cmd := pluginCmd(t, args...)
		cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+devs[i].state)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: kubectl-intercept %v: %w\n%s", devs[i].name, args, err, out)
		}
		return nil
	}
	start := func(i int) error {
		return run(i, "svc/demo", "-n", ns, "-l", strconv.Itoa(devs[i].port), "-x", "x-dev:"+devs[i].name, "--detach")
	}
	closeOne := func(i int) error { return run(i, "close", "svc/demo", "-n", ns) }
	jitter := func() { time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond) }
	both := func(a, b func() error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, f := range []func() error{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); jitter(); errs[i] = f() }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	checkRoutes := func(round int, in ...int) {
		t.Helper()
		for _, i := range in {
			if got := routedTo(t, svc, header("x-dev", devs[i].name)); got != devs[i].name {
				t.Fatalf("round %d: %s's request reached %q", round, devs[i].name, got)
			}
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("round %d: a request without header reached %q", round, got)
		}
	}

	// The interleavings themselves are unit tests in pkg/cluster/session:
	// claim_test.go (TestTwoClosesClaimAtOnce, TestClaimLosesToARenewal,
	// TestJoinAfterAClaimStartsAnew, TestSecondStarterJoinsTheFirstSwitch,
	// TestCloseLeavesASessionBeingJoined) and leave_test.go (the TestLeave*
	// tests, TestLeaveStaysForOneWhoArrivesAtTheClaim among them). One
	// round of each kind checks the whole on a real cluster.
	const rounds = 2
	for r := 1; r <= rounds; r++ {
		a, b := rand.IntN(2), 0
		b = 1 - a
		if r%2 == 1 {
			// Both start at about the same time, then both close.
			both(func() error { return start(a) }, func() error { return start(b) })
			checkRoutes(r, a, b)
			both(func() error { return closeOne(a) }, func() error { return closeOne(b) })
		} else {
			// One is in; the other starts while it closes.
			if err := start(a); err != nil {
				t.Fatal(err)
			}
			both(func() error { return closeOne(a) }, func() error { return start(b) })
			checkRoutes(r, b)
			if err := closeOne(b); err != nil {
				t.Fatal(err)
			}
		}
		assertRestored(t, ns, "demo", before)
	}
	t.Logf("%d rounds of two CLIs starting and closing: every round ended with the Service as it was", rounds)
}

// A deploy changes the original Deployment (a new image, a new env) and the
// Service (a new port, a label) while an intercept runs. The copy keeps
// running what it copied (the rule: a copy does not follow the original;
// restart the intercept to pick up a new version); close keeps every change
// of theirs and reverts only ours.
func TestCloseKeepsADeployMadeDuringTheIntercept(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	port := laptop(t, laptopPod)
	run := laptopCLI(t)
	run("svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--detach")
	copyBefore := theCopy(t, ns)

	ctx := context.Background()
	deploy := `{"spec":{"template":{"metadata":{"labels":{"version":"v2"}},"spec":{"containers":[{"name":"demo","env":[{"name":"MESSAGE","value":"v2"}]}]}}}}`
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, "demo", types.StrategicMergePatchType, []byte(deploy), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the original's rollout", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && d.Status.ReadyReplicas == 2 && d.Status.Replicas == 2
	})
	addPort := `{"metadata":{"labels":{"release":"v2"}},"spec":{"ports":[{"name":"http","port":80,"targetPort":"http","protocol":"TCP"},{"name":"tcp","port":9090,"targetPort":9090,"protocol":"TCP"}]}}`
	if _, err := cs.CoreV1().Services(ns).Patch(ctx, "demo", types.StrategicMergePatchType, []byte(addPort), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := theCopy(t, ns); !reflect.DeepEqual(got.Spec.Template.Spec.Containers[0].Env, copyBefore.Spec.Template.Spec.Containers[0].Env) {
		t.Fatalf("the copy followed the original's change: %v", got.Spec.Template.Spec.Containers[0].Env)
	}
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("during the deploy, the header request reached %q", got)
	}

	run("close", "svc/demo", "-n", ns)
	got, err := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Spec.Selector, map[string]string{"app": "demo"}) {
		t.Errorf("selector after close: %v, want the original's", got.Spec.Selector)
	}
	if len(got.Spec.Ports) != 2 || got.Spec.Ports[1].Port != 9090 || got.Labels["release"] != "v2" {
		t.Errorf("close lost the deploy's change to the Service: ports %+v, labels %v", got.Spec.Ports, got.Labels)
	}
	if got.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("targetPort after close: %v", got.Spec.Ports[0].TargetPort)
	}
	d, _ := cs.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
	if d.Spec.Template.Labels["version"] != "v2" {
		t.Errorf("the original lost its new version: %v", d.Spec.Template.Labels)
	}
	waitFor(t, 60*time.Second, "the copy to be gone and the new version to answer", func() bool {
		ds, _ := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: managedBy})
		e, code, err := get(serviceURL(got), nil)
		return len(ds.Items) == 0 && err == nil && code == 200 && strings.HasPrefix(e.Pod, "demo-") && !strings.Contains(e.Pod, "intercept")
	})
}
