package portforward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// table is a sidecar's route table: routes live while their session does,
// a route that conflicts with another CLI's live one is refused, and the
// same CLI's new registration replaces its old one.
type table struct {
	mu     sync.Mutex
	routes []*route.Route
	// lists counts the times the table was listed (a sidecar asked for
	// its routes).
	lists int
	// suspended counts the contests of each route key, as proxy.Table's.
	suspended map[string]int
}

func (t *table) Suspend(r route.Route) (func(), int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	if t.suspended == nil {
		t.suspended = map[string]int{}
	}
	var keys []string
	for _, x := range t.routes {
		if x.Client != r.Client && x.Takes(r) {
			n++
			t.suspended[x.Client]++
			keys = append(keys, x.Client)
		}
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, k := range keys {
			t.suspended[k]--
		}
	}, n, nil
}

// contested says whether a contest ever held the route of key.
func (t *table) listed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lists
}

func (t *table) contested(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.suspended[key]
	return ok
}

// isSuspended says whether a contest holds the route of key.
func (t *table) isSuspended(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.suspended[key] > 0
}

func (t *table) Add(r route.Route, _ tunnel.DialFunc) (func(), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.routes[:0:0]
	for _, old := range t.routes {
		if r.Client != "" && old.Client == r.Client {
			continue // the same CLI again (by another way): the new one wins, as in proxy.Table
		}
		if old.Conflicts(r) {
			return nil, fmt.Errorf("%w: %s is intercepted by %s", tunnel.ErrConflict, old, old.Owner)
		}
		kept = append(kept, old)
	}
	nr := &r
	t.routes = append(kept, nr)
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.routes = slices.DeleteFunc(t.routes, func(x *route.Route) bool { return x == nr })
	}, nil
}

func (t *table) List() []route.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lists++
	out := make([]route.Route, len(t.routes))
	for i, r := range t.routes {
		out[i] = *r
	}
	return out
}

// pods is a fake cluster of copy pods, each with a sidecar that a dial
// reaches over an in-memory pipe.
type pods struct {
	cs     *fake.Clientset
	mu     sync.Mutex
	tables map[string]*table
	conns  map[string][]net.Conn // the sidecar's end of each tunnel
	dials  map[string]int
	// servers are the sidecars, by their table.
	servers map[*table]*tunnel.Server
	// received counts the bytes every sidecar read from its tunnels.
	received atomic.Int64
}

// countingConn counts what the sidecar's end of a tunnel reads.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func newPods(names ...string) *pods {
	p := &pods{cs: fake.NewClientset(), tables: map[string]*table{}, conns: map[string][]net.Conn{}, dials: map[string]int{}}
	for _, o := range copyObjects() {
		if err := p.cs.Tracker().Add(o); err != nil {
			panic(err)
		}
	}
	for _, n := range names {
		p.add(n)
	}
	return p
}

// The session's record and its copy: Deployment web-intercept-abc, whose
// ReplicaSet web-intercept-abc-5d8 makes the copy pods.
var testRecord = &session.Record{Version: 1, ID: "abc", Service: "web", Workload: "web", Copy: "web-intercept-abc", Port: "http",
	Selector: map[string]string{"app": "web"}}

const (
	copyUID = types.UID("uid-of-the-copy")
	copyRS  = "web-intercept-abc-5d8"
	rsUID   = types.UID("uid-of-the-copy-rs")
)

func copyObjects() []runtime.Object {
	labels := map[string]string{session.LabelSession: testRecord.ID, session.LabelManagedBy: session.ManagedByValue}
	yes := true
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: testRecord.Copy, UID: copyUID, Labels: labels,
		Annotations: map[string]string{session.AnnotationRecord: testRecord.Encode()}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: copyRS, UID: rsUID, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}}}
	return []runtime.Object{d, rs}
}

func copyPod(name string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name),
			Labels:          map[string]string{"intercept.kubectl.dev/session": "abc"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: copyRS, UID: rsUID, Controller: &yes}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.9", ContainerStatuses: []corev1.ContainerStatus{
			{Name: workload.SidecarName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
}

func (p *pods) add(name string) { p.addPod(copyPod(name)) }

func (p *pods) addPod(pod *corev1.Pod) {
	p.mu.Lock()
	p.tables[pod.Name] = &table{}
	p.mu.Unlock()
	if err := p.cs.Tracker().Add(pod); err != nil {
		panic(err)
	}
}

