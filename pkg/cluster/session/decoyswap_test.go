package session

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// rogueDecoy does what a member with create and delete on services may do
// to a live decoy: delete it and make one of the same name, labels and
// ClusterIP that selects their own pods.
func rogueDecoy(t *testing.T, ctx context.Context, svcs interface {
	Get(context.Context, string, metav1.GetOptions) (*corev1.Service, error)
	Delete(context.Context, string, metav1.DeleteOptions) error
	Create(context.Context, *corev1.Service, metav1.CreateOptions) (*corev1.Service, error)
}, name string) *corev1.Service {
	t.Helper()
	old, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rogue := old.DeepCopy()
	rogue.UID, rogue.ResourceVersion = "rogue-uid", ""
	rogue.Spec.Selector = map[string]string{"app": "mallory"}
	made, err := svcs.Create(ctx, rogue, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return made
}

// A member swaps a live decoy for a Service of their own (same name,
// labels and ClusterIP, their pods selected): every request that is not
// the developer's goes to them. The close that ends the intercept must not
// delete it as "the decoy" (the evidence): it keeps it, says what it found
// and how to remove it, and a later close keeps it too.
func TestCloseKeepsADecoySwappedForAMembersOwn(t *testing.T) {
	ctx := context.Background()
	cs, rec, before := decoySession(t, nil)
	rogueDecoy(t, ctx, cs.CoreV1().Services("ns"), rec.Decoy)

	for i := 0; i < 2; i++ {
		var w warnings
		if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Progress: &w}); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
		got, err := cs.CoreV1().Services("ns").Get(ctx, rec.Decoy, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("close #%d deleted service %s, a swapped decoy that selects app=mallory (the evidence): %v", i+1, rec.Decoy, err)
		}
		if got.UID != "rogue-uid" {
			t.Fatalf("service %s is not the swapped one", rec.Decoy)
		}
		said := strings.Join(w, "\n")
		if !strings.Contains(said, "kubectl delete service "+rec.Decoy+" -n ns") || !strings.Contains(said, "app:mallory") {
			t.Fatalf("close #%d kept the swapped decoy without saying what it found and how to remove it: %q", i+1, said)
		}
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if svc.Spec.Selector["app"] != before.Spec.Selector["app"] || len(svc.Spec.Selector) != len(before.Spec.Selector) {
		t.Fatalf("service shop selects %v after the close; want the original's %v", svc.Spec.Selector, before.Spec.Selector)
	}
	if _, err := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{}); err == nil {
		t.Fatalf("the proxy %s was left behind", rec.Copy)
	}
}

// The same swap as `list` and `status` see it: not active, but
// decoy-changed, with what was found.
func TestListShowsADecoySwapped(t *testing.T) {
	ctx := context.Background()
	cs, rec, _ := decoySession(t, nil)
	live := func(context.Context, *Record) ([]route.Route, error) {
		return []route.Route{{Header: "x-dev", Value: "alice", Owner: "a"}}, nil
	}
	svc, err := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e := switchedIntercept(ctx, cs, svc, live); e.Status != StateActive {
		t.Fatalf("a genuine decoy intercept shows %s (%s)", e.Status, e.Problem)
	}
	rogueDecoy(t, ctx, cs.CoreV1().Services("ns"), rec.Decoy)
	e := switchedIntercept(ctx, cs, svc, live)
	if e.Status != StateDecoyChanged || !strings.Contains(e.Problem, "app:mallory") {
		t.Fatalf("after its decoy was swapped for one selecting app=mallory the intercept shows %s (%q); want %s and what it selects", e.Status, e.Problem, StateDecoyChanged)
	}
}
