package workload

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// The kinds of workload a copy can be made from.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindReplicaSet  = "ReplicaSet"
	KindPod         = "Pod"
	KindRollout     = "Rollout"
)

// Rollouts is Argo Rollouts' resource, read through the dynamic client so
// that nothing of Argo is a dependency.
var Rollouts = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// Source is the workload a copy is made from, whatever its kind: its pod
// template and what the copy takes over from it. The copy is always a
// Deployment of ours.
type Source struct {
	Kind, Name, Namespace string
	// Template is the pod template the copy runs: a controller's own, or a
	// bare Pod's spec without what the scheduler and admission filled in.
	Template corev1.PodTemplateSpec
	// Replicas is the desired count (an HPA's decision included); Ready
	// how many are ready now.
	Replicas, Ready int32
	// MinReadySeconds and ProgressDeadlineSeconds carry over to the copy.
	MinReadySeconds         int32
	ProgressDeadlineSeconds *int32
	// ClaimTemplates are a StatefulSet's volumeClaimTemplates: the copy's
	// pods get an empty directory for each (see Copy).
	ClaimTemplates []corev1.PersistentVolumeClaim
	// RollingOut says the workload is between two versions.
	RollingOut bool
	// Singleton says the workload looks like it must run once (1 replica,
	// replaced by Recreate, or a bare Pod).
	Singleton bool
}

// Ref is how messages name the workload: kind/name, as kubectl spells it.
func (s *Source) Ref() string { return KindRef(s.Kind, s.Name) }

// KindRef spells a workload as kubectl does: deployment/web.
func KindRef(kind, name string) string {
	if kind == "" {
		kind = KindDeployment
	}
	return strings.ToLower(kind) + "/" + name
}

// FromDeployment is the source a Deployment gives.
func FromDeployment(d *appsv1.Deployment) *Source {
	want := ptr.Deref(d.Spec.Replicas, 1)
	st := d.Status
	return &Source{
		Kind: KindDeployment, Name: d.Name, Namespace: d.Namespace,
		Template: *d.Spec.Template.DeepCopy(), Replicas: want, Ready: st.ReadyReplicas,
		MinReadySeconds: d.Spec.MinReadySeconds, ProgressDeadlineSeconds: d.Spec.ProgressDeadlineSeconds,
		RollingOut: st.ObservedGeneration < d.Generation || st.UpdatedReplicas < want || st.Replicas > want,
		Singleton:  want == 1 && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType,
	}
}

// FromStatefulSet is the source a StatefulSet gives. Its pods' stable
// names and volumes do not come along: the copy is a Deployment.
func FromStatefulSet(s *appsv1.StatefulSet) *Source {
	want := ptr.Deref(s.Spec.Replicas, 1)
	st := s.Status
	return &Source{
		Kind: KindStatefulSet, Name: s.Name, Namespace: s.Namespace,
		Template: *s.Spec.Template.DeepCopy(), Replicas: want, Ready: st.ReadyReplicas,
		MinReadySeconds: s.Spec.MinReadySeconds,
		ClaimTemplates:  append([]corev1.PersistentVolumeClaim(nil), s.Spec.VolumeClaimTemplates...),
		RollingOut: st.ObservedGeneration < s.Generation ||
			(st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision),
	}
}

// FromReplicaSet is the source a ReplicaSet of its own (no Deployment
// above it) gives.
func FromReplicaSet(rs *appsv1.ReplicaSet) *Source {
	return &Source{
		Kind: KindReplicaSet, Name: rs.Name, Namespace: rs.Namespace,
		Template: *rs.Spec.Template.DeepCopy(), Replicas: ptr.Deref(rs.Spec.Replicas, 1), Ready: rs.Status.ReadyReplicas,
		MinReadySeconds: rs.Spec.MinReadySeconds,
		RollingOut:      rs.Status.ObservedGeneration < rs.Generation,
	}
}

// FromPod is the source a bare Pod gives: its spec minus what the
// scheduler, the kubelet and admission set on it, so that the copy's pods
// get their own.
func FromPod(p *corev1.Pod) *Source {
	spec := p.Spec.DeepCopy()
	spec.NodeName = ""
	spec.EphemeralContainers = nil
	if spec.PriorityClassName != "" {
		// Admission fills these from the class, and refuses a pod whose
		// values disagree with it.
		spec.Priority, spec.PreemptionPolicy = nil, nil
	}
	dropInjectedToken(spec)
	spec.Tolerations = dropDefaultTolerations(spec.Tolerations)
	ready := int32(0)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = 1
		}
	}
	return &Source{
		Kind: KindPod, Name: p.Name, Namespace: p.Namespace,
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: copyMap(p.Labels), Annotations: podAnnotations(p.Annotations)},
			Spec:       *spec,
		},
		Replicas: 1, Ready: ready, Singleton: true,
	}
}

