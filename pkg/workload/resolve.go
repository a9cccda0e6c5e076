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
	"k8s.io/client-go/kubernetes"
)

// Target is the workload behind a Service and its pods.
type Target struct {
	Deployment *appsv1.Deployment
	// Pods are the original's pods the Service selects.
	Pods []corev1.Pod
}

// Resolve finds the single Deployment whose pods the Service selects.
// sessionLabel is the label our copies carry; their pods are not owners.
func Resolve(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, sessionLabel string) (*Target, error) {
	if err := CheckService(svc); err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector).String()
	pods, err := cs.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of service %s (selector %s): %w", svc.Name, sel, err)
	}
	owners := map[string][]corev1.Pod{}
	var unsupported []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := p.Labels[sessionLabel]; ok {
			continue // a pod of one of our copies: not the workload
		}
		ref := metav1.GetControllerOf(&p)
		if ref == nil {
			unsupported = append(unsupported, "pod/"+p.Name+" (no controller)")
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			rs, err := cs.AppsV1().ReplicaSets(svc.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("reading replicaset %s, owner of pod %s: %w", ref.Name, p.Name, err)
			}
			dref := metav1.GetControllerOf(rs)
			if dref == nil || dref.Kind != "Deployment" {
				unsupported = append(unsupported, "replicaset/"+rs.Name+" (not part of a Deployment)")
				continue
			}
			owners[dref.Name] = append(owners[dref.Name], p)
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
		for n := range owners {
			names = append(names, "deployment/"+n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("service %s selects pods of several workloads (%s): "+
			"an intercept copies exactly one; narrow the Service's selector", svc.Name, strings.Join(names, ", "))
	}
	for name, ps := range owners {
		d, err := cs.AppsV1().Deployments(svc.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading deployment %s behind service %s: %w", name, svc.Name, err)
		}
		return &Target{Deployment: d, Pods: ps}, nil
	}
	panic("unreachable")
}

func unsupportedError(svc string, what []string) error {
	hint := "only Deployments can be intercepted"
	for _, w := range what {
		if strings.HasPrefix(w, "statefulset/") {
			hint = "StatefulSets are not copied: a copy would claim new volumes and peer identities; " +
				"put a Deployment behind the Service, or intercept another Service"
		}
	}
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
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return fmt.Errorf("service %s is headless: callers resolve pod IPs through DNS and never pass a switched selector; "+
			"intercept a Service with a ClusterIP", svc.Name)
	}
	return nil
}
