package session

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// ledger is a StatefulSet with one pod behind the Service "shop".
func ledger() (*appsv1.StatefulSet, *corev1.Pod) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "ns", UID: "ledger-uid"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptrTo(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/ledger:3",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				}}},
			},
		},
		Status: appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 2},
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ledger-0", Namespace: "ns", Labels: map[string]string{"app": "shop"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "ledger", UID: "ledger-uid", Controller: ptrTo(true)}}}}
	return sts, pod
}

// deploymentObjects are original(), rolled out, its ReplicaSet and a pod.
func deploymentObjects() []runtime.Object {
	orig := original()
	orig.Status.UpdatedReplicas = 1
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "shop-6f7", Namespace: "ns", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "shop", UID: orig.UID, Controller: ptrTo(true)}}},
		Spec: appsv1.ReplicaSetSpec{Template: orig.Spec.Template}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop-6f7-x", Namespace: "ns", Labels: map[string]string{"app": "shop"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptrTo(true)}}}}
	return []runtime.Object{orig, rs, pod}
}

// allocateClusterIPs makes cs give every Service it creates a ClusterIP,
// as the API server does.
func allocateClusterIPs(cs *fake.Clientset) {
	cs.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateActionImpl).Object.(*corev1.Service)
		if s.Spec.ClusterIP == "" {
			s.Spec.ClusterIP = "10.0.9.9"
		}
		s.UID = "decoy-uid"
		return false, nil, nil
	})
}

func shopService() *corev1.Service {
	svc := service(intstr.FromString("http"))
	svc.Spec.ClusterIP = "10.0.0.7"
	return svc
}

// The mode: the decoy by default for a StatefulSet, the copy for a
// Deployment unless --decoy; a dry run shows both objects.
func TestDryRunChoosesTheMode(t *testing.T) {
	sts, pod := ledger()
	for _, tc := range []struct {
		name  string
		objs  []runtime.Object
		mode  Mode
		decoy bool
	}{
		{"statefulset by default", []runtime.Object{sts, pod}, ModeAuto, true},
		{"statefulset with --decoy=false", []runtime.Object{sts, pod}, ModeCopy, false},
		{"deployment by default", deploymentObjects(), ModeAuto, false},
		{"deployment with --decoy", deploymentObjects(), ModeDecoy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(append(tc.objs, shopService())...)
			st, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, Mode: tc.mode, DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Decoy != nil; got != tc.decoy || st.Record.IsDecoy() != tc.decoy {
				t.Fatalf("decoy shown: %v, record's mode %q; want decoy %v", got, st.Record.Mode, tc.decoy)
			}
			if w := writes(cs); len(w) != 0 {
				t.Fatalf("a dry run wrote %v", w)
			}
			if !tc.decoy {
				return
			}
			ctrs := st.Copy.Spec.Template.Spec.Containers
			if len(ctrs) != 1 || ctrs[0].Name != workload.SidecarName {
				t.Fatalf("the proxy's pods run %d containers; want the sidecar alone", len(ctrs))
			}
			if !reflect.DeepEqual(st.Decoy.Spec.Selector, map[string]string{"app": "shop"}) || st.Decoy.Name != "shop-decoy-"+st.Record.ID {
				t.Fatalf("decoy %s selects %v; want the original's selector", st.Decoy.Name, st.Decoy.Spec.Selector)
			}
			if !reflect.DeepEqual(st.Switched.Spec.Selector, st.Record.SessionSelector()) {
				t.Fatalf("the Service would select %v", st.Switched.Spec.Selector)
			}
		})
	}
}

// A decoy cannot leave a port of the Service without a server: asked
// for, it is refused with what to do; by default, the workload is copied.
func TestDecoyTakesEveryPortOrNone(t *testing.T) {
	sts, pod := ledger()
	svc := shopService()
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "metrics", Port: 9100, TargetPort: intstr.FromInt32(9100)})
	cs := fake.NewClientset(sts, pod, svc)
	_, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", Ports: []string{"http"}, ProxyImage: testProxyImage, Mode: ModeDecoy, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "-p LOCAL:REMOTE for every port") {
		t.Fatalf("--decoy on one port of two: %v", err)
	}
	var w warnings
	st, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", Ports: []string{"http"}, ProxyImage: testProxyImage, DryRun: true, Progress: &w})
	if err != nil || st.Decoy != nil || !strings.Contains(strings.Join(w, "\n"), "ports you do not intercept") {
		t.Fatalf("default on one port of two: decoy %v, %v, warnings %q; want a copy, said", st != nil && st.Decoy != nil, err, w)
	}
}