// FromRollout is the source an Argo Rollout gives: its own template, or
// that of the Deployment its workloadRef names (ref, read by the caller;
// nil when it has a template).
func FromRollout(u *unstructured.Unstructured, ref *appsv1.Deployment) (*Source, error) {
	s := &Source{Kind: KindRollout, Name: u.GetName(), Namespace: u.GetNamespace(), Replicas: 1}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); ok {
		s.Replicas = int32(n)
	}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas"); ok {
		s.Ready = int32(n)
	}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "minReadySeconds"); ok {
		s.MinReadySeconds = int32(n)
	}
	if n, ok, _ := unstructured.NestedInt64(u.Object, "spec", "progressDeadlineSeconds"); ok {
		s.ProgressDeadlineSeconds = ptr.To(int32(n))
	}
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	s.RollingOut = phase == "Progressing" || phase == "Paused"
	if ref != nil {
		s.Template = *ref.Spec.Template.DeepCopy()
		return s, nil
	}
	raw, ok, _ := unstructured.NestedMap(u.Object, "spec", "template")
	if !ok || len(raw) == 0 {
		return nil, fmt.Errorf("rollout %s has neither spec.template nor spec.workloadRef: there is no pod template to copy", u.GetName())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &s.Template); err != nil {
		return nil, fmt.Errorf("reading the pod template of rollout %s: %w", u.GetName(), err)
	}
	return s, nil
}

// RolloutWorkloadRef returns the Deployment a Rollout's spec.workloadRef
// names, "" when it has none. Argo supports Deployments there; any other
// kind is an error.
func RolloutWorkloadRef(u *unstructured.Unstructured) (string, error) {
	ref, ok, _ := unstructured.NestedMap(u.Object, "spec", "workloadRef")
	if !ok {
		return "", nil
	}
	kind, _, _ := unstructured.NestedString(ref, "kind")
	name, _, _ := unstructured.NestedString(ref, "name")
	if kind != KindDeployment || name == "" {
		return "", fmt.Errorf("rollout %s has a workloadRef to %s %q: only a Deployment's template can be copied", u.GetName(), kind, name)
	}
	return name, nil
}

// generatedLabels are the labels controllers put on the pods they make: a
// copy's pod carrying them could be adopted or counted by the original's
// controller.
var generatedLabels = []string{
	appsv1.DefaultDeploymentUniqueLabelKey,
	appsv1.ControllerRevisionHashLabelKey,
	appsv1.StatefulSetPodNameLabel,
	appsv1.PodIndexLabel,
	"rollouts-pod-template-hash",
}

// injectedTokenPrefix names the projected volume the ServiceAccount
// admission plugin adds to every pod; the copy's pods get their own.
const injectedTokenPrefix = "kube-api-access-"

func dropInjectedToken(spec *corev1.PodSpec) {
	dropped := map[string]bool{}
	vols := spec.Volumes[:0]
	for _, v := range spec.Volumes {
		if strings.HasPrefix(v.Name, injectedTokenPrefix) && v.Projected != nil {
			dropped[v.Name] = true
			continue
		}
		vols = append(vols, v)
	}
	spec.Volumes = vols
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			mounts := cs[i].VolumeMounts[:0]
			for _, m := range cs[i].VolumeMounts {
				if !dropped[m.Name] {
					mounts = append(mounts, m)
				}
			}
			cs[i].VolumeMounts = mounts
		}
	}
}

// dropDefaultTolerations removes the not-ready and unreachable tolerations
// admission adds to every pod (it adds them again to the copy's).
func dropDefaultTolerations(ts []corev1.Toleration) []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range ts {
		if (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable) &&
			t.Effect == corev1.TaintEffectNoExecute && t.TolerationSeconds != nil && *t.TolerationSeconds == 300 {
			continue
		}
		out = append(out, t)
	}
	return out
}

// podAnnotations keeps a bare Pod's annotations but those the kubelet and
// kubectl write about this one pod.
func podAnnotations(in map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		if strings.HasPrefix(k, "kubernetes.io/config.") || k == corev1.LastAppliedConfigAnnotation {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func copyMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// claimTemplateNames lists a StatefulSet's claim templates.
func claimTemplateNames(s *Source) []string {
	var names []string
	for _, c := range s.ClaimTemplates {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}
