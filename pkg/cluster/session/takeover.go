package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// A take-over moves the connections callers opened before the switch.
// kube-proxy keeps an established connection on the pod it was opened to,
// so a caller's kept-alive pool or gRPC channel keeps reaching the
// original's pods after the Service points at the copy. Taking over scales
// the original to zero while the copy serves everyone: the original's pods
// stop, their connections close, and callers connect again, through the
// Service, to the copy. The original's replica count is recorded on the
// copy first (AnnotationTakeOver), so close, after a crash too, scales it
// back before the Service is restored. An HPA does nothing to a target at
// zero replicas and resumes when it is scaled back (takeover_autoscale.go).

// AnnotationTakeOver on the copy Deployment records a take-over: the
// original's replica count before it was scaled to zero.
const AnnotationTakeOver = "intercept.kubectl.dev/take-over"

// TakeOver is what AnnotationTakeOver holds.
type TakeOver struct {
	// Replicas is the original's replica count before the take-over.
	Replicas int32     `json:"replicas"`
	At       time.Time `json:"at"`
	// Autoscalers are the original's HPAs at the take-over, which it
	// leaves as they are; close says which of them were changed since.
	Autoscalers []Autoscaler `json:"autoscalers,omitempty"`
}

// takeOverOf decodes the copy's take-over, nil when there is none.
func takeOverOf(d *appsv1.Deployment) (*TakeOver, error) {
	raw, ok := d.Annotations[AnnotationTakeOver]
	if !ok {
		return nil, nil
	}
	var t TakeOver
	if err := json.Unmarshal([]byte(raw), &t); err != nil || t.Replicas < 0 {
		return nil, fmt.Errorf("the take-over record on deployment %s (annotation %s) is not readable: %q", d.Name, AnnotationTakeOver, raw)
	}
	return &t, nil
}

// CanTakeOver says whether the original of a session of kind can be taken
// over: it must have a replica count to set.
func CanTakeOver(kind string) error {
	switch kind {
	case "", workload.KindDeployment, workload.KindStatefulSet, workload.KindReplicaSet:
		return nil
	}
	return fmt.Errorf("--take-over scales the original to zero, and a %s has no replica count kubectl-intercept sets; "+
		"intercept without --take-over (connections callers keep open stay on the original until they close)", kind)
}

