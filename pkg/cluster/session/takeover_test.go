package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// scaleAs answers the scale subresource of Deployments as the API server
// and the controllers would at once: spec.replicas is the count, and the
// pods follow it (status, ready).
func scaleAs(cs *fake.Clientset) {
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		name := a.(k8stesting.GetAction).GetName()
		o, err := cs.Tracker().Get(deployments, a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		d := o.(*appsv1.Deployment)
		n := ptr.Deref(d.Spec.Replicas, 1)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace},
			Spec: autoscalingv1.ScaleSpec{Replicas: n}, Status: autoscalingv1.ScaleStatus{Replicas: d.Status.Replicas}}, nil
	})
	cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		s := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		o, err := cs.Tracker().Get(deployments, a.GetNamespace(), s.Name)
		if err != nil {
			return true, nil, err
		}
		d := o.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = ptr.To(s.Spec.Replicas)
		d.Status.Replicas, d.Status.ReadyReplicas = s.Spec.Replicas, s.Spec.Replicas
		return true, s, cs.Tracker().Update(deployments, d, d.Namespace)
	})
}

// takenOverSession is a genuine session whose original runs n replicas,
// with a copy that has n ready pods.
func takenOverSession(t *testing.T, n int32) (*fake.Clientset, *Record) {
	t.Helper()
	cs, rec := genuineSession(t, func(d *appsv1.Deployment) { d.Status.ReadyReplicas = n })
	ctx := context.Background()
	orig, _ := cs.AppsV1().Deployments("ns").Get(ctx, "shop", metav1.GetOptions{})
	orig.Spec.Replicas, orig.Status.Replicas, orig.Status.ReadyReplicas = ptr.To(n), n, n
	if _, err := cs.AppsV1().Deployments("ns").Update(ctx, orig, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	scaleAs(cs)
	return cs, rec
}

func replicasOf(t *testing.T, cs *fake.Clientset, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// A take-over records the original's count on the copy, gives the copy
// that many replicas, and scales the original to zero; a second developer
// taking over the same session records nothing new (never the zero the
// first one left); close scales the original back, before the Service is
// restored.
func TestTakeOverAndGiveBack(t *testing.T) {
	cs, rec := takenOverSession(t, 3)
	ctx := context.Background()
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 0 {
		t.Fatalf("the original has %d replicas after the take-over, want 0", got)
	}
	if got := replicasOf(t, cs, rec.Copy); got != 3 {
		t.Fatalf("the copy has %d replicas, want the original's 3", got)
	}
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatalf("a second take-over: %v", err)
	}
	cp, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	if to, err := takeOverOf(cp); err != nil || to == nil || to.Replicas != 3 {
		t.Fatalf("the recorded take-over after a second one: %+v, %v; want 3 replicas", to, err)
	}

	cs.ClearActions()
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 3 {
		t.Fatalf("the original has %d replicas after close, want 3 back", got)
	}
	order := []string{}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "update" && (a.GetSubresource() == "scale" || a.GetResource().Resource == "services") {
			order = append(order, a.GetResource().Resource+"/"+a.GetSubresource())
		}
	}
	if i, j := slices.Index(order, "deployments/scale"), slices.Index(order, "services/"); i < 0 || j < 0 || i > j {
		t.Fatalf("close wrote %v: want the original scaled back before the Service is restored", order)
	}
}

// A count someone set on the original during the take-over is theirs:
// close keeps it and says so.
func TestGiveBackKeepsACountSetMeanwhile(t *testing.T) {
	cs, rec := takenOverSession(t, 3)
	ctx := context.Background()
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatal(err)
	}
	s, _ := cs.AppsV1().Deployments("ns").GetScale(ctx, "shop", metav1.GetOptions{})
	s.Spec.Replicas = 5
	if _, err := cs.AppsV1().Deployments("ns").UpdateScale(ctx, "shop", s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var warned warnings
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Progress: &warned}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 5 {
		t.Fatalf("the original has %d replicas after close, want the 5 set meanwhile", got)
	}
	if !slices.ContainsFunc(warned, func(w string) bool { return strings.Contains(w, "kept deployment/shop at 5 replica(s)") }) {
		t.Fatalf("close did not say it kept the count: %v", warned)
	}
}

// A close that cannot scale the original back (the Role lacks the scale
// subresource) leaves the Service on the copy, so nothing is down, and
// says how to finish by hand.
func TestGiveBackRefusedLeavesTheServiceOnTheCopy(t *testing.T) {
	cs, rec := takenOverSession(t, 2)
	ctx := context.Background()
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments/scale"}, "shop", errors.New("RBAC"))
	})
	_, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err == nil || !strings.Contains(err.Error(), "kubectl scale deployment/shop -n ns --replicas=2") {
		t.Fatalf("close = %v; want a refusal that says how to scale back", err)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if _, ok := svc.Spec.Selector[LabelSession]; !ok {
		t.Fatalf("the Service was restored to an original at zero: %v", svc.Spec.Selector)
	}
	if _, err := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{}); err != nil {
		t.Fatalf("the copy is gone: %v", err)
	}
}

// Only kinds with a replica count are taken over.
func TestCanTakeOver(t *testing.T) {
	for _, k := range []string{workload.KindDeployment, workload.KindStatefulSet, workload.KindReplicaSet} {
		if err := CanTakeOver(k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	for _, k := range []string{workload.KindPod, workload.KindRollout} {
		if err := CanTakeOver(k); err == nil || !strings.Contains(err.Error(), "without --take-over") {
			t.Errorf("%s: %v, want a refusal that says what to do", k, err)
		}
	}
}

// A take-over record a member wrote on the copy while the original runs
// (the policy lets members write it once) is not trusted: the take-over
// is refused and nothing is scaled.
func TestTakeOverRefusesAPlantedRecord(t *testing.T) {
	cs, rec := takenOverSession(t, 2)
	ctx := context.Background()
	cp, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	cp.Annotations[AnnotationTakeOver] = `{"replicas":500,"at":"2026-12-01T00:00:00Z"}`
	if _, err := cs.AppsV1().Deployments("ns").Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"})
	if err == nil || !strings.Contains(err.Error(), "was not written by a take-over") {
		t.Fatalf("take-over over a planted record = %v; want refused", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 2 {
		t.Fatalf("the original has %d replicas, want its 2 untouched", got)
	}
	if got := replicasOf(t, cs, rec.Copy); got == 500 {
		t.Fatal("the copy was scaled to the planted count")
	}
}
