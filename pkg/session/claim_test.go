package session

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// switchedWithCopy is a Service switched to a session whose copy exists,
// with the starting mark set to mark ("" for none).
func switchedWithCopy(t *testing.T, mark string) (*fake.Clientset, *Record) {
	t.Helper()
	rec := record(false)
	rec.Selector, rec.TargetPort = map[string]string{"app": "shop"}, ptrTo(intstr.FromInt32(8080))
	switched, err := Switch(service(intstr.FromInt32(8080)), record(false))
	if err != nil {
		t.Fatal(err)
	}
	cs := fake.NewClientset(switched)
	ann := map[string]string{AnnotationRecord: rec.Encode()}
	if mark != "" {
		ann[AnnotationStarting] = mark
	}
	_, err = cs.AppsV1().Deployments("ns").Create(context.Background(), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: rec.Copy, Namespace: "ns", Annotations: ann,
		Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cs, rec
}

// A developer is joining the session (their start keeps its mark fresh)
// while another closes: the close leaves the Service switched and the copy
// in place, says so, and the joiner keeps going.
func TestCloseLeavesASessionBeingJoined(t *testing.T) {
	ctx := context.Background()
	cs, rec := switchedWithCopy(t, "")
	b, err := startBeat(ctx, cs, "ns", rec.Copy)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()

	res, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", ID: rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	if res.Restored || len(res.Deleted) > 0 || !reflect.DeepEqual(res.Busy, []string{rec.Copy}) {
		t.Fatalf("close of a session being joined = %+v, want it left busy", res)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, rec.SessionSelector()) {
		t.Fatalf("the Service was switched back under the joiner: %v", svc.Spec.Selector)
	}
	if b.Lost() {
		t.Fatal("the joiner lost the session")
	}

	// Once the joiner is active (Settle), a close goes through at once.
	b.Stop()
	start := time.Now()
	res, err = Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err != nil || !res.Restored || len(res.Deleted) != 1 {
		t.Fatalf("close after the joiner settled = %+v, %v", res, err)
	}
	if d := time.Since(start); d > beatStale/2 {
		t.Errorf("close waited %s for a mark that was taken away", d)
	}
}

// A start crashed while its mark was on the copy: the mark stands still,
// and close takes it for a leftover after beatStale.
func TestCloseTakesAStillMarkForALeftover(t *testing.T) {
	ctx := context.Background()
	cs, _ := switchedWithCopy(t, beatValue())
	res, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err != nil || !res.Restored || len(res.Deleted) != 1 || len(res.Busy) != 0 {
		t.Fatalf("close with a leftover mark = %+v, %v", res, err)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "shop"}) {
		t.Fatalf("selector after close: %v", svc.Spec.Selector)
	}
}

// A close claimed the copy: a start still using it learns so (and starts
// over) instead of switching the Service to a copy that goes away.
func TestStartLearnsOfAClaim(t *testing.T) {
	ctx := context.Background()
	cs, rec := switchedWithCopy(t, "")
	b, err := startBeat(ctx, cs, "ns", rec.Copy)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Force: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * beatEvery)
	for !b.Lost() {
		if time.Now().After(deadline) {
			t.Fatal("the start did not learn that its copy was closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := startBeat(ctx, cs, "ns", rec.Copy); !errors.Is(err, ErrClosing) {
		t.Fatalf("joining a closed copy: %v, want ErrClosing", err)
	}
	if _, err := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the copy is still there: %v", err)
	}
}

// Two kubectl-intercepts resumed the same unswitched copy and both switch
// the Service to it: the second switch changes nothing, and the record
// keeps the Service's real original selector.
func TestSecondSwitchToTheSameSessionKeepsTheOriginal(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(service(intstr.FromInt32(8080)))
	for i := 0; i < 2; i++ {
		rec := record(false)
		if joined, err := switchService(ctx, cs, "ns", "shop", rec); err != nil || joined != nil {
			t.Fatalf("switch #%d: %v %v", i+1, joined, err)
		}
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	got, err := DecodeRecord(svc.Annotations[AnnotationRecord])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Selector, map[string]string{"app": "shop"}) {
		t.Fatalf("the record's original selector is %v after two switches", got.Selector)
	}
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
		t.Fatal(err)
	}
	svc, _ = cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "shop"}) {
		t.Fatalf("selector after close: %v", svc.Spec.Selector)
	}
}