// A start whose proxy never gets ready removes both objects it made and
// leaves the Service exactly as it was.
func TestFailedDecoyStartLeavesNothing(t *testing.T) {
	sts, pod := ledger()
	before := shopService()
	cs := fake.NewClientset(sts, pod, before.DeepCopy())
	allocateClusterIPs(cs)
	_, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, ReadyTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("a start whose proxy never got ready succeeded")
	}
	created := map[string]bool{}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" {
			created[a.GetResource().Resource] = true
		}
	}
	if !created["services"] || !created["deployments"] {
		t.Fatalf("the start created %v; want the decoy and the proxy", created)
	}
	assertNothingLeft(t, cs, before)
}

func assertNothingLeft(t *testing.T, cs *fake.Clientset, before *corev1.Service) {
	t.Helper()
	ctx := context.Background()
	got, err := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || !reflect.DeepEqual(got.Spec, before.Spec) || !reflect.DeepEqual(got.Annotations, before.Annotations) || !reflect.DeepEqual(got.Labels, before.Labels) {
		t.Fatalf("service not exactly restored (%v):\n got %+v %v\nwant %+v %v", err, got.Spec, got.Annotations, before.Spec, before.Annotations)
	}
	svcs, _ := cs.CoreV1().Services("ns").List(ctx, metav1.ListOptions{})
	if len(svcs.Items) != 1 {
		for _, s := range svcs.Items {
			if s.Name != "shop" {
				t.Errorf("service %s left behind", s.Name)
			}
		}
	}
	if ds, _ := cs.AppsV1().Deployments("ns").List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy}); len(ds.Items) != 0 {
		t.Fatalf("deployment %s left behind", ds.Items[0].Name)
	}
}

// decoySession is a decoy session as start makes it, switched; edit
// changes the decoy before it is stored.
func decoySession(t *testing.T, edit func(*corev1.Service)) (*fake.Clientset, *Record, *corev1.Service) {
	t.Helper()
	sts, pod := ledger()
	svc := shopService()
	rec := &Record{Version: RecordVersion, ID: "abc123", Service: "shop", Workload: "ledger", Kind: workload.KindStatefulSet,
		Created: time.Now().UTC().Truncate(time.Second), Mode: ModeDecoy, Decoy: workload.DecoyName("shop", "abc123")}
	rec.Copy = copyName("ledger", rec.ID)
	ports := []*corev1.ServicePort{&svc.Spec.Ports[0]}
	in := decoyInput(workload.FromStatefulSet(sts), svc, ports, rec, 1, testProxyImage, "10.0.9.9")
	decoy, err := workload.DecoyService(in)
	if err != nil {
		t.Fatal(err)
	}
	decoy.Spec.ClusterIP, decoy.UID = "10.0.9.9", "decoy-uid"
	proxy, plans, err := workload.ProxyDeployment(in)
	if err != nil {
		t.Fatal(err)
	}
	rec.setPorts([]PortEntry{{Port: plans[0].Port, Plan: plans[0]}})
	switched, err := Switch(svc, rec)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Annotations = map[string]string{AnnotationRecord: rec.Encode()}
	proxy.UID = "proxy-uid"
	if edit != nil {
		edit(decoy)
	}
	cs := fake.NewClientset(sts, pod, switched, decoy, proxy)
	admitAs(cs, nil)
	return cs, rec, svc
}

// Joining a decoy session checks the decoy as well as the proxy: a decoy
// whose selector a member pointed at pods of their own, or one that is
// gone, is refused and nothing is written.
func TestJoinChecksTheDecoy(t *testing.T) {
	cs, rec, _ := decoySession(t, nil)
	st, err := joinShop(t, cs, testProxyImage)
	if err != nil || st == nil || st.Record.ID != rec.ID {
		t.Fatalf("join of a genuine decoy session = %+v, %v", st, err)
	}
	st.Settle()

	for name, edit := range map[string]func(*corev1.Service){
		"selector pointed elsewhere": func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "mine"} },
		"labels of another session":  func(s *corev1.Service) { s.Labels[LabelSession] = "zzz999" },
		"external IPs":               func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.9"} },
	} {
		t.Run(name, func(t *testing.T) {
			cs, _, _ := decoySession(t, edit)
			if _, err := joinShop(t, cs, testProxyImage); err == nil || !strings.Contains(err.Error(), "decoy") {
				t.Fatalf("join with a decoy %s: %v; want refused", name, err)
			}
			if w := writes(cs); len(w) != 0 {
				t.Fatalf("a refused join wrote %v", w)
			}
		})
	}
	t.Run("decoy gone", func(t *testing.T) {
		cs, rec, _ := decoySession(t, nil)
		_ = cs.CoreV1().Services("ns").Delete(context.Background(), rec.Decoy, metav1.DeleteOptions{})
		if _, err := joinShop(t, cs, testProxyImage); err == nil || !strings.Contains(err.Error(), "is gone") {
			t.Fatalf("join without the decoy: %v; want refused", err)
		}
	})
}

