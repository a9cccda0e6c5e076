package session

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

func service(target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", Annotations: map[string]string{"owner": "team-a"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "shop"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: target}},
		},
	}
}

func record(named bool) *Record {
	r := &Record{Version: 1, ID: "abc123", Service: "shop", Workload: "shop", Copy: "shop-intercept-abc123", Port: "http",
		Plan: workload.PortPlan{AppPort: 8080, SidecarPort: 18080, ControlPort: 18081}}
	if named {
		r.Plan.TargetPortName = "http"
	}
	return r
}

// Switch then Restore gives back the Service exactly, for named and numeric
// targetPorts.
func TestSwitchRestoreRoundTrip(t *testing.T) {
	for name, tc := range map[string]struct {
		target intstr.IntOrString
		named  bool
	}{"numeric": {intstr.FromInt32(8080), false}, "named": {intstr.FromString("http"), true}} {
		t.Run(name, func(t *testing.T) {
			orig := service(tc.target)
			rec := record(tc.named)
			sw, err := Switch(orig, rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sw.Spec.Selector, map[string]string{LabelSession: "abc123"}) {
				t.Fatalf("selector after switch: %v", sw.Spec.Selector)
			}
			wantTarget := intstr.FromInt32(18080)
			if tc.named {
				wantTarget = tc.target
			}
			if sw.Spec.Ports[0].TargetPort != wantTarget {
				t.Fatalf("targetPort after switch: %v, want %v", sw.Spec.Ports[0].TargetPort, wantTarget)
			}
			back, kept := Restore(sw, rec)
			if len(kept) != 0 || !reflect.DeepEqual(back, orig) {
				t.Fatalf("restore is not exact (kept %v):\n got %+v\nwant %+v", kept, back, orig)
			}
		})
	}
}

// A change someone made after the switch is kept (three-way restore).
func TestRestoreKeepsOthersChanges(t *testing.T) {
	rec := record(false)
	sw, _ := Switch(service(intstr.FromInt32(8080)), rec)
	sw.Spec.Selector = map[string]string{"app": "shop", "version": "v2"} // a deploy set it back, differently
	sw.Spec.Ports[0].TargetPort = intstr.FromInt32(9090)
	sw.Annotations["deployed"] = "today"
	back, kept := Restore(sw, rec)
	if back.Spec.Selector["version"] != "v2" || back.Spec.Ports[0].TargetPort.IntVal != 9090 || back.Annotations["deployed"] != "today" {
		t.Fatalf("someone else's change was reverted: %+v", back.Spec)
	}
	if _, ok := back.Annotations[AnnotationRecord]; ok {
		t.Fatal("our annotation is still there")
	}
	if len(kept) != 2 {
		t.Fatalf("kept = %v, want the selector and the targetPort reported", kept)
	}
}

// Close works from the states a crash leaves, and twice.
func TestCloseFromCrashStates(t *testing.T) {
	ctx := context.Background()
	copyDeployment := func(rec *Record) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
			Name: rec.Copy, Namespace: "ns",
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
			Annotations: map[string]string{AnnotationRecord: rec.Encode()},
		}}
	}
	rec := record(false)
	rec.Selector, rec.TargetPort = map[string]string{"app": "shop"}, ptrTo(intstr.FromInt32(8080))
	switched, _ := Switch(service(intstr.FromInt32(8080)), record(false))
	wiped := switched.DeepCopy()
	delete(wiped.Annotations, AnnotationRecord)

	for name, objs := range map[string][]*struct{ svc *corev1.Service }{
		"copy created, not switched":   {{service(intstr.FromInt32(8080))}},
		"switched, copy gone":          {{switched}},
		"switched, annotations wiped":  {{wiped}},
		"switched, copy still running": {{switched}},
	} {
		t.Run(name, func(t *testing.T) {
			cs := fake.NewClientset(objs[0].svc)
			if name != "switched, copy gone" {
				cs.AppsV1().Deployments("ns").Create(ctx, copyDeployment(rec), metav1.CreateOptions{})
			}
			for i := 0; i < 2; i++ {
				if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
					t.Fatalf("close #%d: %v", i+1, err)
				}
			}
			got, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
			if want := service(intstr.FromInt32(8080)); !reflect.DeepEqual(got.Spec, want.Spec) || !reflect.DeepEqual(got.Annotations, want.Annotations) {
				t.Fatalf("service not restored:\n got %+v %v\nwant %+v %v", got.Spec, got.Annotations, want.Spec, want.Annotations)
			}
			if ds, _ := cs.AppsV1().Deployments("ns").List(ctx, metav1.ListOptions{}); len(ds.Items) != 0 {
				t.Fatalf("copy left behind: %s", ds.Items[0].Name)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// A record hand-edited into nonsense on the Service: close restores from the
// copy's record; with no copy left it refuses and says how to repair by
// hand, changing nothing.
func TestCloseWithMangledRecord(t *testing.T) {
	ctx := context.Background()
	rec := record(false)
	rec.Selector, rec.TargetPort = map[string]string{"app": "shop"}, ptrTo(intstr.FromInt32(8080))
	switched, _ := Switch(service(intstr.FromInt32(8080)), record(false))
	switched.Annotations[AnnotationRecord] = `{"version":1,"id":"abc123","selector":{"app":` // cut short

	t.Run("copy holds the record", func(t *testing.T) {
		cs := fake.NewClientset(switched.DeepCopy())
		cs.AppsV1().Deployments("ns").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
			Name: rec.Copy, Namespace: "ns",
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
			Annotations: map[string]string{AnnotationRecord: rec.Encode()},
		}}, metav1.CreateOptions{})
		if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
			t.Fatalf("close: %v", err)
		}
		got, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
		if want := service(intstr.FromInt32(8080)); !reflect.DeepEqual(got.Spec, want.Spec) || !reflect.DeepEqual(got.Annotations, want.Annotations) {
			t.Fatalf("service not restored:\n got %+v %v\nwant %+v %v", got.Spec, got.Annotations, want.Spec, want.Annotations)
		}
	})
	t.Run("no copy left", func(t *testing.T) {
		cs := fake.NewClientset(switched.DeepCopy())
		_, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
		if err == nil || !strings.Contains(err.Error(), "kubectl annotate svc shop -n ns "+AnnotationRecord+"-") {
			t.Fatalf("close = %v, want a refusal that says how to repair by hand", err)
		}
		got, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
		if !reflect.DeepEqual(got.Spec, switched.Spec) {
			t.Fatalf("a refused close changed the Service: %+v", got.Spec)
		}
	})
}

