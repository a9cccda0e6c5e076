//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// A second developer who learns everything `list -o json` and `status -o
// json` show (no owner key is among it) cannot take, replace or remove the
// first developer's route, with the same header or with --all, and the
// first keeps it.
func TestRouteBelongsToItsOpener(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	alice, bob := newMachine(t), newMachine(t)

	alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "-d")
	for _, args := range [][]string{{"list", "-n", ns, "-o", "json"}, {"status", "svc/demo", "-n", ns, "-o", "json"}} {
		out := bob.run(t, true, args...)
		if strings.Contains(out, `"client"`) || strings.Contains(out, `"secret"`) {
			t.Fatalf("%v shows an owner key or secret:\n%s", args, out)
		}
	}
	for _, args := range [][]string{
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "X-DEV:alice", "-w", "--timeout", "30s"},
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--all", "-w", "--timeout", "30s"},
	} {
		if out := bob.run(t, false, args...); !strings.Contains(out, "alice") {
			t.Fatalf("bob's %v was refused without naming alice's route:\n%s", args, out)
		}
	}
	if out := bob.run(t, true, "close", "svc/demo", "-n", ns); !strings.Contains(out, "by others are live") {
		t.Fatalf("bob's close svc/demo:\n%s", out)
	}
	status := alice.run(t, true, "status", "svc/demo", "-n", ns)
	if !strings.Contains(status, "x-dev:alice by ") && !strings.Contains(status, "X-Dev:alice by ") {
		t.Fatalf("alice's route is gone after bob's attempts:\n%s", status)
	}
	alice.run(t, true, "close")
	assertRestored(t, ns, "demo", before)
}

// A developer bound to docs/rbac.yaml with docs/admission-policy.yaml
// applied can intercept and close, and is denied what the Role would let
// them do beyond that: changing an unrelated Deployment, creating a
// Deployment without the sidecar, changing a Service's ports.
func TestAdmissionPolicyConfinesTheRole(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	const user, group = "e2e-confined", "kubectl-intercept-users"
	bindRole(t, ns, user, shippedRole(t))

	raw, err := os.ReadFile("../../docs/admission-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &kind); err != nil {
			t.Fatal(err)
		}
		switch kind.Kind {
		case "ValidatingAdmissionPolicy":
			var p admissionv1.ValidatingAdmissionPolicy
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{})
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{})
			})
		case "ValidatingAdmissionPolicyBinding":
			var b admissionv1.ValidatingAdmissionPolicyBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &b); err != nil {
				t.Fatal(err)
			}
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{})
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{})
			})
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{group}}
	as := kubernetes.NewForConfigOrDie(cfg)

	// The policy is in force once a Deployment without our label is
	// refused (the API server compiles a new policy in a moment).
	plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "plain"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: demoImage}}}}}}
	waitFor(t, 30*time.Second, "the policy to refuse a Deployment that is not a copy", func() bool {
		_, err := as.AppsV1().Deployments(ns).Create(ctx, plain, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
	})
	labeled := plain.DeepCopy()
	labeled.Labels = map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept"}
	if _, err := as.AppsV1().Deployments(ns).Create(ctx, labeled, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil || !strings.Contains(err.Error(), "intercept-proxy") {
		t.Errorf("a labeled Deployment without the sidecar: %v", err)
	}
	demo, err := as.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	demo.Spec.Template.Spec.Containers[0].Image = "evil:1"
	if _, err := as.AppsV1().Deployments(ns).Update(ctx, demo, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("changing the unrelated Deployment demo was allowed")
	}
	svc, err := as.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports[0].Port = 8081
	if _, err := as.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("changing the Service's ports was allowed")
	}

	port := laptop(t, laptopPod)
	m := newMachine(t)
	flags := []string{"-n", ns, "--as", user, "--as-group", group}
	m.run(t, true, append([]string{"svc/demo", "-l", strconv.Itoa(port), "-x", "x-dev:confined", "-d"}, flags...)...)

	// The intercept set its pods' readiness gate; nothing else of a pod's
	// status may be written, and no pod but a copy's.
	notReady := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False"}]}}`)
	gate := []byte(`{"status":{"conditions":[{"type":"intercept.kubectl.dev/routes","status":"True"}]}}`)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		_, copyPod := p.Labels["intercept.kubectl.dev/session"]
		for _, patch := range [][]byte{notReady, gate} {
			_, err := as.CoreV1().Pods(ns).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
			allowed := copyPod && string(patch) == string(gate)
			if (err == nil) != allowed {
				t.Errorf("patching the status of pod %s (a copy's: %t) with %s: %v", p.Name, copyPod, patch, err)
			}
		}
	}
	m.run(t, true, append([]string{"close"}, flags...)...)
	assertRestored(t, ns, "demo", before)
}

