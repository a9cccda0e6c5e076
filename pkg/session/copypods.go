package session

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/workload"
)

// Which pods are a session's copy pods, and which of them can be asked.

// Reachable is the one definition of a copy pod whose sidecar can be asked
// and can receive traffic: running, not leaving, with an address and the
// sidecar container running. Readiness is not required: a pod that fails
// a probe for a moment still serves the connections it has.
func Reachable(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && sidecarRunning(p)
}

// Draining reports whether a pod is being deleted while its sidecar still
// runs: it finishes the requests it has and those kube-proxy still sends it.
func Draining(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && sidecarRunning(p)
}

// PodReady reports the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func sidecarRunning(p *corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == workload.SidecarName {
			return c.State.Running != nil
		}
	}
	return false
}

// CopySelector selects the pods of a session's copy.
func CopySelector(rec *Record) string {
	return sessionPods(rec.ID).String()
}

// CopyPods lists the pods of the session's copy in name order.
func CopyPods(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) ([]corev1.Pod, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: CopySelector(rec)})
	if err != nil {
		return nil, describeAPIError(err, "listing the pods of copy "+rec.Copy)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}
