package session

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// WaitReady waits until want pods of the copy are ready, and fails within
// seconds when they cannot start (admission, quota, image pull, crash),
// with the reason the cluster gave. It watches the copy, its ReplicaSets
// and its pods.
func WaitReady(ctx context.Context, cs kubernetes.Interface, ns, name, id string, want int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	changed := make(chan struct{}, 1)
	copies, err := watchDeployment(ctx, cs, ns, name, changed)
	if err != nil {
		return describeAPIError(err, "watching deployment "+name)
	}
	rss, err := watchReplicaSets(ctx, cs, ns, sessionPods(id), changed)
	if err != nil {
		return describeAPIError(err, "watching the replicasets of "+name)
	}
	pods, err := WatchPods(ctx, cs, ns, sessionPods(id), changed)
	if err != nil {
		return describeAPIError(err, "watching the pods of "+name)
	}
	ready := int32(0)
	opened := map[string]bool{}
	var chain *CopyChain
	return waitChanges(ctx, changed, func() (bool, error) {
		// Before the switch no route exists: a pod whose containers are
		// ready holds every route there is. Only the copy's own pods, by
		// their owner chain: anyone may label a pod of theirs as ours, and
		// an opened gate would make it an endpoint of the Service.
		if d, ok := copies.Get(name); ok && chain == nil {
			chain = &CopyChain{cs: cs, ns: ns, Copy: d.Name, UID: d.UID, rs: map[types.UID]bool{}}
		}
		for _, p := range pods.Items() {
			if chain != nil && Gated(p) && containersReady(p) && !opened[p.Name] && chain.Owns(ctx, p) {
				if err := OpenGate(ctx, cs, ns, p.Name, "ready before the Service was switched"); err != nil {
					return false, err
				}
				opened[p.Name] = true
			}
		}
		if d, ok := copies.Get(name); ok {
			ready = d.Status.ReadyReplicas
			if d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas >= want && d.Status.UpdatedReplicas >= want {
				return true, nil
			}
		}
		if reason := podFailure(pods.Items()); reason != "" {
			return false, fmt.Errorf("the copy's pods cannot start: %s", reason)
		}
		if reason := replicaSetFailure(rss.Items()); reason != "" {
			return false, fmt.Errorf("the copy's pods cannot be created: %s", reason)
		}
		return false, nil
	}, func() error {
		return fmt.Errorf("timed out after %s waiting for deployment %s: %d/%d pods ready (see `kubectl describe deployment %s -n %s`)", timeout, name, ready, want, name, ns)
	})
}

func containersReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.ContainersReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podFailure reports a container stuck in a state that will not resolve by
// waiting.
func podFailure(pods []*corev1.Pod) string {
	for _, pod := range pods {
		for _, st := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			if w := st.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff", "RunContainerError":
					return fmt.Sprintf("pod %s container %s: %s: %s", pod.Name, st.Name, w.Reason, w.Message)
				}
			}
			if t := st.LastTerminationState.Terminated; t != nil && st.Name == workload.SidecarName {
				return fmt.Sprintf("pod %s: the sidecar exited (%s, code %d): %s", pod.Name, t.Reason, t.ExitCode, t.Message)
			}
		}
	}
	return ""
}

// replicaSetFailure reports why the copy's ReplicaSet cannot create pods:
// Pod Security, quotas and webhooks refuse pods there, not in our request.
func replicaSetFailure(rss []*appsv1.ReplicaSet) string {
	for _, rs := range rss {
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && c.Status == corev1.ConditionTrue {
				return c.Message
			}
		}
	}
	return ""
}