// A flood of unfinished 1 MiB heads and of idle connections against a copy
// pod leaves it Ready, serving the app's traffic, with the sidecar's memory
// under half its 256 MiB limit.
func TestSidecarSurvivesAFlood(t *testing.T) {
	requireLocalCluster(t, "it floods a copy pod from this host over the pod network")
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 1})
	port := laptop(t, laptopPod)
	m := newMachine(t)
	m.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:flood", "-d")
	defer m.run(t, true, "close")
	pods := readyCopyPods(t, theCopy(t, ns))
	if len(pods) != 1 {
		t.Fatalf("%d ready copy pods", len(pods))
	}
	pod := pods[0]
	data, _ := sidecarPorts(t, pod)
	addr := net.JoinHostPort(pod.Status.PodIP, data)

	const heads, idle = 300, 300
	big := []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < heads+idle; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue // refused under the flood: allowed
		}
		conns = append(conns, c)
		if i < heads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				_, _ = c.Write(big) // the sidecar stops reading past its bound
			}()
		}
	}
	// Meanwhile the app's traffic through the Service is served.
	for i := 0; i < 20; i++ {
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("request %d during the flood reached %q", i, got)
		}
	}
	wg.Wait()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range p.Status.ContainerStatuses {
		if st.RestartCount > 0 {
			t.Errorf("container %s restarted %d times under the flood", st.Name, st.RestartCount)
		}
	}
	if used := sidecarMemory(t, p); used > 128<<20 {
		t.Errorf("the sidecar uses %d MiB under the flood, over half its 256 MiB limit", used>>20)
	} else {
		t.Logf("sidecar working set under the flood: %d MiB", used>>20)
	}
	ready := false
	for _, c := range p.Status.Conditions {
		ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
	}
	if !ready {
		t.Error("the copy pod is not Ready after the flood")
	}
}

// sidecarMemory reads the sidecar container's working set from the
// kubelet's summary.
func sidecarMemory(t *testing.T, pod *corev1.Pod) uint64 {
	t.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", pod.Spec.NodeName, "proxy", "stats", "summary").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("the kubelet's summary: %v", err)
	}
	var summary struct {
		Pods []struct {
			PodRef     struct{ Name, Namespace string }
			Containers []struct {
				Name   string
				Memory struct {
					WorkingSetBytes uint64
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &summary); err != nil {
		t.Fatal(err)
	}
	for _, p := range summary.Pods {
		if p.PodRef.Name != pod.Name || p.PodRef.Namespace != pod.Namespace {
			continue
		}
		for _, c := range p.Containers {
			if c.Name == "intercept-proxy" {
				return c.Memory.WorkingSetBytes
			}
		}
	}
	t.Fatalf("no memory figure for the sidecar of %s", pod.Name)
	return 0
}

// A forged record in the Service's annotation that names an unrelated
// Deployment makes intercept and close refuse with what to check, and
// neither the Service nor that Deployment changes.
func TestForgedRecordChangesNothing(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	deployDemo(t, ns, demoOptions{name: "payments", replicas: 1})
	ctx := context.Background()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"version":1,"id":"f0rged","service":"demo","workload":"demo","copy":"payments","port":"http",` +
		`"selector":{"app":"payments"},"plan":{"appPort":8080,"sidecarPort":18080,"controlPort":18081,"targetPortName":"http"},"created":"2026-12-01T00:00:00Z"}`
	svc.Annotations = map[string]string{"intercept.kubectl.dev/session": forged}
	if _, err := cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svcBefore, _ := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	payBefore, _ := cs.AppsV1().Deployments(ns).Get(ctx, "payments", metav1.GetOptions{})
	m := newMachine(t)
	for _, args := range [][]string{
		{"svc/demo", "-n", ns, "-l", "3000", "-x", "x-dev:forged", "-w", "--timeout", "30s"},
		{"close", "svc/demo", "-n", ns},
	} {
		out := m.run(t, false, args...)
		if !strings.Contains(out, "names deployment payments") || !strings.Contains(out, "nothing was changed") {
			t.Fatalf("%v with a forged record:\n%s", args, out)
		}
	}
	svcAfter, _ := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	payAfter, _ := cs.AppsV1().Deployments(ns).Get(ctx, "payments", metav1.GetOptions{})
	if svcAfter.ResourceVersion != svcBefore.ResourceVersion || payAfter.ResourceVersion != payBefore.ResourceVersion {
		t.Fatal("a forged record led to a change of the Service or of deployment payments")
	}
}