// gatedPod is a copy pod waiting on the routes gate; readyPod one past it.
func gatedPod(name string) *corev1.Pod {
	pod := copyPod(name)
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: workload.RoutesGate}}
	return pod
}

func readyPod(name string) *corev1.Pod {
	pod := gatedPod(name)
	pod.Status.Conditions = []corev1.PodCondition{
		{Type: workload.RoutesGate, Status: corev1.ConditionTrue},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue},
	}
	return pod
}

// gates records the gates a follower opens, and opens them in the fake
// cluster as the API server would.
type gates struct {
	p      *pods
	mu     sync.Mutex
	opened map[string]string // pod: message
}

func (g *gates) open(ctx context.Context, pod, msg string) error {
	g.mu.Lock()
	g.opened[pod] = msg
	g.mu.Unlock()
	return nil
}

func (g *gates) get(pod string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.opened[pod]
	return m, ok
}

func (p *pods) table(name string) *table {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tables[name]
}

func (p *pods) dial(ctx context.Context, pod string) (io.ReadWriteCloser, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tables[pod]
	if !ok {
		return nil, errors.New("pod not found")
	}
	p.dials[pod]++
	a, b := net.Pipe()
	p.conns[pod] = append(p.conns[pod], b)
	if p.servers == nil {
		p.servers = map[*table]*tunnel.Server{}
	}
	srv := p.servers[t] // one sidecar per pod: its sessions see each other
	if srv == nil {
		srv = &tunnel.Server{Pod: pod, Routes: t}
		p.servers[t] = srv
	}
	go srv.ServeConn(context.Background(), countingConn{b, &p.received})
	return a, nil
}

// dropTunnels cuts the sidecar's end of every tunnel to pod, as a network
// failure would.
func (p *pods) dropTunnels(pod string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns[pod] {
		c.Close()
	}
	p.conns[pod] = nil
}

func (p *pods) follower(route route.Route) *Follower {
	return &Follower{Client: p.cs, Namespace: "shop", Selector: "intercept.kubectl.dev/session=abc", Record: testRecord,
		Route: route, Local: "127.0.0.1:1", Dial: p.dial}
}

// eventually polls cond until it holds or the deadline passes.
// eventually waits for cond. The follower acts on watch events and retries
// every second; under -race on a loaded machine a few rounds of that take
// seconds, so the bound is generous: it catches what never happens.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holds(t *table, r route.Route) bool {
	return slices.ContainsFunc(t.List(), func(x route.Route) bool { return x.Conflicts(r) && x.Owner == r.Owner })
}

func run(t *testing.T, f *Follower) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
}

// Every pod of the copy gets the route; a pod that joins gets it too; a
// pod that leaves loses its tunnel and the route with it.
func TestFollowerFollowsPods(t *testing.T) {
	p := newPods("web-a", "web-b")
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	f := p.follower(alice)
	stop := run(t, f)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitRegistered(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"web-a", "web-b"} {
		if !holds(p.table(pod), alice) {
			t.Errorf("%s lacks the route: %v", pod, p.table(pod).List())
		}
	}

	p.add("web-c")
	eventually(t, "the route on the pod that joined", func() bool { return holds(p.table("web-c"), alice) })

	if err := p.cs.CoreV1().Pods("shop").Delete(ctx, "web-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the tunnel to the pod that left closed", func() bool { return !holds(p.table("web-b"), alice) })
	eventually(t, "two pods registered", func() bool { return len(f.Registered()) == 2 })
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
	for _, pod := range []string{"web-a", "web-c"} {
		eventually(t, "routes gone after Run ends", func() bool { return !holds(p.table(pod), alice) })
	}
}

// A route another developer holds ends Run with ErrConflict, which the
// CLI reports as such.
func TestFollowerStopsOnAConflict(t *testing.T) {
	p := newPods("web-a")
	bob := route.Route{Header: "X-Dev", Value: "shared", Owner: "bob@laptop"}
	if _, err := p.table("web-a").Add(bob, nil); err != nil {
		t.Fatal(err)
	}
	f := p.follower(route.Route{Header: "x-dev", Value: "shared", Owner: "alice@laptop"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := f.Run(ctx)
	if !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("Run: %v, want ErrConflict", err)
	}
	if err := f.WaitRegistered(ctx, 1); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("WaitRegistered: %v, want Run's conflict", err)
	}
}

