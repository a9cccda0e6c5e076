package portforward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// wire records what the CLI sends on each port-forward.
type wire struct {
	mu   sync.Mutex
	sent map[string]*bytes.Buffer // by pod
}

type recorded struct {
	net.Conn
	w   *wire
	pod string
}

func (c *recorded) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	if c.w.sent[c.pod] == nil {
		c.w.sent[c.pod] = &bytes.Buffer{}
	}
	c.w.sent[c.pod].Write(p)
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}

func (w *wire) to(pod string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b := w.sent[pod]; b != nil {
		return b.String()
	}
	return ""
}

// logged collects what a follower says.
type logged struct {
	mu    sync.Mutex
	lines []string
}

func (l *logged) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *logged) said(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

// lookAlike adds a teammate's Deployment whose pods carry the session's
// label and a sidecar (what the admission policy lets a Role holder
// create), and one such pod, older than every pod of the copy.
func (r *relayPods) lookAlike(t *testing.T, name string, n int) {
	t.Helper()
	yes := true
	labels := map[string]string{session.LabelSession: testRecord.ID, session.LabelManagedBy: session.ManagedByValue}
	forged := *testRecord
	forged.Copy = "web-lookalike"
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-lookalike", UID: "uid-of-the-lookalike", Labels: labels,
		Annotations: map[string]string{session.AnnotationRecord: forged.Encode()}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-lookalike-6f7", UID: "uid-of-the-lookalike-rs", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes}}}}
	for _, o := range []interface{ GetName() string }{d, rs} {
		var err error
		switch o := o.(type) {
		case *appsv1.Deployment:
			err = r.cs.Tracker().Add(o)
		case *appsv1.ReplicaSet:
			err = r.cs.Tracker().Add(o)
		}
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	r.add(t, name, n, true)
	pod, err := r.cs.CoreV1().Pods("shop").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: &yes}}
	pod.CreationTimestamp = metav1.Unix(500, 0) // the oldest: the relay if age alone chose
	if err := r.cs.Tracker().Update(corev1Pods, pod, "shop"); err != nil {
		t.Fatal(err)
	}
}

// A teammate's look-alike Deployment whose pods carry the victim's session
// label and a sidecar: its pod is never dialed, never admitted, never the
// relay, and holds nothing; the copy's pods hold the route, each under a
// key derived for it; no port-forward carries the owner key.
func TestLookAlikePodGetsNothing(t *testing.T) {
	const owner = "alice-owner-key-0123456789abcdef0123456789abcdef"
	r := newRelayPods(t)
	r.lookAlike(t, "evil", 9)
	r.add(t, "b", 3, true)
	r.add(t, "c", 4, true)
	w := &wire{sent: map[string]*bytes.Buffer{}}
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: owner}
	log := &logged{}
	f := r.follower(alice)
	f.Log, f.PeerPort, f.Port = log.logf, r.port, 18081
	f.Dial = func(ctx context.Context, pod string) (io.ReadWriteCloser, error) {
		c, err := r.dial(ctx, pod)
		if err != nil {
			return nil, err
		}
		return &recorded{Conn: c, w: w, pod: pod}, nil
	}
	stop := run(t, f)
	defer stop()
	for _, p := range []string{"b", "c"} {
		eventually(t, "pod "+p+" holds the route", func() bool { return holds(r.table(p), alice) })
	}
	if n := r.dialCount("evil"); n != 0 {
		t.Errorf("%d port-forwards to the look-alike pod", n)
	}
	if held := r.table("evil").List(); len(held) != 0 {
		t.Errorf("the look-alike holds %+v", held)
	}
	f.mu.Lock()
	relay := f.relay
	f.mu.Unlock()
	if relay == "evil" {
		t.Error("the look-alike is the relay")
	}
	for _, p := range []string{"b", "c"} {
		if sent := w.to(p); strings.Contains(sent, owner) {
			t.Errorf("the owner key went to pod %s", p)
		}
		want := tunnel.PodKey(owner, "uid-"+p, 18081)
		for _, got := range r.table(p).List() {
			if got.Client != want {
				t.Errorf("pod %s holds the route under %q, want its own pod key", p, got.Client)
			}
		}
	}
	eventually(t, "the look-alike named", func() bool {
		return log.said("warning: pod evil carries this intercept's label but is not a pod of copy web-intercept-abc")
	})
}

