//go:build e2e

package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A teammate leaving never ends developer A's intercept: not a teammate
// whose port-forwards fail, not one who leaves with Ctrl-C as a copy pod
// is deleted; and list and status agree while a pod is replaced.
func TestLeavingNeverEndsATeammatesIntercept(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	alice, bob := laptop(t, "alice"), laptop(t, "bob")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(alice), "-x", "x-dev:alice", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	survives := func(what string) {
		t.Helper()
		if a.cmd.ProcessState != nil {
			t.Fatalf("%s: A's intercept ended:\n%s", what, a.output())
		}
		s, err := cs.CoreV1().Services(ns).Get(t.Context(), "demo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Spec.Selector["intercept.kubectl.dev/session"]; !ok {
			t.Fatalf("%s: the Service was restored under A: selector %v", what, s.Spec.Selector)
		}
		waitFor(t, 15*time.Second, what+": A's requests reaching A", func() bool {
			return routedTo(t, svc, header("x-dev", "alice")) == "alice"
		})
	}

	// A teammate whose plugin cannot port-forward closes the Service.
	role := shippedRole(t)
	role.Rules = slices.DeleteFunc(role.Rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "pods/portforward") })
	bindRole(t, ns, rbacUser, role)
	out, err := runPlugin(t, "--as", rbacUser, "-n", ns, "close", "svc/demo")
	if err != nil {
		t.Fatalf("the teammate's close: %v\n%s", err, out)
	}
	for _, want := range []string{"stays switched", "could not be asked", "--force"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the teammate is not told why nothing was restored (no %q):\n%s", want, out)
		}
	}
	t.Logf("the teammate without pods/portforward was told:\n%s", out)
	survives("after a close by a teammate without pods/portforward")

	// list and status agree while a copy pod is replaced.
	victim := readyCopyPods(t, theCopy(t, ns))[0]
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		listOut, err := runPlugin(t, "-n", ns, "list", "-o", "json")
		if err != nil {
			t.Fatalf("list: %v\n%s", err, listOut)
		}
		statusOut, err := runPlugin(t, "-n", ns, "status", "svc/demo", "-o", "json")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, statusOut)
		}
		var list struct {
			Items []struct{ Status struct{ Phase string } }
		}
		var status struct{ Status struct{ Phase string } }
		if json.Unmarshal([]byte(listOut), &list) != nil || json.Unmarshal([]byte(statusOut), &status) != nil || len(list.Items) != 1 {
			t.Fatalf("list or status unreadable:\n%s\n%s", listOut, statusOut)
		}
		if list.Items[0].Status.Phase != "active" || status.Status.Phase != "active" {
			t.Fatalf("while pod %s is replaced, list says %q and status %q; want both active", victim.Name, list.Items[0].Status.Phase, status.Status.Phase)
		}
		if pods := readyCopyPods(t, theCopy(t, ns)); len(pods) == 2 && !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return p.Name == victim.Name }) {
			t.Logf("list and status agreed %d times while the pod was replaced", i+1)
			break
		}
	}
	waitReplacement(t, ns, victim.Name, 2)

	// B joins and leaves with Ctrl-C at the moment a copy pod is deleted.
	const rounds = 5
	for r := 1; r <= rounds; r++ {
		b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "-x", "x-dev:bob", "-w")
		b.waitOutput(t, "Intercepting service", 2*time.Minute)
		pod := readyCopyPods(t, theCopy(t, ns))[r%2]
		if err := cs.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		b.cmd.Process.Signal(syscall.SIGINT)
		if err := b.cmd.Wait(); err != nil {
			t.Fatalf("round %d: B after Ctrl-C: %v\n%s", r, err, b.output())
		}
		if strings.Contains(b.output(), "is restored") {
			t.Fatalf("round %d: B restored the Service under A:\n%s", r, b.output())
		}
		survives("round " + strconv.Itoa(r))
		waitReplacement(t, ns, pod.Name, 2)
	}
	t.Logf("%d rounds of B leaving as a copy pod was deleted: A's intercept and the switch survived each", rounds)

	a.interrupt(t)
	assertRestored(t, ns, "demo", before)
	if leases, err := cs.CoordinationV1().Leases(ns).List(t.Context(), metav1.ListOptions{LabelSelector: managedBy}); err != nil || len(leases.Items) != 0 {
		t.Fatalf("leases left after the last one out: %v %v", leases, err)
	}
}
