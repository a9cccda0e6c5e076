package portforward

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Mallory squats alice's header on a new pod and alice's CLI shuts the
// pod's gate. Bob, a third developer who holds his own route there, must
// not open it again: his gate check cannot tell mallory's look-alike from
// alice's route (the sidecar lists no keys), so a gate another CLI shut
// for a conflict is that CLI's to open.
func TestBystanderLeavesASquattedGateShut(t *testing.T) {
	p := newPods()
	p.addPod(readyPod("web-a"))
	setGate := func(ctx context.Context, pod string, st corev1.ConditionStatus, reason string) error {
		got, err := p.cs.CoreV1().Pods("shop").Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Status.Conditions = []corev1.PodCondition{{Type: session.RoutesGate, Status: st, Reason: reason}}
		return p.cs.Tracker().Update(corev1Pods, got, "shop")
	}
	var mu sync.Mutex
	opens, shuts := map[string]int{}, 0
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123456789"}
	bob := route.Route{Header: "X-Dev", Value: "bob", Owner: "bob@laptop", Client: "bob-owner-key-0123456789abcdef0123456789abc"}
	fa, fb := p.follower(alice), p.follower(bob)
	fa.OpenGate = func(ctx context.Context, pod, msg string) error {
		mu.Lock()
		opens["alice/"+pod]++
		mu.Unlock()
		return setGate(ctx, pod, corev1.ConditionTrue, "")
	}
	fb.OpenGate = func(ctx context.Context, pod, msg string) error {
		mu.Lock()
		opens["bob/"+pod]++
		mu.Unlock()
		return setGate(ctx, pod, corev1.ConditionTrue, "")
	}
	fa.CloseGate = func(ctx context.Context, pod, msg string) error {
		mu.Lock()
		shuts++
		mu.Unlock()
		return setGate(ctx, pod, corev1.ConditionFalse, session.ReasonHeldByAnotherKey) // as session.ShutGate writes it
	}
	fa.Log, fb.Log = t.Logf, func(string, ...any) {}
	stopA, stopB := run(t, fa), run(t, fb)
	defer stopA()
	defer stopB()
	eventually(t, "alice and bob on web-a", func() bool { return holds(p.table("web-a"), alice) && holds(p.table("web-a"), bob) })

	mallory := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "mallory-owner-key-0123456789abcdef0123456789"}
	p.squat(t, "web-c", mallory)
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n, s := opens["bob/web-c"], shuts
		mu.Unlock()
		if n >= 3 && s >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if opens["bob/web-c"] >= 2 || shuts == 0 {
		t.Fatalf("web-c gate: opened by bob's CLI %d times, by alice's %d times, shut by alice's %d times; "+
			"want bob's CLI never to open it again after alice's shut it", opens["bob/web-c"], opens["alice/web-c"], shuts)
	}
}
