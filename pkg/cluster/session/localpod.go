package session

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Which pod the developer's local process stands in for: the template
// its environment and files come from, the copy only when it proves to
// be the intercept's own.

// EnvTemplate is the pod template whose container's environment the
// local process gets, before anything changes: the copy's when the Service
// is intercepted already, the workload's otherwise.
func EnvTemplate(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns, name string) (*corev1.PodTemplateSpec, *corev1.Service, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("reading service %s: %w", name, err)
	}
	if raw, ok := RecordAnnotation(svc.Annotations); ok {
		rec, err := DecodeRecord(raw)
		if err != nil {
			return nil, nil, err
		}
		d, err := VerifiedCopy(ctx, cs, ns, rec)
		if err != nil {
			return nil, nil, err
		}
		if rec.IsDecoy() {
			// The proxy's pods run the sidecar alone: the app's
			// environment is the original's.
			src, err := readOriginal(ctx, cs, dyn, ns, rec)
			if err != nil {
				return nil, nil, describeAPIError(err, "reading "+rec.WorkloadRef()+", the original behind the decoy")
			}
			return &src.Template, svc, nil
		}
		return &d.Spec.Template, svc, nil
	}
	target, err := workload.Resolve(ctx, cs, dyn, svc, LabelSession)
	if err != nil {
		return nil, nil, err
	}
	return &target.Source.Template, svc, nil
}

// VerifiedCopy reads the copy a record names and checks it is that very
// session's copy, as the start checks one before using it: our
// managed-by label, the session label, and a record of its own for the same
// session, Service and name. The environment comes from its template: a
// Deployment or pod that only carries the labels gives nothing.
func VerifiedCopy(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) (*appsv1.Deployment, error) {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading deployment %s, the intercept's copy: %w", rec.Copy, err)
	}
	own, err := RecordOf(d)
	if d.Labels[LabelManagedBy] != ManagedByValue || d.Labels[LabelSession] != rec.ID ||
		err != nil || own.ID != rec.ID || own.Service != rec.Service || own.Copy != d.Name {
		return nil, fmt.Errorf("deployment %s is not the copy kubectl-intercept made for this intercept of service %s (its labels or its own record differ): its environment is not used; end the intercept and check who changed it",
			rec.Copy, rec.Service)
	}
	return d, nil
}

// EnvPod is the copy pod whose fields the environment reads, chosen among
// the copy's pods (CopyPods) as the one that answered, with the
// containers and volumes of the verified copy's template.
func EnvPod(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record, podName string) (*corev1.Pod, error) {
	d, err := VerifiedCopy(ctx, cs, ns, rec)
	if err != nil {
		return nil, err
	}
	pods, err := CopyPods(ctx, cs, ns, rec)
	if err != nil {
		return nil, err
	}
	var chosen *corev1.Pod
	for i := range pods {
		if pods[i].Name == podName {
			chosen = &pods[i]
			break
		}
		if chosen == nil && Reachable(&pods[i]) {
			chosen = &pods[i]
		}
	}
	if chosen == nil {
		return nil, fmt.Errorf("no pod of copy %s runs to read the environment's fields from; try again once one does", rec.Copy)
	}
	pod := chosen.DeepCopy()
	t := d.Spec.Template.Spec
	if rec.IsDecoy() {
		src, err := readOriginal(ctx, cs, nil, ns, rec)
		if err != nil {
			return nil, describeAPIError(err, "reading "+rec.WorkloadRef()+", the original behind the decoy")
		}
		t = src.Template.Spec
	}
	pod.Spec.Containers, pod.Spec.InitContainers, pod.Spec.Volumes = t.Containers, t.InitContainers, t.Volumes
	pod.Spec.EnableServiceLinks, pod.Spec.ServiceAccountName = t.EnableServiceLinks, t.ServiceAccountName
	return pod, nil
}
