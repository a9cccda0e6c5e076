package session

import (
	"context"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
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

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// fakeSidecars answers for each copy pod as its sidecar would: the routes
// developers registered on it (through its tunnel server, as a CLI does),
// or an error in place of the port-forward.
type fakeSidecars struct {
	mu      sync.Mutex
	servers map[string]*tunnel.Server
	tables  map[string]*fakeTable
	conns   map[string][]*tunnel.Client
	fail    map[string]error
	asked   atomic.Int32
}

// fakeTable is one sidecar's route table.
type fakeTable struct {
	mu     sync.Mutex
	routes map[int]route.Route
	next   int
}

func (t *fakeTable) Add(r route.Route, _ tunnel.DialFunc) (func(), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := t.next
	t.next++
	t.routes[id] = r
	return func() { t.mu.Lock(); delete(t.routes, id); t.mu.Unlock() }, nil
}

func (t *fakeTable) List() []route.Route { return t.ListOwned("") }

func (t *fakeTable) ListOwned(key string) []route.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []route.Route{}
	for i := 0; i < t.next; i++ {
		if r, ok := t.routes[i]; ok {
			r.Mine = key != "" && r.Client == key
			r.Client = ""
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeSidecars) server(pod string) *tunnel.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.servers[pod]; s != nil {
		return s
	}
	t := &fakeTable{routes: map[int]route.Route{}}
	s := &tunnel.Server{Pod: pod, Routes: t}
	f.servers[pod], f.tables[pod] = s, t
	return s
}

// set makes the routes rs (and only those) live on pod: each registered
// by a developer's tunnel that stays open.
func (f *fakeSidecars) set(pod string, rs ...route.Route) {
	srv := f.server(pod)
	f.mu.Lock()
	old := f.conns[pod]
	f.conns[pod] = nil
	f.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
	t := f.tables[pod]
	for deadline := time.Now().Add(2 * time.Second); len(t.List()) > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	for _, r := range rs {
		a, b := net.Pipe()
		go srv.ServeConn(context.Background(), b)
		cl, err := tunnel.NewClient(a)
		if err != nil {
			panic(err)
		}
		if _, err := cl.Register(r); err != nil {
			panic(err)
		}
		f.mu.Lock()
		f.conns[pod] = append(f.conns[pod], cl)
		f.mu.Unlock()
	}
}

func (f *fakeSidecars) dial(ctx context.Context, ns, pod string, port int) (io.ReadWriteCloser, error) {
	f.asked.Add(1)
	f.mu.Lock()
	err := f.fail[pod]
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	go f.server(pod).ServeConn(context.Background(), b)
	return a, nil
}

// sharedSession is a Service switched to a session whose copy runs pods,
// each with a sidecar the returned fakeSidecars answers for.
func sharedSession(t *testing.T, pods ...string) (*fake.Clientset, *Record, *fakeSidecars, Cluster) {
	t.Helper()
	rec := record(false)
	rec.Selector, rec.TargetPort = map[string]string{"app": "shop"}, ptrTo(intstr.FromInt32(8080))
	switched, err := Switch(service(intstr.FromInt32(8080)), record(false))
	if err != nil {
		t.Fatal(err)
	}
	objs := []runtime.Object{switched, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: rec.Copy, Namespace: "ns", UID: "copy-uid",
		Labels:      map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		Annotations: map[string]string{AnnotationRecord: rec.Encode()},
	}}}
	// The copy's pods, by the owner chain: copy -> ReplicaSet -> pod.
	objs = append(objs, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy + "-rs", Namespace: "ns", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: rec.Copy, UID: "copy-uid", Controller: ptr.To(true)}}}})
	for _, name := range pods {
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{LabelSession: rec.ID},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rec.Copy + "-rs", UID: "rs-uid", Controller: ptr.To(true)}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
				ContainerStatuses: []corev1.ContainerStatus{{Name: workload.SidecarName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
		})
	}
	cs := fake.NewClientset(objs...)
	f := &fakeSidecars{servers: map[string]*tunnel.Server{}, tables: map[string]*fakeTable{}, conns: map[string][]*tunnel.Client{}, fail: map[string]error{}}
	// The copy's pods go with it, as the garbage collector does.
	cs.PrependReactor("delete", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		for _, name := range pods {
			_ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), "ns", name)
		}
		return false, nil, nil
	})
	return cs, rec, f, Cluster{Client: cs, Dial: f.dial}
}

