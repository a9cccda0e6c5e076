//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// ledgerLabels select the StatefulSet of the decoy tests.
var ledgerLabels = map[string]string{"app": "ledger"}

// createLedger makes a StatefulSet "ledger" of the demo app with its
// Service: each pod answers with its name (its stable identity) and, as
// its message, its own UID, which it holds from its start: a copy or a
// restarted pod answers with another.
func createLedger(t *testing.T, ns string, replicas int32) *corev1.Service {
	t.Helper()
	ctx := t.Context()
	tmpl := demoTemplate(ledgerLabels)
	c := &tmpl.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: "MESSAGE", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}})
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(replicas), ServiceName: "ledger",
			Selector: &metav1.LabelSelector{MatchLabels: ledgerLabels}, Template: tmpl,
			PodManagementPolicy: appsv1.ParallelPodManagement,
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: ledgerLabels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the ledger's pods ready", func() bool {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "ledger", metav1.GetOptions{})
		return err == nil && s.Status.ReadyReplicas == replicas
	})
	return svc
}

// decoyState is what a user would compare before and after a decoy
// intercept: the Service as a whole, every Service and Deployment of the
// namespace by name, and the original's pods with their UIDs and restarts.
type decoyState struct {
	Spec        corev1.ServiceSpec
	Labels      map[string]string
	Annotations map[string]string
	Services    []string
	Deployments []string
	Pods        []string // name uid restarts, of the pods labeled app=<app>
}

func takeDecoyState(t *testing.T, ns, svcName, app string) decoyState {
	t.Helper()
	ctx := t.Context()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := decoyState{Spec: svc.Spec, Labels: svc.Labels, Annotations: svc.Annotations}
	svcs, _ := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	for _, x := range svcs.Items {
		s.Services = append(s.Services, x.Name)
	}
	ds, _ := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	for _, d := range ds.Items {
		s.Deployments = append(s.Deployments, d.Name)
	}
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	for _, p := range pods.Items {
		restarts := int32(0)
		for _, c := range p.Status.ContainerStatuses {
			restarts += c.RestartCount
		}
		s.Pods = append(s.Pods, fmt.Sprintf("%s %s %d", p.Name, p.UID, restarts))
	}
	slices.Sort(s.Pods)
	return s
}

// assertNothingLeft waits until the namespace is as before: no decoy, no
// proxy Deployment or pods, the Service exactly as it was, the original's
// pods the same pods, never restarted.
func assertNothingLeft(t *testing.T, ns, svcName, app string, before decoyState) {
	t.Helper()
	var after decoyState
	waitFor(t, 90*time.Second, "the decoy and the proxy to be gone", func() bool {
		after = takeDecoyState(t, ns, svcName, app)
		pods, _ := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "intercept.kubectl.dev/session"})
		return reflect.DeepEqual(before, after) && len(pods.Items) == 0
	})
}

// identity is the part of the demo's answer that says which pod answered
// and what it holds.
type identity struct {
	Pod     string `json:"pod"`
	Message string `json:"message"`
}

// whoAnswers sends one request on a new connection through the Service's
// ClusterIP from the client pod and decodes the answer.
func whoAnswers(t *testing.T, svc *corev1.Service, h http.Header) identity {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, serviceURL(svc), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := httpClient(5 * time.Second).Do(req)
	if err != nil {
		t.Fatalf("request through service %s: %v", svc.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var id identity
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &id) != nil {
		t.Fatalf("request through service %s: status %d, body %q", svc.Name, resp.StatusCode, body)
	}
	return id
}

// originalUIDs are the original's pods by name, with their UIDs.
func originalUIDs(t *testing.T, ns, app string) map[string]string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if _, ours := p.Labels["intercept.kubectl.dev/session"]; !ours {
			out[p.Name] = string(p.UID)
		}
	}
	return out
}

// checkDecoyRoutes sends requests with and without the header: those with
// it reach the laptop, those without the original's own pods, every one
// of them in turn, each with what it held from its start.
func checkDecoyRoutes(t *testing.T, svc *corev1.Service, originals map[string]string, withMessage bool) {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; i < 60 && len(seen) < len(originals); i++ {
		if got := whoAnswers(t, svc, header("X-C6O-INTERCEPT", "yes")); got.Pod != laptopPod {
			t.Fatalf("header request %d reached %q, want the laptop", i+1, got.Pod)
		}
		got := whoAnswers(t, svc, nil)
		uid, ok := originals[got.Pod]
		if !ok {
			t.Fatalf("request %d without the header reached %q, not a pod of the original (%v)", i+1, got.Pod, originals)
		}
		if withMessage && got.Message != uid {
			t.Fatalf("pod %s answered with %q, not what it held from its start (%s)", got.Pod, got.Message, uid)
		}
		seen[got.Pod] = true
	}
	if len(seen) < len(originals) {
		t.Fatalf("requests without the header reached %v of the original's pods %v", seen, originals)
	}
}

