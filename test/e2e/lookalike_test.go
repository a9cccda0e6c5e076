//go:build e2e

package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A holder of the Role creates a look-alike of the victim's copy: a
// Deployment of its own whose pods carry the victim's session label and an
// intercept-proxy container (what the admission policy allows). The
// victim's CLI names it and leaves it alone: its pod is never a tunnel's
// end, never admitted, never the relay (not even when the relay's pod
// goes and the look-alike is the oldest pod with the label), its sidecar
// holds no route of the victim's, and the victim's requests keep reaching
// the victim's laptop through the Service.
func TestLookAlikeCopyGetsNothing(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 2})
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptop(t, "alice")), "-x", "x-dev:alice", "-w")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	cp := theCopy(t, ns)
	id := cp.Labels["intercept.kubectl.dev/session"]
	if id == "" {
		t.Fatalf("the copy %s has no session label", cp.Name)
	}

	// The look-alike: the copy's own template (session label, sidecar,
	// readiness gate) under a Deployment the victim's CLI did not make.
	tmpl := *cp.Spec.Template.DeepCopy()
	tmpl.Labels["lookalike"] = "yes"
	replicas := int32(1)
	look := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo-lookalike", Labels: map[string]string{"intercept.kubectl.dev/session": id}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: tmpl,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"intercept.kubectl.dev/session": id, "lookalike": "yes"}}},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), look, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var fake corev1.Pod
	waitFor(t, 2*time.Minute, "the look-alike's pod to run its sidecar", func() bool {
		pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "lookalike=yes"})
		if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.PodIP == "" {
			return false
		}
		for _, c := range pods.Items[0].Status.ContainerStatuses {
			if c.Name == "intercept-proxy" && c.State.Running != nil {
				fake = pods.Items[0]
				return true
			}
		}
		return false
	})
	p.waitOutput(t, "warning: pod "+fake.Name+" carries this intercept's label but is not a pod of copy "+cp.Name, 30*time.Second)

	// The relay's pod goes: the look-alike is now the oldest pod with the
	// label, yet another pod of the copy relays.
	relay := relayOf(t, p)
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), relay, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReplacement(t, ns, relay, 2)
	pods := readyCopyPods(t, cp)
	waitFor(t, 30*time.Second, "alice's route on the copy's 2 pods", func() bool {
		for _, pod := range pods {
			if !strings.Contains(p.output(), "route up: pod "+pod.Name) {
				return false
			}
		}
		return true
	})
	if strings.Contains(p.output(), "route up: pod "+fake.Name) || regexp.MustCompile(`pod `+regexp.QuoteMeta(fake.Name)+` relays`).MatchString(p.output()) {
		t.Fatalf("the look-alike pod %s got alice's route:\n%s", fake.Name, p.output())
	}
	if strings.Contains(p.output(), "admitting this CLI on pod "+fake.Name) {
		t.Fatalf("alice's CLI tried to admit itself on the look-alike:\n%s", p.output())
	}

	// The copy's pods send alice's requests to her laptop; the look-alike's
	// sidecar holds no route of hers: her header reaches its app.
	everyPodRoutes(t, pods, 5, "alice")
	data, _ := sidecarPorts(t, fake)
	e, code, err := get("http://"+fake.Status.PodIP+":"+data+"/", header("x-dev", "alice"))
	if err != nil || code != 200 || e.Pod == "alice" {
		t.Fatalf("alice's header sent to the look-alike's sidecar reached %q (status %d, %v): it holds her route", e.Pod, code, err)
	}
	for i := 0; i < 20; i++ {
		e, code, err := get(serviceURL(svc), header("x-dev", "alice"))
		if err != nil || code != 200 || e.Pod != "alice" {
			t.Fatalf("alice's request %d through the Service reached %q (status %d, %v)", i+1, e.Pod, code, err)
		}
	}
	if strings.Contains(p.output(), "held on pod") {
		t.Fatalf("an alarm without a conflict:\n%s", p.output())
	}
}