// A route another key registered first on a new pod (a teammate who forced
// new pods) is an alarm on that pod: the intercept goes on, the other
// pods keep the route, the other key's route there is suspended (its
// requests go to the app), the pod's gate is not opened and is shut again
// when someone opens it, and the pod gets the route once it is free.
func TestConflictOnANewPodIsAnAlarm(t *testing.T) {
	p := newPods()
	p.addPod(readyPod("web-a"))
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123456789"}
	g := &gates{p: p, opened: map[string]string{}}
	var shutMu sync.Mutex
	shut := map[string]string{}
	log := &logged{}
	f := p.follower(alice)
	f.OpenGate, f.Log = g.open, log.logf
	f.CloseGate = func(ctx context.Context, pod, msg string) error { // as the API server would
		shutMu.Lock()
		shut[pod] = msg
		shutMu.Unlock()
		got, err := p.cs.CoreV1().Pods("shop").Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Status.Conditions = []corev1.PodCondition{{Type: session.RoutesGate, Status: corev1.ConditionFalse, Reason: session.ReasonHeldByAnotherKey}}
		return p.cs.Tracker().Update(corev1Pods, got, "shop")
	}
	stop := run(t, f)
	defer stop()
	eventually(t, "alice on web-a", func() bool { return holds(p.table("web-a"), alice) })

	// Mallory's sidecar session holds alice's header on the new pod first.
	mallory := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "mallory-owner-key-0123456789abcdef0123456789"}
	mc := p.squat(t, "web-c", mallory)
	eventually(t, "the alarm", func() bool { return log.said("held on pod web-c by another key") })
	eventually(t, "the other key's route suspended on web-c", func() bool { return p.table("web-c").isSuspended(mallory.Client) })
	if !holds(p.table("web-a"), alice) {
		t.Fatal("web-a lost alice's route")
	}
	if _, ok := g.get("web-c"); ok {
		t.Fatal("the follower opened the gate of a pod another key holds")
	}

	// Mallory opens the gate herself (pods/status): it is shut again.
	pod, _ := p.cs.CoreV1().Pods("shop").Get(context.Background(), "web-c", metav1.GetOptions{})
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: session.RoutesGate, Status: corev1.ConditionTrue})
	if err := p.cs.Tracker().Update(corev1Pods, pod, "shop"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the gate shut again", func() bool {
		shutMu.Lock()
		defer shutMu.Unlock()
		return strings.Contains(shut["web-c"], "held on pod web-c by another key")
	})

	// Mallory's route goes: web-c gets alice's; the intercept never ended.
	mc.Close()
	eventually(t, "alice on web-c once it is free", func() bool { return holds(p.table("web-c"), alice) })
	eventually(t, "web-c let in", func() bool { _, ok := g.get("web-c"); return ok })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A teammate who asks for a header someone holds on every pod meets the
// conflict everywhere and holds the route nowhere: that is "taken", and
// their CLI contests nothing on its way to saying so (a contest would
// send the holder's requests to the app on that pod meanwhile).
func TestTakenRouteIsNotContested(t *testing.T) {
	p := newPods("web-a", "web-b")
	bob := route.Route{Header: "X-Dev", Value: "shared", Owner: "bob@laptop", Client: "bob-owner-key-0123456789abcdef0123456789abc"}
	for _, pod := range []string{"web-a", "web-b"} {
		conn, err := p.dial(context.Background(), pod)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tunnel.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Register(bob); err != nil {
			t.Fatal(err)
		}
	}
	f := p.follower(route.Route{Header: "x-dev", Value: "shared", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123456789"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Run(ctx); !errors.Is(err, tunnel.ErrConflict) {
		t.Fatalf("Run: %v, want the conflict", err)
	}
	for _, pod := range []string{"web-a", "web-b"} {
		if p.table(pod).contested(bob.Client) {
			t.Fatalf("the teammate's CLI contested bob's route on %s", pod)
		}
	}
}

// squat starts a new, gated pod whose sidecar holds r first, registered
// over a session of its own (as a teammate racing the owner to it), and
// returns that session.
func (p *pods) squat(t *testing.T, pod string, r route.Route) *tunnel.Client {
	t.Helper()
	p.mu.Lock()
	p.tables[pod] = &table{}
	p.mu.Unlock()
	conn, err := p.dial(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(r); err != nil {
		t.Fatal(err)
	}
	if err := p.cs.Tracker().Add(gatedPod(pod)); err != nil {
		t.Fatal(err)
	}
	return c
}
