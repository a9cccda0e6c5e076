package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Attacks on --take-over by a member of the group (a planted copy, a
// deleted one, a planted count) and what stops each.

// A member (the Role alone, no scale rule) creates a "copy" of their own
// that names the Service and, in its own record, another Deployment of the
// namespace that is at zero on purpose (a standby), plus a take-over record
// of 500 replicas. A teammate who may scale (the optional take-over rule)
// closes the Service: close must not scale a workload that is not the
// Service's original, nor to a count no take-over of it recorded.
func TestCloseGivesBackOnlyTheServicesSession(t *testing.T) {
	cs, rec := genuineSession(t, nil)
	scaleAs(cs)
	ctx := context.Background()

	standby := original()
	standby.Name, standby.UID = "standby", "standby-uid"
	standby.Spec.Replicas = ptr.To(int32(0))
	standby.Status = appsv1.DeploymentStatus{}
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, standby, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	forged := *rec
	forged.ID, forged.Workload, forged.Copy = "evil1", "standby", "shop-evil"
	planted, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	planted = planted.DeepCopy()
	planted.Name, planted.UID, planted.ResourceVersion = "shop-evil", "evil-uid", ""
	planted.Labels = map[string]string{LabelManagedBy: ManagedByValue, LabelSession: "evil1"}
	planted.Spec.Replicas = ptr.To(int32(0))
	planted.Annotations = map[string]string{
		AnnotationRecord:   forged.Encode(),
		AnnotationTakeOver: `{"replicas":500,"at":"2026-12-01T00:00:00Z"}`,
	}
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, planted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	_, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if got := replicasOf(t, cs, "standby"); got != 0 {
		t.Fatalf("close of service shop (err %v) scaled deployment standby, which is not shop's original, to %d replicas on a planted record", err, got)
	}
}

// A member without the scale rule deletes the copy of a teammate's
// take-over (the policy lets members delete any copy). The count to give
// back lived on that copy alone: close restores the Service to an
// original at zero and says nothing, and the Service is down until
// someone notices.
func TestDeletedTakeOverCopyIsSaid(t *testing.T) {
	cs, rec := takenOverSession(t, 3)
	ctx := context.Background()
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.AppsV1().Deployments("ns").Delete(ctx, rec.Copy, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var warned warnings
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Progress: &warned}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(warned, func(w string) bool {
		return strings.Contains(w, "deployment/shop has 0 replicas") && strings.Contains(w, "kubectl scale deployment/shop -n ns")
	}) {
		t.Fatalf("close restored service shop to deployment/shop at 0 replicas (3 before the take-over) without a word: warnings %q", warned)
	}
}

// A member who starts a session writes a take-over record of 500 replicas
// on the copy when creating it (the policy confines the record's writes on
// update only) and never takes over: the original keeps running. Every
// developer who joins follows the original's scale, and each one's CLI
// scales the copy to the planted 500 the first time the original moves.
func TestFollowerIgnoresAPlantedTakeOver(t *testing.T) {
	orig := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "shop"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2))}}
	cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ledger-intercept-abc", Namespace: "shop",
		Annotations: map[string]string{AnnotationTakeOver: `{"replicas":500,"at":"2026-12-01T00:00:00Z"}`}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))}}
	synctest.Test(t, func(t *testing.T) {
		cs := fake.NewClientset(orig, cp)
		rec := &Record{ID: "abc", Workload: "ledger", Kind: workload.KindStatefulSet, Copy: cp.Name}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = FollowScale(ctx, cs, nil, "shop", rec, t.Logf)
		}()
		defer func() { cancel(); <-done }()
		time.Sleep(time.Second) // simulated: the watch is up
		synctest.Wait()
		s, _ := cs.AppsV1().StatefulSets("shop").Get(ctx, "ledger", metav1.GetOptions{})
		s.Spec.Replicas = ptr.To(int32(3))
		if _, err := cs.AppsV1().StatefulSets("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := copyReplicas(t, cs, cp.Name); n != 3 {
			t.Fatalf("the copy has %d replicas, want the original's 3 (not the planted take-over's 500)", n)
		}
	})
}

// The same planted copy, against a closer without the optional scale rule
// (the Role as shipped): reading the planted "original"'s scale is
// forbidden, and every `close svc/shop` (and `close --all`) fails on a
// Deployment that is not the Service's.
func TestPlantedCopyDoesNotBlockClose(t *testing.T) {
	cs, rec := genuineSession(t, nil)
	ctx := context.Background()
	forged := *rec
	forged.ID, forged.Workload, forged.Copy = "evil1", "shop", "shop-evil"
	planted, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	planted = planted.DeepCopy()
	planted.Name, planted.UID, planted.ResourceVersion = "shop-evil", "evil-uid", ""
	planted.Labels = map[string]string{LabelManagedBy: ManagedByValue, LabelSession: "evil1"}
	planted.Annotations = map[string]string{AnnotationRecord: forged.Encode(), AnnotationTakeOver: `{"replicas":5,"at":"2026-12-01T00:00:00Z"}`}
	if _, err := cs.AppsV1().Deployments("ns").Create(ctx, planted, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments/scale"}, "shop", errors.New("RBAC"))
	})
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
		t.Fatalf("close of service shop with a planted copy beside the genuine one: %v", err)
	}
}