// scaler reads and sets the replica count of the original.
type scaler struct {
	get func(context.Context, string, metav1.GetOptions) (*autoscalingv1.Scale, error)
	set func(context.Context, string, *autoscalingv1.Scale, metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

func scalerOf(cs kubernetes.Interface, ns string, rec *Record) (scaler, error) {
	switch kindOf(rec) {
	case workload.KindDeployment:
		c := cs.AppsV1().Deployments(ns)
		return scaler{c.GetScale, c.UpdateScale}, nil
	case workload.KindStatefulSet:
		c := cs.AppsV1().StatefulSets(ns)
		return scaler{c.GetScale, c.UpdateScale}, nil
	case workload.KindReplicaSet:
		c := cs.AppsV1().ReplicaSets(ns)
		return scaler{c.GetScale, c.UpdateScale}, nil
	}
	return scaler{}, CanTakeOver(rec.Kind)
}

// TakeOverOptions are the inputs of TakeOverOriginal.
type TakeOverOptions struct {
	Namespace string
	// Timeout bounds each wait: for the copy to have as many ready pods
	// as the original had, then for the original's pods to stop.
	Timeout  time.Duration
	Progress Progress
}

// TakeOverOriginal records the original's replica count on the copy (once
// per session: a developer who joins a taken-over session finds it
// there), scales the copy to it, and the original to zero, and waits for
// the original's pods to stop.
func TakeOverOriginal(ctx context.Context, cs kubernetes.Interface, rec *Record, o TakeOverOptions) error {
	p := o.Progress
	if p == nil {
		p = NopProgress{}
	}
	ns := o.Namespace
	sc, err := scalerOf(cs, ns, rec)
	if err != nil {
		return err
	}
	hpas, err := checkAutoscalers(ctx, cs, ns, rec, p)
	if err != nil {
		return err
	}
	t, err := recordTakeOver(ctx, cs, ns, rec, sc, hpas)
	if err != nil {
		return err
	}
	want := max(t.Replicas, 1)
	done := p.Step(fmt.Sprintf("the copy %s serving everyone (%d replica(s))", rec.Copy, want))
	err = ScaleCopy(ctx, cs, ns, rec.Copy, want)
	if err == nil {
		err = waitCopyReady(ctx, cs, ns, rec.Copy, want, o.Timeout)
	}
	done(err)
	if err != nil {
		return err
	}
	done = p.Step(fmt.Sprintf("scaling %s to zero (it had %d replica(s); close scales it back)", rec.WorkloadRef(), t.Replicas))
	err = setReplicas(ctx, sc, rec, 0)
	if err == nil {
		err = waitScaled(ctx, sc, rec, func(n int32) bool { return n == 0 }, o.Timeout)
	}
	done(err)
	return err
}

// recordTakeOver writes the original's replica count on the copy unless a
// take-over is recorded there already, and returns the record. The write
// is a compare-and-swap on the copy, so two developers taking over at once
// record one count, never the zero the first one left.
func recordTakeOver(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, sc scaler, hpas []Autoscaler) (*TakeOver, error) {
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
		if err != nil {
			return nil, describeAPIError(err, "reading deployment "+rec.Copy)
		}
		s, err := sc.get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return nil, describeAPIError(err, "reading the replica count of "+rec.WorkloadRef())
		}
		if t, err := takeOverOf(d); t != nil || err != nil {
			if err == nil && s.Spec.Replicas != 0 {
				// A take-over leaves the original at zero; this record was
				// written some other way, and its count is not to be trusted.
				err = fmt.Errorf("deployment %s carries a take-over record (%d replicas) while %s runs %d: it was not written by a take-over. "+
					"Nothing was changed; intercept without --take-over, or close the intercept (kubectl intercept close svc/%s) and start again",
					rec.Copy, t.Replicas, rec.WorkloadRef(), s.Spec.Replicas, rec.Service)
				t = nil
			}
			return t, err
		}
		if s.Spec.Replicas == 0 {
			return nil, fmt.Errorf("%s runs no replicas: callers have no connections to it to move, and close would have no count to give back; intercept without --take-over", rec.WorkloadRef())
		}
		t := &TakeOver{Replicas: s.Spec.Replicas, At: time.Now().UTC().Truncate(time.Second), Autoscalers: hpas}
		raw, _ := json.Marshal(t)
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[AnnotationTakeOver] = string(raw)
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) {
			continue // someone wrote the copy in between: read it again
		}
		if err != nil {
			return nil, describeAPIError(err, "recording the take-over on deployment "+rec.Copy)
		}
		return t, nil
	}
}

// GiveBack scales the original of a taken-over session back to its
// recorded count, unless someone set another count meanwhile (that is
// kept, and said), and waits for its pods to be ready, so that the
// Service, restored next, finds them. It does nothing for a copy without
// a take-over.
func GiveBack(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, cp *appsv1.Deployment, timeout time.Duration, p Progress) error {
	t, err := takeOverOf(cp)
	if t == nil || err != nil {
		return err
	}
	sc, err := scalerOf(cs, ns, rec)
	if err != nil {
		return err
	}
	s, err := sc.get(ctx, rec.Workload, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil // the original is gone: nothing to give back
	}
	if err != nil {
		return describeAPIError(err, "reading the replica count of "+rec.WorkloadRef())
	}
	if s.Spec.Replicas != 0 {
		if s.Spec.Replicas != t.Replicas {
			p.Warn(fmt.Sprintf("kept %s at %d replica(s), set since the take-over (it had %d)", rec.WorkloadRef(), s.Spec.Replicas, t.Replicas))
		}
		return nil
	}
	done := p.Step(fmt.Sprintf("scaling %s back to %d replica(s)", rec.WorkloadRef(), t.Replicas))
	err = setReplicas(ctx, sc, rec, t.Replicas)
	done(err)
	if err != nil {
		return fmt.Errorf("%w; the Service still points at the copy, so nothing is down. "+
			"Scale it back yourself (kubectl scale %s -n %s --replicas=%d) and close again", err, rec.WorkloadRef(), ns, t.Replicas)
	}
	sayAutoscalersResume(ctx, cs, ns, rec, t, p)
	done = p.Step(fmt.Sprintf("waiting for %d ready pod(s) of %s", t.Replicas, rec.WorkloadRef()))
	err = waitReady(ctx, cs, ns, rec, t.Replicas, timeout)
	done(err)
	if err != nil && ctx.Err() == nil {
		p.Warn(err.Error())
		return nil
	}
	return err
}