// A StatefulSet is intercepted by decoy by default: requests without the
// header are answered by its own pods, with their identities and what they
// hold; header requests by the laptop; the original's pods are never
// replaced; close leaves nothing of the decoy or the proxy and the Service
// exactly as it was.
func TestDecoyKeepsTheStatefulSetServing(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := createLedger(t, ns, 2)
	originals := originalUIDs(t, ns, "ledger")
	before := takeDecoyState(t, ns, "ledger", "ledger")
	port := laptop(t, laptopPod)

	p := startPlugin(t, "svc/ledger", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 3*time.Minute)
	if out := p.output(); !strings.Contains(out, "the decoy") || strings.Contains(out, "copy of statefulset/ledger") ||
		strings.Contains(out, "EmptyClaimTemplates") {
		t.Errorf("the start does not say it serves by decoy:\n%s", out)
	}
	checkDecoyRoutes(t, svc, originals, true)

	// The proxy's pods run the sidecar alone.
	proxies, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "intercept.kubectl.dev/session"})
	if err != nil || len(proxies.Items) == 0 {
		t.Fatalf("no proxy pods (%v)", err)
	}
	for _, pod := range proxies.Items {
		if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Name != workload.SidecarName {
			t.Errorf("proxy pod %s runs %d containers, want the sidecar alone", pod.Name, len(pod.Spec.Containers))
		}
	}
	if status, err := runPlugin(t, "status", "svc/ledger", "-n", ns); err != nil || !strings.Contains(status, "statefulset/ledger") {
		t.Errorf("status (%v):\n%s", err, status)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the intercept ended with %v:\n%s", err, p.output())
	}
	assertNothingLeft(t, ns, "ledger", "ledger", before)
	if got := originalUIDs(t, ns, "ledger"); !reflect.DeepEqual(got, originals) {
		t.Fatalf("the original's pods changed: %v, were %v", got, originals)
	}
}

// A Deployment keeps the copy unless --decoy: with it, the original's
// pods keep answering what is not the developer's, and close leaves
// nothing. --decoy with --take-over is refused before anything changes.
func TestDecoyForADeployment(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	originals := originalUIDs(t, ns, "demo")
	before := takeDecoyState(t, ns, "demo", "demo")
	port := laptop(t, laptopPod)

	out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--decoy", "--take-over")
	if err == nil || !strings.Contains(out, "--take-over and --decoy contradict each other") {
		t.Errorf("--decoy --take-over: want a refusal with the reason, got %v:\n%s", err, out)
	}
	if dry, err := runPlugin(t, "svc/demo", "-n", ns, "--dry-run", "--decoy"); err != nil ||
		!strings.Contains(dry, "name: demo-decoy-") || !strings.Contains(dry, "kind: Deployment") {
		t.Errorf("--dry-run --decoy does not show the decoy and the proxy (%v):\n%s", err, dry)
	}

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--decoy")
	p.waitOutput(t, "Intercepting service", 3*time.Minute)
	checkDecoyRoutes(t, svc, originals, false)
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the intercept ended with %v:\n%s", err, p.output())
	}
	assertNothingLeft(t, ns, "demo", "demo", before)
}

// A decoy intercept whose plugin is killed (-9) leaves the decoy and the
// proxy: close removes both and restores the Service; so does the end of
// the next intercept, which joins what the killed one left.
func TestDecoyAfterACrash(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := createLedger(t, ns, 1)
	originals := originalUIDs(t, ns, "ledger")
	before := takeDecoyState(t, ns, "ledger", "ledger")
	port := laptop(t, laptopPod)

	killed := func() {
		t.Helper()
		p := startPlugin(t, "svc/ledger", "-n", ns, "-l", strconv.Itoa(port))
		p.waitOutput(t, "Intercepting service", 3*time.Minute)
		p.cmd.Process.Kill()
		p.cmd.Wait()
		svcs, _ := cs.CoreV1().Services(ns).List(t.Context(), metav1.ListOptions{LabelSelector: workload.LabelDecoyOf + "=ledger"})
		ds, _ := cs.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-intercept"})
		if len(svcs.Items) != 1 || len(ds.Items) != 1 {
			t.Fatalf("after kill -9: %d decoys and %d proxies, want one of each", len(svcs.Items), len(ds.Items))
		}
		// The sidecars drop the killed CLI's route once its port-forward
		// has closed; until then a close rightly sees it live and stays.
		waitFor(t, 30*time.Second, "the killed intercept's route to drop", func() bool {
			out, err := runPlugin(t, "list", "-n", ns)
			return err == nil && strings.Contains(out, "idle")
		})
	}

	killed()
	if out, err := runPlugin(t, "close", "svc/ledger", "-n", ns); err != nil {
		t.Fatalf("close after the crash: %v\n%s", err, out)
	}
	assertNothingLeft(t, ns, "ledger", "ledger", before)

	killed()
	q := startPlugin(t, "svc/ledger", "-n", ns, "-l", strconv.Itoa(port))
	q.waitOutput(t, "Intercepting service", 3*time.Minute)
	checkDecoyRoutes(t, svc, originals, true)
	q.cmd.Process.Signal(syscall.SIGINT)
	if err := q.cmd.Wait(); err != nil {
		t.Fatalf("the next intercept: %v\n%s", err, q.output())
	}
	assertNothingLeft(t, ns, "ledger", "ledger", before)
}

