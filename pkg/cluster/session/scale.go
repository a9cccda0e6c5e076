package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// The copy scales with the original. While an intercept lasts, every
// developer's CLI watches the original workload and sets the copy's
// replica count to the original's desired count (an HPA's decisions are
// writes to that count), never below one: the copy is what serves the
// Service; nor below the count a take-over recorded (see takeover.go). Several CLIs write the same number; the writes are idempotent.
// Nothing is requested while the original does not change.

// FollowScale keeps the copy's replicas at the original's desired count
// until ctx ends. log reports each change and each failure (the next
// change retries). A bare Pod has nothing to follow.
func FollowScale(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns string, rec *Record, log func(format string, args ...any)) error {
	changed := make(chan struct{}, 1)
	desired, err := watchDesired(ctx, cs, dyn, ns, rec, changed)
	if err != nil || desired == nil {
		return err
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		return describeAPIError(err, "reading deployment "+rec.Copy)
	}
	current := ptr.Deref(d.Spec.Replicas, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		want, ok := desired()
		if !ok {
			continue // the original is gone: the copy keeps what it has
		}
		// A take-over's count is trusted only while the original is at
		// zero (the copy then serves its callers): a count planted on a
		// copy whose original runs is never followed.
		if t := copyTakeOver(ctx, cs, ns, rec.Copy); t != nil && want == 0 {
			want = t.Replicas
		}
		want = max(want, 1)
		if want == current {
			continue
		}
		if err := ScaleCopy(ctx, cs, ns, rec.Copy, want); err != nil {
			if ctx.Err() == nil {
				log("the copy could not follow %s to %d replica(s): %v", rec.WorkloadRef(), want, err)
			}
			continue
		}
		log("%s wants %d replica(s): the copy %s follows (from %d)", rec.WorkloadRef(), want, rec.Copy, current)
		current = want
	}
}

// copyTakeOver reads the copy's take-over, nil when there is none or it
// cannot be read.
func copyTakeOver(ctx context.Context, cs kubernetes.Interface, ns, name string) *TakeOver {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	t, _ := takeOverOf(d)
	return t
}

// ScaleCopy sets the copy's replica count.
func ScaleCopy(ctx context.Context, cs kubernetes.Interface, ns, name string, replicas int32) error {
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
	if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
		return describeAPIError(err, "scaling deployment "+name)
	}
	return nil
}

// watchDesired watches the original and returns a reader of its desired
// replica count (false while it is not there); nil for a bare Pod.
func watchDesired(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns string, rec *Record, changed chan<- struct{}) (func() (int32, bool), error) {
	sel := selection{namespace: ns, name: rec.Workload}
	var read func() (int32, bool)
	var err error
	switch kindOf(rec) {
	case workload.KindDeployment:
		c := cs.AppsV1().Deployments(ns)
		read, err = watchReplicas(ctx, cs, &appsv1.Deployment{}, c.List, c.Watch, sel, rec.Workload, changed,
			func(d *appsv1.Deployment) *int32 { return d.Spec.Replicas })
	case workload.KindStatefulSet:
		c := cs.AppsV1().StatefulSets(ns)
		read, err = watchReplicas(ctx, cs, &appsv1.StatefulSet{}, c.List, c.Watch, sel, rec.Workload, changed,
			func(s *appsv1.StatefulSet) *int32 { return s.Spec.Replicas })
	case workload.KindReplicaSet:
		c := cs.AppsV1().ReplicaSets(ns)
		read, err = watchReplicas(ctx, cs, &appsv1.ReplicaSet{}, c.List, c.Watch, sel, rec.Workload, changed,
			func(rs *appsv1.ReplicaSet) *int32 { return rs.Spec.Replicas })
	case workload.KindRollout:
		if dyn == nil {
			return nil, fmt.Errorf("watching %s: no dynamic client", rec.WorkloadRef())
		}
		c := dyn.Resource(workload.Rollouts).Namespace(ns)
		read, err = watchReplicas(ctx, dyn, &unstructured.Unstructured{}, c.List, c.Watch, sel, rec.Workload, changed,
			func(u *unstructured.Unstructured) *int32 {
				n, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
				if !found {
					return nil
				}
				return ptr.To(int32(n))
			})
	default:
		return nil, nil
	}
	if err != nil {
		return nil, describeAPIError(err, "watching "+rec.WorkloadRef())
	}
	return read, nil
}

