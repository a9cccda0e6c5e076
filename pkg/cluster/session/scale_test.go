package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

func copyReplicas(t *testing.T, cs *fake.Clientset, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments("shop").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 0)
}

func waitReplicas(t *testing.T, cs *fake.Clientset, name string, want int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for copyReplicas(t, cs, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("copy has %d replicas, want %d", copyReplicas(t, cs, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The copy follows the original's desired count up and down, never below
// one, and asks nothing of the API server while the original is still. The
// clock is simulated: a poll of any period under a minute would show.
func TestCopyFollowsTheOriginalsScale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		orig := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "shop"},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2))}}
		cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ledger-intercept-abc", Namespace: "shop"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2))}}
		cs := fake.NewClientset(orig, cp)
		rec := &Record{ID: "abc", Workload: "ledger", Kind: workload.KindStatefulSet, Copy: cp.Name}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = FollowScale(ctx, cs, nil, "shop", rec, t.Logf)
		}()
		defer func() { cancel(); <-done }()

		scaleTo := func(n, want int32) {
			t.Helper()
			s, err := cs.AppsV1().StatefulSets("shop").Get(ctx, "ledger", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.Spec.Replicas = ptr.To(n)
			if _, err := cs.AppsV1().StatefulSets("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if got := copyReplicas(t, cs, cp.Name); got != want {
				t.Fatalf("the original scaled to %d: the copy has %d replicas, want %d", n, got, want)
			}
		}
		time.Sleep(time.Second) // following: the original read, its watch open
		synctest.Wait()
		before := len(cs.Actions())
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(cs.Actions()) - before; n != 0 {
			t.Errorf("%d requests in a minute while the original did not change: %v", n, cs.Actions()[before:])
		}
		scaleTo(4, 4)
		scaleTo(1, 1)
		scaleTo(3, 3)
		scaleTo(0, 1) // the copy keeps serving the Service with one pod
	})
}

// A Rollout is followed through the dynamic client.
func TestCopyFollowsARollout(t *testing.T) {
	cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-intercept-abc", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1))}}
	cs := fake.NewClientset(cp)
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec":     map[string]any{"replicas": int64(3)},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{workload.Rollouts: "RolloutList"}, ro)
	rec := &Record{ID: "abc", Workload: "web", Kind: workload.KindRollout, Copy: cp.Name}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = FollowScale(ctx, cs, dyn, "shop", rec, t.Logf) }()
	waitReplicas(t, cs, cp.Name, 3)
}

func TestMissingRoutes(t *testing.T) {
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	have := []route.Route{{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Mine: true}}
	if m := MissingRoutes(have, []route.Route{alice}); len(m) != 0 {
		t.Errorf("missing %v", m)
	}
	if m := MissingRoutes(have, []route.Route{alice, bob}); len(m) != 1 || m[0].Owner != "bob@laptop" {
		t.Errorf("missing %v, want bob's", m)
	}
}
