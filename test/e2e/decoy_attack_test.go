//go:build e2e

package e2e

import (
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A teammate deletes the live decoy of an intercept and makes a Service
// of the same name, labels and ClusterIP that selects their own pods
// (what the admission policy admits a member): every request that is not
// the developer's would go to them. The running intercept says so and
// ends, the Service selects the original's pods again, and its close (and
// a later one) keeps the swapped Service as evidence, with the command to
// remove it.
func TestDecoySwappedForAMembersOwnEndsTheIntercept(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createLedger(t, ns, 1)
	port := laptop(t, laptopPod)
	ctx := t.Context()

	p := startPlugin(t, "svc/ledger", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 3*time.Minute)
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()

	decoys, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: "intercept.kubectl.dev/decoy-of=ledger"})
	if err != nil || len(decoys.Items) != 1 {
		t.Fatalf("the decoy of service ledger: %v (%d found)", err, len(decoys.Items))
	}
	decoy := decoys.Items[0]
	if err := cs.CoreV1().Services(ns).Delete(ctx, decoy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rogue := decoy.DeepCopy()
	rogue.ResourceVersion, rogue.UID, rogue.ManagedFields = "", "", nil
	rogue.Spec.Selector = map[string]string{"app": "mallory"}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, rogue, metav1.CreateOptions{}); err != nil {
		t.Fatalf("making the swapped decoy with ClusterIP %s: %v", decoy.Spec.ClusterIP, err)
	}

	select {
	case <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the decoy was swapped for one selecting app=mallory and the intercept went on for 90s:\n%s", p.output())
	}
	if out := p.output(); !strings.Contains(out, "service "+decoy.Name+", the decoy behind the intercept") {
		t.Errorf("the intercept ended without saying its decoy was swapped:\n%s", out)
	}
	waitFor(t, time.Minute, "service ledger to select the original's pods again", func() bool {
		s, err := cs.CoreV1().Services(ns).Get(ctx, "ledger", metav1.GetOptions{})
		return err == nil && maps.Equal(s.Spec.Selector, ledgerLabels)
	})
	out, err := runPlugin(t, "close", "svc/ledger", "-n", ns)
	if err != nil {
		t.Fatalf("close after the swap: %v\n%s", err, out)
	}
	if remove := "kubectl delete service " + decoy.Name + " -n " + ns; !strings.Contains(p.output()+out, remove) {
		t.Errorf("neither the intercept's end nor close says the swapped decoy was kept and how to remove it:\n%s\n%s", p.output(), out)
	}
	if s, err := cs.CoreV1().Services(ns).Get(ctx, decoy.Name, metav1.GetOptions{}); err != nil || s.Spec.Selector["app"] != "mallory" {
		t.Fatalf("the swapped decoy (the evidence) was not kept: %v", err)
	}
}