// Close removes the proxy and the decoy and restores the Service exactly,
// from every state a crash leaves, and twice.
func TestCloseDecoyFromCrashStates(t *testing.T) {
	ctx := context.Background()
	for name, crash := range map[string]func(cs *fake.Clientset, rec *Record){
		"switched, all running": func(*fake.Clientset, *Record) {},
		"switched, proxy gone": func(cs *fake.Clientset, rec *Record) {
			_ = cs.AppsV1().Deployments("ns").Delete(ctx, rec.Copy, metav1.DeleteOptions{})
		},
		"switched, annotations wiped": func(cs *fake.Clientset, rec *Record) {
			s, _ := cs.CoreV1().Services("ns").Get(ctx, "shop", metav1.GetOptions{})
			delete(s.Annotations, AnnotationRecord)
			_, _ = cs.CoreV1().Services("ns").Update(ctx, s, metav1.UpdateOptions{})
		},
		"decoy made, proxy not yet": func(cs *fake.Clientset, rec *Record) {
			_ = cs.AppsV1().Deployments("ns").Delete(ctx, rec.Copy, metav1.DeleteOptions{})
			_, _ = cs.CoreV1().Services("ns").Update(ctx, shopService(), metav1.UpdateOptions{})
		},
	} {
		t.Run(name, func(t *testing.T) {
			cs, rec, before := decoySession(t, nil)
			crash(cs, rec)
			for i := 0; i < 2; i++ {
				if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
					t.Fatalf("close #%d: %v", i+1, err)
				}
			}
			assertNothingLeft(t, cs, before)
		})
	}
}

// A decoy of a start that is still creating its proxy (its claim fresh)
// is not a leftover: a close leaves it.
func TestCloseLeavesADecoyBeingStarted(t *testing.T) {
	ctx := context.Background()
	cs, rec, _ := decoySession(t, nil)
	_ = cs.AppsV1().Deployments("ns").Delete(ctx, rec.Copy, metav1.DeleteOptions{})
	_, _ = cs.CoreV1().Services("ns").Update(ctx, shopService(), metav1.UpdateOptions{})
	if err := beatOnce(ctx, cs, "ns", rec.ID, holderStart+"create-"+rec.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("ns").Get(ctx, rec.Decoy, metav1.GetOptions{}); err != nil {
		t.Fatalf("the decoy of a start under way was removed: %v", err)
	}
}

// A record cannot point a close at another Service to delete: the decoy's
// name follows from the Service and the session, and a Service of that
// name without the session's labels is left alone.
func TestDecoyRecordCannotNameAnotherService(t *testing.T) {
	rec := &Record{Version: 1, ID: "abc123", Service: "shop", Workload: "ledger", Kind: workload.KindStatefulSet, Copy: "ledger-intercept-abc123",
		Port: "http", Selector: map[string]string{"app": "shop"}, Mode: ModeDecoy, Decoy: "payments"}
	if _, err := DecodeRecord(rec.Encode()); err == nil || !strings.Contains(err.Error(), "names decoy") {
		t.Fatalf("a record naming service payments as its decoy: %v", err)
	}

	ctx := context.Background()
	rec.Decoy = workload.DecoyName("shop", "abc123")
	squatted := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: rec.Decoy, Namespace: "ns", Labels: map[string]string{"app": "theirs"}}}
	cs := fake.NewClientset(squatted)
	if err := deleteDecoy(ctx, cs, "ns", rec); err == nil {
		t.Fatal("a Service without the decoy's labels was taken for it")
	}
	if _, err := cs.CoreV1().Services("ns").Get(ctx, rec.Decoy, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Fatal("a Service that is not the decoy was deleted")
	}
}

// A decoy Service is not a Service to intercept.
func TestDecoyIsNotIntercepted(t *testing.T) {
	cs, rec, _ := decoySession(t, nil)
	_, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: rec.Decoy, ProxyImage: testProxyImage, DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "is the decoy of an intercept of service shop") {
		t.Fatalf("intercepting a decoy: %v", err)
	}
}
