package session

import (
	"context"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
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

// CopyPods lists the pods of the session's copy in name order: those that
// carry its label and whose owner chain leads to the verified copy (see
// CopyChain). A pod that merely carries the label (a look-alike
// Deployment's, say) is not listed. No copy (deleted) lists no pod.
func CopyPods(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) ([]corev1.Pod, error) {
	chain, err := NewCopyChain(ctx, cs, ns, rec)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: CopySelector(rec)})
	if err != nil {
		return nil, describeAPIError(err, "listing the pods of copy "+rec.Copy)
	}
	out := list.Items[:0]
	for i := range list.Items {
		if chain.Owns(ctx, &list.Items[i]) {
			out = append(out, list.Items[i])
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CopyChain tells a session's copy pods by their owner chain, never by a
// label (anyone who may create a Deployment can label its pods as ours):
// a pod is the copy's when its controller is a ReplicaSet whose controller
// is the copy Deployment, by UID, the Deployment itself verified as the
// record's (verifyCopy).
type CopyChain struct {
	cs kubernetes.Interface
	ns string
	// Copy is the verified copy Deployment's name, UID its UID.
	Copy string
	UID  types.UID
	mu   sync.Mutex
	rs   map[types.UID]bool // ReplicaSets looked at: whether the copy controls them
}

// NewCopyChain verifies the copy the record names and returns the check of
// its pods. A missing copy is the API's NotFound.
func NewCopyChain(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) (*CopyChain, error) {
	if err := verifyCopy(ctx, cs, ns, rec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, describeAPIError(err, "checking copy "+rec.Copy)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		return nil, describeAPIError(err, "reading copy "+rec.Copy)
	}
	return &CopyChain{cs: cs, ns: ns, Copy: d.Name, UID: d.UID, rs: map[types.UID]bool{}}, nil
}

// Owns reports whether p is a pod of the copy: its controller is a
// ReplicaSet (same UID as named) controlled by the copy Deployment's UID.
// A ReplicaSet is read once; a failed read says no, and is tried again
// next time.
func (c *CopyChain) Owns(ctx context.Context, p *corev1.Pod) bool {
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ReplicaSet" || !strings.HasPrefix(ref.APIVersion, "apps/") {
		return false
	}
	c.mu.Lock()
	ok, known := c.rs[ref.UID]
	c.mu.Unlock()
	if known {
		return ok
	}
	rs, err := c.cs.AppsV1().ReplicaSets(c.ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return false
	}
	ok = false
	if err == nil && rs.UID == ref.UID {
		own := metav1.GetControllerOf(rs)
		ok = own != nil && own.Kind == "Deployment" && own.UID == c.UID && own.Name == c.Copy
	}
	c.mu.Lock()
	c.rs[ref.UID] = ok
	c.mu.Unlock()
	return ok
}
