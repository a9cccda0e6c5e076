package session

import (
	"context"
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// A take-over and the original's HorizontalPodAutoscaler. The take-over
// never writes the HPA: it relies on what Kubernetes documents as the
// HPA's implicit maintenance-mode deactivation. While its target's replica
// count is zero and its minReplicas is not, the HPA controller does not
// scale the target (condition ScalingActive=False, reason
// ScalingDisabled), and it resumes once the count is set again, which the
// give-back does. So the original stays at zero after a crash too, the
// HPA's spec is never changed (nothing to restore, nothing a crash can
// leave half-written), and the Role needs only to read HPAs.
//
// Two autoscalers would not stay away from a target at zero, and a
// take-over refuses them: an HPA whose minReplicas is 0 (the
// HPAScaleToZero feature gate) keeps computing its metrics and scales the
// target up from zero, and KEDA's operator scales the target of its
// ScaledObject (whose HPA it owns) up to its minimum or on activity.

// Autoscaler is an HPA of the original as a take-over found it.
type Autoscaler struct {
	Name        string `json:"name"`
	MinReplicas int32  `json:"minReplicas"`
	MaxReplicas int32  `json:"maxReplicas"`
}

// maxRecordedAutoscalers bounds what a take-over records: one HPA per
// target is the rule, the HPA controller refuses to act when there are
// more.
const maxRecordedAutoscalers = 4

// autoscalersOf lists the HorizontalPodAutoscalers that target the
// original.
func autoscalersOf(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) ([]autoscalingv2.HorizontalPodAutoscaler, error) {
	list, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	kind := kindOf(rec)
	var out []autoscalingv2.HorizontalPodAutoscaler
	for _, h := range list.Items {
		ref := h.Spec.ScaleTargetRef
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err != nil || gv.Group != "apps" || ref.Kind != kind || ref.Name != rec.Workload {
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

// checkAutoscalers returns the original's HPAs to record, or why a
// take-over would not hold against one of them. An HPA that cannot be
// listed (the Role lacks the optional rule) is said, and the take-over
// goes on: should an autoscaler scale the original up again, the
// intercept goes on as without --take-over and close keeps its count.
func checkAutoscalers(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, p Progress) ([]Autoscaler, error) {
	hpas, err := autoscalersOf(ctx, cs, ns, rec)
	if apierrors.IsForbidden(err) {
		p.Warn(fmt.Sprintf("could not check for a HorizontalPodAutoscaler of %s (the Role lacks list on horizontalpodautoscalers.autoscaling: "+
			"kubectl intercept rbac prints the optional rule); one with minReplicas 0 would scale it back up from zero", rec.WorkloadRef()))
		return nil, nil
	}
	if err != nil {
		return nil, describeAPIError(err, "listing the HorizontalPodAutoscalers of namespace "+ns)
	}
	var out []Autoscaler
	for _, h := range hpas {
		if ownedByKEDA(&h) {
			return nil, fmt.Errorf("%s is scaled by KEDA (HorizontalPodAutoscaler %s belongs to a ScaledObject), whose operator scales it up from zero again, "+
				"so the take-over would not hold; nothing was changed",
				rec.WorkloadRef(), h.Name)
		}
		least := ptr.Deref(h.Spec.MinReplicas, 1)
		if least == 0 {
			return nil, fmt.Errorf("HorizontalPodAutoscaler %s may scale %s to zero and up again (its minReplicas is 0), "+
				"so the take-over would not hold; nothing was changed", h.Name, rec.WorkloadRef())
		}
		if len(out) < maxRecordedAutoscalers {
			out = append(out, Autoscaler{Name: h.Name, MinReplicas: least, MaxReplicas: h.Spec.MaxReplicas})
		}
	}
	return out, nil
}

// ownedByKEDA says whether the HPA belongs to a KEDA ScaledObject.
func ownedByKEDA(h *autoscalingv2.HorizontalPodAutoscaler) bool {
	for _, o := range h.OwnerReferences {
		if o.Kind == "ScaledObject" && strings.HasPrefix(o.APIVersion, "keda.sh/") {
			return true
		}
	}
	return false
}

// sayAutoscalersResume tells, once the original has its count back, that
// its HPAs resume, and which of them someone changed since the take-over
// (the change is theirs and kept: the take-over never writes an HPA).
func sayAutoscalersResume(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, t *TakeOver, p Progress) {
	hpas, err := autoscalersOf(ctx, cs, ns, rec)
	if err != nil {
		return // not ours to check: the HPA resumes or not whatever we read
	}
	was := map[string]Autoscaler{}
	for _, a := range t.Autoscalers {
		was[a.Name] = a
	}
	for _, h := range hpas {
		now := Autoscaler{Name: h.Name, MinReplicas: ptr.Deref(h.Spec.MinReplicas, 1), MaxReplicas: h.Spec.MaxReplicas}
		if a, ok := was[h.Name]; ok && a != now {
			p.Warn(fmt.Sprintf("HorizontalPodAutoscaler %s was changed during the take-over (%d to %d replicas, now %d to %d): kept",
				h.Name, a.MinReplicas, a.MaxReplicas, now.MinReplicas, now.MaxReplicas))
		}
		done := p.Step(fmt.Sprintf("HorizontalPodAutoscaler %s scales %s again (%d to %d replicas)", h.Name, rec.WorkloadRef(), now.MinReplicas, now.MaxReplicas))
		done(nil)
	}
}
