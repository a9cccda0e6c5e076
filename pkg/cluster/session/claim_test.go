package session

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
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
	_, err = cs.AppsV1().Deployments("ns").Create(context.Background(), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: rec.Copy, Namespace: "ns", Annotations: ann,
		Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mark != "" {
		// A start that crashed: its renewal stands still.
		if err := beatOnce(context.Background(), cs, "ns", rec.ID, holderStart+mark, nil); err != nil {
			t.Fatal(err)
		}
	}
	return cs, rec
}

// A developer is joining the session (their start keeps its mark fresh)
// while another closes: the close leaves the Service switched and the copy
// in place, says so, and the joiner keeps going.
func TestCloseLeavesASessionBeingJoined(t *testing.T) {
	ctx := context.Background()
	cs, rec := switchedWithCopy(t, "")
	b, err := startBeat(ctx, cs, "ns", rec.Copy, rec.ID)
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
	cs, _ := switchedWithCopy(t, "crashed")
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
	b, err := startBeat(ctx, cs, "ns", rec.Copy, rec.ID)
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
	if _, err := startBeat(ctx, cs, "ns", rec.Copy, rec.ID); !errors.Is(err, ErrClosing) {
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
		if _, err := Switch(service(intstr.FromInt32(8080)), rec); err != nil { // as its copy was made
			t.Fatal(err)
		}
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

// The interleavings of two kubectl-intercepts starting and closing one
// session at once, each made to happen by a reactor at the exact write
// where it matters.

// Two closes claim at once: the second one's create of the claim lands
// first. Both finish without error, the Service is restored exactly once
// and the copy is gone.
func TestTwoClosesClaimAtOnce(t *testing.T) {
	ctx := context.Background()
	cs, _ := switchedWithCopy(t, "")
	raced := false
	cs.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced {
			return false, nil, nil
		}
		raced = true
		// The other close's claim lands just before this one's.
		other := a.(k8stesting.CreateAction).GetObject().DeepCopyObject().(*coordinationv1.Lease)
		other.Spec.HolderIdentity = ptr.To(holderClose + "other")
		if err := cs.Tracker().Create(coordinationv1.SchemeGroupVersion.WithResource("leases"), other, "ns"); err != nil {
			t.Error(err)
		}
		return false, nil, nil
	})
	res, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err != nil || !res.Restored || len(res.Deleted) != 1 {
		t.Fatalf("close that lost the claim race = %+v, %v; want it to finish the other's close", res, err)
	}
	res, err = Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err != nil || res.Restored || len(res.Deleted) != 0 {
		t.Fatalf("the other close, after = %+v, %v", res, err)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "shop"}) || svc.Spec.Ports[0].TargetPort != intstr.FromInt32(8080) {
		t.Fatalf("service after two closes: %+v", svc.Spec)
	}
}

// A close's claim and a joiner's renewal race: the renewal lands first, so
// the claim's compare-and-swap fails; the close sees the heartbeat move and
// leaves the session to the joiner.
func TestClaimLosesToARenewal(t *testing.T) {
	ctx := context.Background()
	cs, rec := switchedWithCopy(t, "")
	if err := beatOnce(ctx, cs, "ns", rec.ID, holderStart+"joiner", nil); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderClose) {
			// The joiner renews between the close's read and its write.
			cur, _ := cs.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), "ns", l.Name)
			renewed := cur.(*coordinationv1.Lease).DeepCopy()
			now := metav1.NewMicroTime(time.Now().Add(time.Millisecond))
			renewed.Spec.RenewTime = &now
			renewed.ResourceVersion = "renewed"
			_ = cs.Tracker().Update(coordinationv1.SchemeGroupVersion.WithResource("leases"), renewed, "ns")
			return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, errors.New("renewed"))
		}
		return false, nil, nil
	})
	res, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err != nil || res.Restored || len(res.Deleted) != 0 || len(res.Busy) != 1 {
		t.Fatalf("close racing a renewal = %+v, %v; want the session left to the joiner", res, err)
	}
}

// A close claims between a joiner's read of the Service and its first
// renewal: the joiner's start sees the claim and starts a new session
// rather than joining one that goes away.
func TestJoinAfterAClaimStartsAnew(t *testing.T) {
	ctx := context.Background()
	cs, rec := genuineSession(t, nil)
	if ok, err := claim(ctx, cs, "ns", &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy,
		Labels: map[string]string{LabelSession: rec.ID}}}, holderClose+"closer", false); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	st, err := join(ctx, cs, svc, svc.Annotations[AnnotationRecord], StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage})
	if err != nil || st != nil {
		t.Fatalf("join of a claimed session = %+v, %v; want none (a new session)", st, err)
	}
}

// Two starters made copies and switch the Service at once: the second
// one's update conflicts (the first one's switch landed in between) and it
// joins the first one's session instead of overwriting its record.
func TestSecondStarterJoinsTheFirstSwitch(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(service(intstr.FromInt32(8080)))
	first := record(false)
	second := record(false)
	second.ID, second.Copy = "def456", "shop-intercept-def456"
	if _, err := Switch(service(intstr.FromInt32(8080)), second); err != nil { // as its copy was made
		t.Fatal(err)
	}
	raced := false
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if raced {
			return false, nil, nil
		}
		raced = true
		cur, _ := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("services"), "ns", "shop")
		sw, err := Switch(cur.(*corev1.Service), first)
		if err != nil {
			t.Error(err)
		}
		sw.ResourceVersion = "first"
		_ = cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("services"), sw, "ns")
		return true, nil, apierrors.NewConflict(corev1.Resource("services"), "shop", errors.New("switched"))
	})
	joined, err := switchService(ctx, cs, "ns", "shop", second)
	if err != nil || joined == nil || joined.Record.ID != first.ID {
		t.Fatalf("second switch = %+v, %v; want it to join session %s", joined, err, first.ID)
	}
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if rec, _ := DecodeRecord(svc.Annotations[AnnotationRecord]); rec == nil || rec.ID != first.ID || !reflect.DeepEqual(rec.Selector, map[string]string{"app": "shop"}) {
		t.Fatalf("the Service's record is %+v", rec)
	}
}