// watchReplicas watches one object of a kind and returns a reader of its
// spec.replicas (1 when unset, as the API defaults it).
func watchReplicas[T metav1.Object, L runtime.Object](ctx context.Context, client any, example T, list func(context.Context, metav1.ListOptions) (L, error),
	wf watchFunc, sel selection, name string, changed chan<- struct{}, replicas func(T) *int32) (func() (int32, bool), error) {
	w, err := watchKind[T](ctx, client, any(example).(runtime.Object),
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }, wf, sel, changed)
	if err != nil {
		return nil, err
	}
	return func() (int32, bool) {
		o, ok := w.Get(name)
		if !ok {
			return 0, false
		}
		return ptr.Deref(replicas(o), 1), true
	}, nil
}

// RoutesGate is the condition of a copy pod's readiness gate: the pod is
// Ready (and gets traffic) only once it holds every live route. A
// developer's CLI sets it when the pod's sidecar holds the routes a ready
// sibling holds; before the Service is switched, when the pod runs.
const RoutesGate corev1.PodConditionType = workload.RoutesGate

// Gated reports whether the pod waits on the routes gate.
func Gated(p *corev1.Pod) bool {
	gated := false
	for _, g := range p.Spec.ReadinessGates {
		gated = gated || g.ConditionType == RoutesGate
	}
	if !gated {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == RoutesGate && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}

// OpenGate sets the pod's routes condition, so it becomes Ready once its
// containers are.
func OpenGate(ctx context.Context, cs kubernetes.Interface, ns, pod, message string) error {
	if err := setGate(ctx, cs, ns, pod, corev1.ConditionTrue, "RoutesInstalled", message); err != nil {
		return describeAPIError(err, "marking pod "+pod+" as holding the routes")
	}
	return nil
}

// ReasonHeldByAnotherKey is the reason of a gate ShutGate shut.
const ReasonHeldByAnotherKey = "HeldByAnotherKey"

// ShutGate sets the pod's routes condition to False (another key holds a
// route there), so it leaves the Service's endpoints.
func ShutGate(ctx context.Context, cs kubernetes.Interface, ns, pod, message string) error {
	if err := setGate(ctx, cs, ns, pod, corev1.ConditionFalse, ReasonHeldByAnotherKey, message); err != nil {
		return describeAPIError(err, "keeping pod "+pod+" out of the Service")
	}
	return nil
}

// setGate patches the pod's routes condition.
func setGate(ctx context.Context, cs kubernetes.Interface, ns, pod string, status corev1.ConditionStatus, reason, message string) error {
	patch := map[string]any{"status": map[string]any{"conditions": []map[string]any{{
		"type": string(RoutesGate), "status": string(status), "reason": reason, "message": message,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Pods(ns).Patch(ctx, pod, types.StrategicMergePatchType, b, metav1.PatchOptions{FieldManager: FieldManager}, "status")
	return err
}

// MissingRoutes lists the routes of want that have are without: a route is
// the same when it matches the same requests (the same marker, paths and
// methods) for the same owner. One developer may hold two routes on one
// marker that differ by path.
func MissingRoutes(have, want []route.Route) []route.Route {
	key := func(r route.Route) route.Route {
		return route.Route{Header: r.Header, Cookie: r.Cookie, Baggage: r.Baggage, Value: r.Value, All: r.All,
			PathPrefix: r.PathPrefix, PathRegex: r.PathRegex, Methods: r.Methods, Owner: r.Owner}
	}
	got := map[route.Route]bool{}
	for _, r := range have {
		got[key(r)] = true
	}
	var missing []route.Route
	for _, r := range want {
		if !got[key(r)] {
			missing = append(missing, r)
		}
	}
	return missing
}