// Whatever an annotation holds, decoding never panics, and a record it
// accepts is complete and survives a round trip.
func FuzzDecodeRecord(f *testing.F) {
	full := record(true)
	full.Selector, full.TargetPort = map[string]string{"app": "shop", "tier": "web"}, ptrTo(intstr.FromString("http"))
	f.Add(full.Encode())
	f.Add(record(false).Encode())
	f.Add(`{}`)
	f.Add(`null`)
	f.Add(`{"version":99,"id":"abc123"}`)
	f.Add(`{"version":1,"id":"ABC","service":"shop","workload":"shop","copy":"c","port":"http","selector":{"app":"shop"}}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := DecodeRecord(s)
		if err != nil {
			if r != nil {
				t.Fatal("a record and an error")
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if r.ID == "" || r.Service == "" || r.Copy == "" || len(r.Selector) == 0 {
			t.Fatalf("accepted an incomplete record: %+v", r)
		}
		again, err := DecodeRecord(r.Encode())
		if err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
		if !reflect.DeepEqual(again.Selector, r.Selector) || again.ID != r.ID || again.Copy != r.Copy {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, again)
		}
	})
}

// A running intercept learns within an interval that someone else deleted
// its copy.
func TestWaitCopyGone(t *testing.T) {
	cs := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-intercept-abc", Namespace: "shop"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan bool, 1)
	go func() { done <- WaitCopyGone(ctx, cs, "shop", "web-intercept-abc") }()
	select {
	case <-done:
		t.Fatal("reported gone while the copy exists")
	case <-time.After(100 * time.Millisecond):
	}
	if err := cs.AppsV1().Deployments("shop").Delete(ctx, "web-intercept-abc", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !<-done {
		t.Fatal("not reported gone after the copy was deleted")
	}
}

// A record on the Service that names a Deployment which is not our copy of
// that session (forged, or hand-edited) makes both joining and closing
// refuse with what to do, and nothing changes: not the Service, not the
// Deployment it names.
func TestForgedRecordIsRefused(t *testing.T) {
	rec := record(true)
	rec.Copy = "payments" // someone else's Deployment
	svc, err := Switch(service(intstr.FromString("http")), rec)
	if err != nil {
		t.Fatal(err)
	}
	payments := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "ns", Labels: map[string]string{"app": "payments"}}}
	cs := fake.NewClientset(svc, payments)
	ctx := context.Background()

	_, err = Start(ctx, cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: "p", ReadyTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "names deployment payments") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("joining a forged record: %v", err)
	}
	_, err = Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"})
	if err == nil || !strings.Contains(err.Error(), "not a copy made by kubectl-intercept") {
		t.Fatalf("closing a forged record: %v", err)
	}
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			t.Errorf("a forged record led to %s %s", v, a.GetResource().Resource)
		}
	}
}

// A close that finds, once it has claimed the copy, that another developer
// is live (StayIf) leaves everything as it was and takes its claim back.
func TestCloseStaysForALateArrival(t *testing.T) {
	ctx := context.Background()
	rec := record(false)
	switched, err := Switch(service(intstr.FromInt32(8080)), rec)
	if err != nil {
		t.Fatal(err)
	}
	cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy, Namespace: "ns",
		Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		Annotations: map[string]string{AnnotationRecord: rec.Encode()}}}
	cs := fake.NewClientset(switched, cp)
	asked := false
	res, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", StayIf: func(ctx context.Context, r *Record) bool {
		l, _ := cs.CoordinationV1().Leases("ns").Get(ctx, claimName(rec.ID), metav1.GetOptions{})
		asked = strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderClose) // asked while the claim holds
		return true
	}})
	if err != nil || !res.Stayed || res.Restored || len(res.Deleted) != 0 || !asked {
		t.Fatalf("close: %+v, %v (asked under the claim: %v)", res, err, asked)
	}
	l, err := cs.CoordinationV1().Leases("ns").Get(ctx, claimName(rec.ID), metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity != nil {
		t.Fatalf("the claim after a close that stayed: %+v, %v", l.Spec, err)
	}
	if s, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{}); s.Annotations[AnnotationRecord] == "" {
		t.Fatal("the Service was restored")
	}
}

// A deploy changes the Service's selector between the copy's creation (its
// record) and the switch: the switch is refused and says so, so the copy's
// record never differs from the switch that happened (a GitOps sync that
// later wipes the Service's record cannot make close restore a stale
// selector); when nothing changed, the two records are one.
func TestCopyRecordIsTheSwitchThatHappened(t *testing.T) {
	ctx := context.Background()
	made := func(svc *corev1.Service) (*fake.Clientset, *Record) {
		rec := record(false)
		if _, err := Switch(service(intstr.FromInt32(8080)), rec); err != nil { // as read at the start
			t.Fatal(err)
		}
		return fake.NewClientset(svc, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy, Namespace: "ns",
			Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
			Annotations: map[string]string{AnnotationRecord: rec.Encode()}}}), rec
	}

	deployed := service(intstr.FromInt32(8080))
	deployed.Spec.Selector = map[string]string{"app": "shop", "version": "v2"}
	cs, rec := made(deployed)
	_, err := switchService(ctx, cs, "ns", "shop", rec)
	if err == nil || !strings.Contains(err.Error(), "changed while its copy was starting") {
		t.Fatalf("switch after a deploy changed the Service: %v", err)
	}
	if svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{}); !reflect.DeepEqual(svc, deployed) {
		t.Fatalf("a refused switch changed the Service: %+v", svc)
	}

	cs, rec = made(service(intstr.FromInt32(8080)))
	if joined, err := switchService(ctx, cs, "ns", "shop", rec); err != nil || joined != nil {
		t.Fatalf("switch: %v %v", joined, err)
	}
	d, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	svc, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if d.Annotations[AnnotationRecord] != svc.Annotations[AnnotationRecord] {
		t.Fatalf("the copy's record differs from the Service's:\n copy %s\n svc  %s", d.Annotations[AnnotationRecord], svc.Annotations[AnnotationRecord])
	}
}

// An intercept a 0.1 release started (its record under the annotation key
// that is also the label key) is listed, and closed: the Service comes back
// exactly, and neither record is left.
func TestCloseAnInterceptOfAnOlderRelease(t *testing.T) {
	ctx := context.Background()
	rec := record(false)
	rec.Selector, rec.TargetPort = map[string]string{"app": "shop"}, ptrTo(intstr.FromInt32(8080))
	old, _ := Switch(service(intstr.FromInt32(8080)), rec)
	old.Annotations[LegacyAnnotationRecord] = old.Annotations[AnnotationRecord]
	delete(old.Annotations, AnnotationRecord)
	cs := fake.NewClientset(old, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: rec.Copy, Namespace: "ns",
		Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		Annotations: map[string]string{LegacyAnnotationRecord: rec.Encode()},
	}})

	list, err := Cluster{Client: cs}.List(ctx, "ns")
	if err != nil || len(list) != 1 || list[0].Service != "shop" || list[0].Copy != rec.Copy {
		t.Fatalf("list = %+v, %v; want the older release's intercept of shop", list, err)
	}
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
		t.Fatalf("close: %v", err)
	}
	got, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if want := service(intstr.FromInt32(8080)); !reflect.DeepEqual(got.Spec, want.Spec) || !reflect.DeepEqual(got.Annotations, want.Annotations) {
		t.Fatalf("service not restored:\n got %+v %v\nwant %+v %v", got.Spec, got.Annotations, want.Spec, want.Annotations)
	}
	if ds, _ := cs.AppsV1().Deployments("ns").List(ctx, metav1.ListOptions{}); len(ds.Items) != 0 {
		t.Fatalf("copy left behind: %s", ds.Items[0].Name)
	}
}

// The label that selects a copy's pods and the annotation that holds the
// record are different keys, and a switch writes only the new record key.
func TestRecordAndLabelKeysDiffer(t *testing.T) {
	if AnnotationRecord == LabelSession {
		t.Fatalf("the record annotation and the session label share the key %s", LabelSession)
	}
	svc := service(intstr.FromInt32(8080))
	svc.Annotations[LegacyAnnotationRecord] = record(false).Encode()
	sw, err := Switch(svc, record(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sw.Annotations[LegacyAnnotationRecord]; ok {
		t.Fatal("a switch kept the older release's record beside the new one")
	}
	if _, ok := sw.Annotations[AnnotationRecord]; !ok {
		t.Fatal("a switch wrote no record")
	}
}