// setReplicas sets the original's replica count through its scale
// subresource, retrying on conflicts.
func setReplicas(ctx context.Context, sc scaler, rec *Record, n int32) error {
	for {
		s, err := sc.get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return describeAPIError(err, "reading the replica count of "+rec.WorkloadRef())
		}
		s.Spec.Replicas = n
		_, err = sc.set(ctx, rec.Workload, s, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return describeAPIError(err, fmt.Sprintf("scaling %s to %d replica(s)", rec.WorkloadRef(), n))
		}
		return nil
	}
}

// waitScaled polls the original's observed replica count until ok.
func waitScaled(ctx context.Context, sc scaler, rec *Record, ok func(int32) bool, timeout time.Duration) error {
	return pollUntil(ctx, timeout, func() (bool, error) {
		s, err := sc.get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return false, describeAPIError(err, "reading the replica count of "+rec.WorkloadRef())
		}
		return ok(s.Status.Replicas), nil
	}, func() string { return rec.WorkloadRef() + "'s pods did not stop" })
}

// waitReady polls the original until n of its pods are ready.
func waitReady(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, n int32, timeout time.Duration) error {
	return pollUntil(ctx, timeout, func() (bool, error) {
		ready, err := readyReplicas(ctx, cs, ns, rec)
		return ready >= n, err
	}, func() string {
		return fmt.Sprintf("%s has not %d ready pod(s) yet; the Service is restored anyway", rec.WorkloadRef(), n)
	})
}

// waitCopyReady polls the copy until n of its pods are ready.
func waitCopyReady(ctx context.Context, cs kubernetes.Interface, ns, name string, n int32, timeout time.Duration) error {
	return pollUntil(ctx, timeout, func() (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, describeAPIError(err, "reading deployment "+name)
		}
		return d.Status.ReadyReplicas >= n, nil
	}, func() string { return fmt.Sprintf("the copy %s has not %d ready pod(s)", name, n) })
}

func readyReplicas(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) (int32, error) {
	var ready int32
	var err error
	switch kindOf(rec) {
	case workload.KindDeployment:
		var d *appsv1.Deployment
		if d, err = cs.AppsV1().Deployments(ns).Get(ctx, rec.Workload, metav1.GetOptions{}); err == nil {
			ready = d.Status.ReadyReplicas
		}
	case workload.KindStatefulSet:
		var s *appsv1.StatefulSet
		if s, err = cs.AppsV1().StatefulSets(ns).Get(ctx, rec.Workload, metav1.GetOptions{}); err == nil {
			ready = s.Status.ReadyReplicas
		}
	case workload.KindReplicaSet:
		var r *appsv1.ReplicaSet
		if r, err = cs.AppsV1().ReplicaSets(ns).Get(ctx, rec.Workload, metav1.GetOptions{}); err == nil {
			ready = r.Status.ReadyReplicas
		}
	}
	if err != nil {
		return 0, describeAPIError(err, "reading "+rec.WorkloadRef())
	}
	return ready, nil
}

// pollUntil asks ok every half second until it holds, fails, or timeout
// passes (then the error says what).
func pollUntil(ctx context.Context, timeout time.Duration, ok func() (bool, error), what func() string) error {
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		done, err := ok()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s within %s", what(), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