// The Role lets a member create and delete Services for the decoy, and the
// admission policy confines it: a hostile member cannot make a Service
// that takes traffic callers send elsewhere (external IPs, a node port, a
// load balancer, the name of a Service callers use), one that selects an
// intercept's pods, nor delete or change a Service that is not a decoy.
// The decoy intercept itself works for a member under the policy.
func TestDecoyPolicyConfinesServices(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := createLedger(t, ns, 1)
	group := rbacGroup(ns)
	installRBAC(t, ns, group)
	const user = "e2e-decoy"
	as := impersonate(t, user, group)
	ctx := t.Context()
	dryCreate := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	dryDelete := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}

	decoyLike := func(mutate func(*corev1.Service)) *corev1.Service {
		s, err := workload.DecoyService(workload.DecoyInput{Service: svc, Ports: []*corev1.ServicePort{&svc.Spec.Ports[0]},
			DecoyName: workload.DecoyName("ledger", "abc123"),
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept", "intercept.kubectl.dev/session": "abc123"}})
		if err != nil {
			t.Fatal(err)
		}
		if mutate != nil {
			mutate(s)
		}
		return s
	}
	if _, err := as.CoreV1().Services(ns).Create(ctx, decoyLike(nil), dryCreate); err != nil {
		t.Errorf("a decoy as kubectl-intercept makes it: want it allowed, got %v", err)
	}
	for what, mutate := range map[string]func(*corev1.Service){
		"external IPs (CVE-2020-8554)": func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"10.200.0.1"} },
		"a node port":                  func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort },
		"a load balancer":              func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer },
		"headless":                     func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone },
		"the name callers use":         func(s *corev1.Service) { s.Name = "payments" },
		"without our labels":           func(s *corev1.Service) { delete(s.Labels, "app.kubernetes.io/managed-by") },
		"selecting an intercept's pods": func(s *corev1.Service) {
			s.Spec.Selector = map[string]string{"intercept.kubectl.dev/session": "zzz999"}
		},
		"with no selector": func(s *corev1.Service) { s.Spec.Selector = nil },
		"with an annotation": func(s *corev1.Service) {
			s.Annotations = map[string]string{"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}
		},
	} {
		_, err := as.CoreV1().Services(ns).Create(ctx, decoyLike(mutate), dryCreate)
		if !refusedByPolicy(err) {
			t.Errorf("a decoy with %s: want the admission policy's refusal, got %v", what, err)
		}
	}
	if err := as.CoreV1().Services(ns).Delete(ctx, "ledger", dryDelete); !refusedByPolicy(err) {
		t.Errorf("deleting the Service itself: want the admission policy's refusal, got %v", err)
	}

	// The decoy intercept, as the member: its decoy cannot be changed.
	port := laptop(t, laptopPod)
	before := takeDecoyState(t, ns, "ledger", "ledger")
	p := startPlugin(t, "--as", user, "--as-group", group, "-n", ns, "svc/ledger", "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 3*time.Minute)
	if got := whoAnswers(t, svc, header("X-C6O-INTERCEPT", "yes")); got.Pod != laptopPod {
		t.Errorf("header request reached %q, want the laptop", got.Pod)
	}
	decoys, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: workload.LabelDecoyOf + "=ledger"})
	if err != nil || len(decoys.Items) != 1 {
		t.Fatalf("the member's intercept made %d decoys (%v), want one", len(decoys.Items), err)
	}
	stolen := decoys.Items[0].DeepCopy()
	stolen.Spec.Selector = map[string]string{"app": "mine"}
	if _, err := as.CoreV1().Services(ns).Update(ctx, stolen, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); !refusedByPolicy(err) {
		t.Errorf("pointing a decoy's selector elsewhere: want the admission policy's refusal, got %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the member's intercept ended with %v:\n%s", err, p.output())
	}
	assertNothingLeft(t, ns, "ledger", "ledger", before)
}
