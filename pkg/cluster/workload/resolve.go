// Package workload finds the workload behind a Service and makes the copy
// that carries the sidecar. The copy and the checks are pure functions:
// objects in, objects out.
package workload

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Target is the workload behind a Service and its pods.
type Target struct {
	Source *Source
	// Pods are the original's pods the Service selects.
	Pods []corev1.Pod
}

// owner is a workload that owns pods: kind and name.
type owner struct{ kind, name string }

func (o owner) String() string { return KindRef(o.kind, o.name) }

// Resolve finds the single workload whose pods the Service selects: a
// Deployment, a StatefulSet, a ReplicaSet of its own, an Argo Rollout (read
// through dyn; nil: Rollouts are refused) or a bare Pod. sessionLabel is
// the label our copies carry; their pods are not owners.
func Resolve(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, svc *corev1.Service, sessionLabel string) (*Target, error) {
	if err := CheckService(svc); err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector).String()
	pods, err := cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of service %s (selector %s): %w", svc.Name, sel, err)
	}
	owners := map[owner][]corev1.Pod{}
	var unsupported []string
	rsOwner := map[string]owner{} // ReplicaSets read once
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := p.Labels[sessionLabel]; ok {
			continue // a pod of one of our copies: not the workload
		}
		ref := metav1.GetControllerOf(&p)
		switch {
		case ref == nil:
			owners[owner{KindPod, p.Name}] = append(owners[owner{KindPod, p.Name}], p)
		case ref.Kind == KindStatefulSet && strings.HasPrefix(ref.APIVersion, "apps/"):
			o := owner{KindStatefulSet, ref.Name}
			owners[o] = append(owners[o], p)
		case ref.Kind == KindReplicaSet && strings.HasPrefix(ref.APIVersion, "apps/"):
			o, ok := rsOwner[ref.Name]
			if !ok {
				rs, err := cs.AppsV1().ReplicaSets(svc.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("reading replicaset %s, owner of pod %s: %w", ref.Name, p.Name, err)
				}
				if o, err = replicaSetOwner(rs); err != nil {
					unsupported = append(unsupported, err.Error())
					continue
				}
				rsOwner[ref.Name] = o
			}
			owners[o] = append(owners[o], p)
		default:
			unsupported = append(unsupported, strings.ToLower(ref.Kind)+"/"+ref.Name)
		}
	}
	if len(unsupported) > 0 {
		sort.Strings(unsupported)
		return nil, unsupportedError(svc.Name, dedupe(unsupported))
	}
	switch len(owners) {
	case 0:
		return nil, fmt.Errorf("service %s selects no running pods (selector %s): "+
			"the workload behind it must be running to be copied; scale it up and try again", svc.Name, sel)
	case 1:
	default:
		names := make([]string, 0, len(owners))
		for o := range owners {
			names = append(names, o.String())
		}
		sort.Strings(names)
		return nil, fmt.Errorf("service %s selects pods of several workloads (%s): "+
			"an intercept copies exactly one; narrow the Service's selector", svc.Name, strings.Join(names, ", "))
	}
	for o, ps := range owners {
		src, err := read(ctx, cs, dyn, svc.Namespace, o, ps)
		if err != nil {
			return nil, fmt.Errorf("reading %s behind service %s: %w", o, svc.Name, err)
		}
		return &Target{Source: src, Pods: ps}, nil
	}
	panic("unreachable")
}

// replicaSetOwner is the workload a ReplicaSet's pods belong to: its
// Deployment, its Rollout, or the ReplicaSet itself.
func replicaSetOwner(rs *appsv1.ReplicaSet) (owner, error) {
	ref := metav1.GetControllerOf(rs)
	switch {
	case ref == nil:
		return owner{KindReplicaSet, rs.Name}, nil
	case ref.Kind == KindDeployment && strings.HasPrefix(ref.APIVersion, "apps/"):
		return owner{KindDeployment, ref.Name}, nil
	case ref.Kind == KindRollout && strings.HasPrefix(ref.APIVersion, Rollouts.Group+"/"):
		return owner{KindRollout, ref.Name}, nil
	}
	return owner{}, fmt.Errorf("replicaset/%s (controlled by %s/%s)", rs.Name, strings.ToLower(ref.Kind), ref.Name)
}

// read fetches the workload and makes its Source.
func read(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns string, o owner, pods []corev1.Pod) (*Source, error) {
	switch o.kind {
	case KindDeployment:
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return FromDeployment(d), nil
	case KindStatefulSet:
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return FromStatefulSet(s), nil
	case KindReplicaSet:
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return FromReplicaSet(rs), nil
	case KindPod:
		return FromPod(&pods[0]), nil
	case KindRollout:
		return ReadRollout(ctx, cs, dyn, ns, o.name)
	}
	return nil, fmt.Errorf("kind %s is not supported", o.kind)
}

// ReadRollout reads an Argo Rollout and, for a workloadRef, the Deployment
// it names.
func ReadRollout(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns, name string) (*Source, error) {
	if dyn == nil {
		return nil, fmt.Errorf("rollouts cannot be read here (no dynamic client)")
	}
	u, err := dyn.Resource(Rollouts).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	refName, err := RolloutWorkloadRef(u)
	if err != nil {
		return nil, err
	}
	var ref *appsv1.Deployment
	if refName != "" {
		if ref, err = cs.AppsV1().Deployments(ns).Get(ctx, refName, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("reading deployment %s, the workloadRef of rollout %s: %w", refName, name, err)
		}
	}
	return FromRollout(u, ref)
}

func unsupportedError(svc string, what []string) error {
	hint := "only Deployments, StatefulSets, ReplicaSets, Argo Rollouts and bare Pods can be copied " +
		"(a DaemonSet's or a Job's pods are not a Service's workload to stand in for)"
	return fmt.Errorf("service %s selects pods of %s: %s", svc, strings.Join(what, ", "), hint)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// CheckService refuses Services an intercept cannot switch.
func CheckService(svc *corev1.Service) error {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return fmt.Errorf("service %s is of type ExternalName: it points outside the cluster, there is no workload to copy", svc.Name)
	case len(svc.Spec.Selector) == 0:
		return fmt.Errorf("service %s has no selector (its endpoints are managed by hand or by another controller): "+
			"an intercept works by pointing the selector at a copy; intercept the Service of the workload instead", svc.Name)
	case svc.Labels[LabelDecoyOf] != "":
		return fmt.Errorf("service %s is the decoy of an intercept of service %s (kubectl-intercept made it): intercept service %s itself",
			svc.Name, svc.Labels[LabelDecoyOf], svc.Labels[LabelDecoyOf])
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return fmt.Errorf("service %s is headless: callers resolve pod IPs through DNS and never pass a switched selector; "+
			"intercept a Service with a ClusterIP", svc.Name)
	}
	return nil
}