func devRoute(name string) route.Route {
	return route.Route{Header: "x-dev", Value: name, Owner: name + "@laptop", Client: strings.Repeat(name[:1], 40)}
}

func leaveAs(t *testing.T, c Cluster, key string) *Left {
	t.Helper()
	left, err := c.Leave(context.Background(), LeaveOptions{Namespace: "ns", Service: "shop", Key: key, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// stillSwitched fails the test unless the Service points at the session
// and its copy is there.
func stillSwitched(t *testing.T, cs *fake.Clientset, rec *Record) {
	t.Helper()
	svc, _ := cs.CoreV1().Services("ns").Get(context.Background(), "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, rec.SessionSelector()) {
		t.Fatalf("the Service was restored under a teammate: selector %v", svc.Spec.Selector)
	}
	if _, err := cs.AppsV1().Deployments("ns").Get(context.Background(), rec.Copy, metav1.GetOptions{}); err != nil {
		t.Fatalf("the copy was deleted under a teammate: %v", err)
	}
}

func restored(t *testing.T, cs *fake.Clientset) {
	t.Helper()
	svc, _ := cs.CoreV1().Services("ns").Get(context.Background(), "shop", metav1.GetOptions{})
	if !reflect.DeepEqual(svc.Spec.Selector, map[string]string{"app": "shop"}) {
		t.Fatalf("the Service was not restored: selector %v", svc.Spec.Selector)
	}
}

// One copy pod's sidecar cannot be asked (its port-forward fails): others
// may be live there, so the Service stays switched and the leaver is told
// which pod and why.
func TestLeaveKeepsTheServiceWhenAPodCannotBeAsked(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a", "shop-b")
	f.fail["shop-a"] = io.ErrUnexpectedEOF
	left := leaveAs(t, c, "")
	if !left.Stayed() || len(left.Unasked) != 1 || !strings.Contains(left.Unasked[0], "shop-a") {
		t.Fatalf("left = %+v, want it to stay because shop-a could not be asked", left)
	}
	if !strings.Contains(left.Why(), "shop-a") {
		t.Fatalf("the reason does not name the pod: %s", left.Why())
	}
	stillSwitched(t, cs, rec)
}

// A teammate's plugin cannot port-forward at all (a Role without
// pods/portforward): nothing is restored, and the reason says so.
func TestLeaveWithoutPortForwardPermission(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a", "shop-b")
	f.set("shop-a", devRoute("alice"))
	f.set("shop-b", devRoute("alice"))
	forbidden := apierrors.NewForbidden(corev1.Resource("pods/portforward"), "shop-a", nil)
	f.fail["shop-a"], f.fail["shop-b"] = forbidden, forbidden
	left := leaveAs(t, c, "")
	if !left.Stayed() || len(left.Unasked) != 2 || !strings.Contains(left.Why(), "forbidden") {
		t.Fatalf("left = %+v (%s), want it to stay, saying the port-forward is forbidden", left, left.Why())
	}
	stillSwitched(t, cs, rec)
	// With --force the Service is restored all the same.
	if _, err := c.Leave(context.Background(), LeaveOptions{Namespace: "ns", Service: "shop", Force: true, Timeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	restored(t, cs)
}

// A new copy pod (scaled up, rescheduled) sorts first and holds no route
// yet; the older pod holds a teammate's: the union keeps the Service
// switched.
func TestLeaveSeesARouteBehindANewPod(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-0new", "shop-9old")
	f.set("shop-9old", devRoute("alice"))
	left := leaveAs(t, c, "")
	if len(left.Others) != 1 || left.Others[0].Value != "alice" {
		t.Fatalf("left = %+v, want alice's route to keep the Service", left)
	}
	stillSwitched(t, cs, rec)
}

// Two pods disagree (one has seen alice's route, the other bob's): both
// count.
func TestLeaveTakesTheUnionOfPodsThatDisagree(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a", "shop-b")
	f.set("shop-a", devRoute("alice"))
	f.set("shop-b", devRoute("bob"))
	left := leaveAs(t, c, "")
	var got []string
	for _, r := range left.Others {
		got = append(got, r.Value)
	}
	if !reflect.DeepEqual(got, []string{"alice", "bob"}) {
		t.Fatalf("others = %v, want alice and bob", got)
	}
	stillSwitched(t, cs, rec)
	// list says the same: both pods' routes.
	list, err := c.List(context.Background(), "ns")
	if err != nil || len(list) != 1 || len(list[0].Routes) != 2 || list[0].Status != StateActive {
		t.Fatalf("list = %+v, %v", list, err)
	}
}

// presenceOf makes a teammate's presence Lease, renewed at renewed.
func presenceOf(t *testing.T, cs *fake.Clientset, rec *Record, holder string, renewed time.Time) {
	t.Helper()
	now := metav1.NewMicroTime(renewed)
	_, err := cs.CoordinationV1().Leases("ns").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: leaseMeta(presenceName(rec.ID, holder), rec.ID, LeasePresence, nil),
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(10)), RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// A teammate is mid re-link: no sidecar shows their route, but their
// kubectl-intercept lives and renews its presence. The Service stays.
func TestLeaveWaitsForATeammateMidRelink(t *testing.T) {
	cs, rec, _, c := sharedSession(t, "shop-a", "shop-b")
	presenceOf(t, cs, rec, "bobcli", time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // bob's CLI renews as it lives
		for ctx.Err() == nil {
			time.Sleep(300 * time.Millisecond)
			l, err := cs.CoordinationV1().Leases("ns").Get(ctx, presenceName(rec.ID, "bobcli"), metav1.GetOptions{})
			if err == nil {
				now := metav1.NowMicro()
				l.Spec.RenewTime = &now
				_, _ = cs.CoordinationV1().Leases("ns").Update(ctx, l, metav1.UpdateOptions{})
			}
		}
	}()
	left := leaveAs(t, c, "")
	if !left.Stayed() || len(left.Present) != 1 || !strings.Contains(left.Present[0], "bobcli") {
		t.Fatalf("left = %+v, want bob's presence to keep the Service", left)
	}
	stillSwitched(t, cs, rec)
}

// A crashed teammate's presence is not renewed: once proven stale it is
// garbage, the Service is restored and the Lease deleted.
func TestLeaveOutlivesACrashedTeammatesPresence(t *testing.T) {
	cs, _, _, c := sharedSession(t, "shop-a")
	presenceOf(t, cs, record(false), "deadcli", time.Now().Add(-20*time.Second))
	start := time.Now()
	left := leaveAs(t, c, "")
	if left.Stayed() {
		t.Fatalf("left = %+v (%s), want a restore", left, left.Why())
	}
	restored(t, cs)
	if ls, _ := cs.CoordinationV1().Leases("ns").List(context.Background(), metav1.ListOptions{}); len(ls.Items) != 0 {
		t.Fatalf("%d leases left after the close, want none", len(ls.Items))
	}
	t.Logf("stale presence proven gone in %s", time.Since(start).Round(100*time.Millisecond))
}

// While alice stays, a crashed teammate's leftover presence is deleted by
// the next leave that proves it stale, so the leaves after it need not
// watch it again.
func TestLeaveDeletesALeftoverPresence(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a")
	f.set("shop-a", devRoute("alice"))
	presenceOf(t, cs, rec, "deadcli", time.Now().Add(-20*time.Second))
	others, _ := c.othersIn(context.Background(), "ns", rec, "", "")
	if len(others.Routes) != 1 {
		t.Fatalf("others = %+v, want alice's route", others)
	}
	f.set("shop-a")
	if others, _ = c.othersIn(context.Background(), "ns", rec, "", ""); !others.Nobody() {
		t.Fatalf("others = %+v, want nobody once the leftover is proven stale", others)
	}
	if _, err := cs.CoordinationV1().Leases("ns").Get(context.Background(), presenceName(rec.ID, "deadcli"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the leftover presence is still there: %v", err)
	}
}

// "Nobody" is asked again a heartbeat interval later: a teammate whose
// route comes back in between (a tunnel re-linked) keeps the Service.
func TestLeaveAsksNobodyAgain(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a")
	first := make(chan struct{})
	var once sync.Once
	c.Dial = func(ctx context.Context, ns, pod string, port int) (io.ReadWriteCloser, error) {
		conn, err := f.dial(ctx, ns, pod, port)
		once.Do(func() { close(first) })
		return conn, err
	}
	go func() {
		<-first
		time.Sleep(100 * time.Millisecond)
		f.set("shop-a", devRoute("alice"))
	}()
	left := leaveAs(t, c, "")
	if len(left.Others) != 1 {
		t.Fatalf("left = %+v, want alice's returning route to keep the Service", left)
	}
	if n := f.asked.Load(); n < 2 {
		t.Fatalf("the sidecar was asked %d time(s), want twice", n)
	}
	stillSwitched(t, cs, rec)
}

// The leaver's own presence is not another's: alone (its tunnels down),
// the leaver restores the Service, and its presence is gone.
func TestLeaveAloneRestores(t *testing.T) {
	cs, rec, _, c := sharedSession(t, "shop-a")
	me := devRoute("carol")
	p, err := startPresence(context.Background(), cs, "ns", rec)
	if err != nil {
		t.Fatal(err)
	}
	left, err := c.Leave(context.Background(), LeaveOptions{Namespace: "ns", Service: "shop", ID: rec.ID, Key: me.Client, Timeout: 5 * time.Second})
	if err != nil || left.Stayed() {
		t.Fatalf("left alone = %+v, %v", left, err)
	}
	restored(t, cs)
	select {
	case <-p.done:
	default:
		t.Fatal("the leaver's presence is still renewed")
	}
}

// A developer registers and settles after the decision, before the claim:
// the check under the claim keeps the Service (a reactor puts the route on
// the sidecar at the moment the close claims).
func TestLeaveStaysForOneWhoArrivesAtTheClaim(t *testing.T) {
	cs, rec, f, c := sharedSession(t, "shop-a")
	cs.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if l := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease); strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderClose) {
			f.set("shop-a", devRoute("alice"))
		}
		return false, nil, nil
	})
	left := leaveAs(t, c, "")
	if len(left.Others) != 1 || !left.Closed.Stayed {
		t.Fatalf("left = %+v, want the late arrival to keep the Service", left)
	}
	stillSwitched(t, cs, rec)
	if l, err := cs.CoordinationV1().Leases("ns").Get(context.Background(), claimName(rec.ID), metav1.GetOptions{}); err != nil || l.Spec.HolderIdentity != nil {
		t.Fatalf("the claim was not given back: %+v, %v", l, err)
	}
}

// The CLI that held the session was killed (kill -9): its route stays on
// the sidecar until the heartbeat is missed. Closing after the crash
// waits that window once and restores the Service; a teammate's route,
// still there after it, keeps the Service switched.
func TestLeaveAfterACrashWaitsOutTheDeadRoute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		vanishes bool
	}{{"the crashed CLI's route", true}, {"a teammate's route", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cs, rec, f, c := sharedSession(t, "shop-a")
			f.set("shop-a", devRoute("dave"))
			if tc.vanishes {
				first := make(chan struct{})
				var once sync.Once
				dial := c.Dial
				c.Dial = func(ctx context.Context, ns, pod string, port int) (io.ReadWriteCloser, error) {
					conn, err := dial(ctx, ns, pod, port)
					once.Do(func() { close(first) })
					return conn, err
				}
				go func() {
					<-first
					time.Sleep(tunnel.KeepAliveInterval + tunnel.KeepAliveTimeout)
					f.set("shop-a")
				}()
			}
			left, err := c.Leave(context.Background(), LeaveOptions{Namespace: "ns", Service: "shop", ID: rec.ID, Crashed: true, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if tc.vanishes {
				if left.Stayed() {
					t.Fatalf("left = %+v, want the Service restored once the crashed CLI's route is gone", left)
				}
				restored(t, cs)
				return
			}
			if len(left.Others) != 1 {
				t.Fatalf("left = %+v, want the teammate's route to keep the Service", left)
			}
			stillSwitched(t, cs, rec)
		})
	}
}