// A tunnel that drops while its pod still serves is opened again, without
// anything from the API server.
func TestFollowerReopensADroppedTunnel(t *testing.T) {
	p := newPods("web-a")
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	f := p.follower(alice)
	stop := run(t, f)
	defer stop()
	eventually(t, "registered", func() bool { return holds(p.table("web-a"), alice) })
	requests := len(p.cs.Actions())

	p.dropTunnels("web-a")
	eventually(t, "the route dropped with its tunnel", func() bool { return !holds(p.table("web-a"), alice) })
	eventually(t, "the route back on a new tunnel", func() bool { return holds(p.table("web-a"), alice) })
	p.mu.Lock()
	dials := p.dials["web-a"]
	p.mu.Unlock()
	if dials != 2 {
		t.Errorf("%d dials, want 2", dials)
	}
	if got := len(p.cs.Actions()); got != requests {
		t.Errorf("the reconnect made %d API requests: %v", got-requests, p.cs.Actions()[requests:])
	}
}

// While the pods do not change the follower asks the API server nothing:
// the copy and its ReplicaSet read once, one list and one watch.
func TestFollowerIdleMakesNoRequests(t *testing.T) {
	p := newPods("web-a", "web-b")
	f := p.follower(route.Route{Header: "X-Dev", Value: "alice"})
	stop := run(t, f)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.WaitRegistered(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Wait for three heartbeats on each tunnel (a yamux ping is a 12-byte
	// header): the follower has been idle and alive for seconds.
	const ping = 12
	from := p.received.Load()
	eventually(t, "three heartbeats on each tunnel", func() bool { return p.received.Load() >= from+3*2*ping })
	var verbs []string
	for _, a := range p.cs.Actions() {
		verbs = append(verbs, a.GetVerb()+" "+a.GetResource().Resource)
	}
	if !slices.Equal(verbs, []string{"get deployments", "get deployments", "list pods", "watch pods", "get replicasets"}) {
		t.Errorf("requests of an idle follower: %v, want the copy, its ReplicaSet, one list and one watch", verbs)
	}
}

// A new pod of the copy becomes Ready only once it holds every route its
// ready siblings hold: one developer's registration is not enough while
// another developer's route is still missing.
func TestNewPodWaitsForEveryRoute(t *testing.T) {
	p := newPods()
	p.addPod(readyPod("web-a"))
	bob := route.Route{Header: "X-Dev", Value: "bob", Owner: "bob@laptop"}
	if _, err := p.table("web-a").Add(bob, nil); err != nil {
		t.Fatal(err)
	}
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	g := &gates{p: p, opened: map[string]string{}}
	f := p.follower(alice)
	f.OpenGate = g.open
	stop := run(t, f)
	defer stop()
	eventually(t, "alice on web-a", func() bool { return holds(p.table("web-a"), alice) })

	p.addPod(gatedPod("web-c"))
	eventually(t, "alice on web-c", func() bool { return holds(p.table("web-c"), alice) })
	// The follower asks web-c's sidecar for its routes again and again and
	// keeps it out each time.
	from := p.table("web-c").listed()
	eventually(t, "four more checks of web-c", func() bool { return p.table("web-c").listed() >= from+4 })
	if m, ok := g.get("web-c"); ok {
		t.Fatalf("web-c let in (%s) while it lacks bob's route", m)
	}
	if _, err := p.table("web-c").Add(bob, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web-c let in once it holds bob's route too", func() bool { _, ok := g.get("web-c"); return ok })
	if m, _ := g.get("web-c"); m != "holds every live route" {
		t.Errorf("web-c let in with %q", m)
	}
	if _, ok := g.get("web-a"); ok {
		t.Error("the gate of a pod that is ready already was opened again")
	}
}

// A developer who never reaches the new pod (a dead laptop whose route
// has not dropped yet) does not keep it out for good.
func TestNewPodLetInAfterTheGateWait(t *testing.T) {
	p := newPods()
	p.addPod(readyPod("web-a"))
	if _, err := p.table("web-a").Add(route.Route{Header: "X-Dev", Value: "gone", Owner: "gone@laptop"}, nil); err != nil {
		t.Fatal(err)
	}
	g := &gates{p: p, opened: map[string]string{}}
	f := p.follower(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"})
	f.OpenGate, f.GateWait = g.open, 500*time.Millisecond
	stop := run(t, f)
	defer stop()
	p.addPod(gatedPod("web-c"))
	eventually(t, "web-c let in after the wait", func() bool { _, ok := g.get("web-c"); return ok })
	if m, _ := g.get("web-c"); !strings.Contains(m, "without 1 route(s)") {
		t.Errorf("web-c let in with %q", m)
	}
}
