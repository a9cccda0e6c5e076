//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var (
	rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	crdGVR      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// demoLabels are the labels the demo Service selects.
var demoLabels = map[string]string{"app": "demo"}

// demoServiceFor creates Service demo in front of pods labeled app=demo,
// targeting the named port "http".
func demoServiceFor(t *testing.T, ns string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: demoLabels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	}
	svc, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// waitDemoPods waits until n pods labeled app=demo are ready.
func waitDemoPods(t *testing.T, ns string, n int) {
	t.Helper()
	waitFor(t, 2*time.Minute, strconv.Itoa(n)+" ready demo pods", func() bool {
		pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=demo"})
		if err != nil {
			return false
		}
		ready := 0
		for _, p := range pods.Items {
			if podReady(&p) && p.DeletionTimestamp == nil {
				ready++
			}
		}
		return ready == n
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// kindSnapshot is the namespace as a user would compare it around an
// intercept of any workload kind: the Service, the Deployments, the pods
// (by name: the original's are never replaced) and the original's spec.
type kindSnapshot struct {
	Selector    map[string]string
	Ports       []corev1.ServicePort
	Annotations map[string]string
	Deployments []string
	Pods        []string
	Original    int64 // the original's generation
}

func snapshotKind(t *testing.T, ns string, generation func() int64) kindSnapshot {
	t.Helper()
	ctx := t.Context()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := kindSnapshot{Selector: svc.Spec.Selector, Ports: svc.Spec.Ports, Annotations: svc.Annotations, Original: generation()}
	ds, _ := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	for _, d := range ds.Items {
		s.Deployments = append(s.Deployments, d.Name)
	}
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		s.Pods = append(s.Pods, p.Name)
	}
	slices.Sort(s.Pods)
	return s
}

// interceptKind intercepts Service demo in front of a workload of kind
// (as kubectl spells it: statefulset/demo), checks both routes, closes,
// and checks that the namespace is exactly as before.
func interceptKind(t *testing.T, ns, ref string, replicas int, generation func() int64) {
	t.Helper()
	svc, err := cs.CoreV1().Services(ns).Get(t.Context(), "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotKind(t, ns, generation)
	port := laptop(t, laptopPod)
	// The copy of every kind (a StatefulSet's and a Pod's are served by
	// decoy by default: decoy_test.go).
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--decoy=false")
	p.waitOutput(t, "Intercepting service", 3*time.Minute)
	if !strings.Contains(p.output(), "(copy of "+ref+" with the sidecar)") {
		t.Errorf("the start does not name %s:\n%s", ref, p.output())
	}
	waitFor(t, 30*time.Second, "tunnels to every copy pod", func() bool { return strings.Count(p.output(), "route up:") >= replicas })
	for i := range 10 {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
			t.Fatalf("header request %d reached %q, want the laptop", i+1, got)
		}
		if got := routedTo(t, svc, nil); got == laptopPod || got == "" {
			t.Fatalf("request %d without the header reached %q, want the cluster", i+1, got)
		}
	}
	list, err := runPlugin(t, "list", "-n", ns)
	if err != nil || !strings.Contains(list, ref) {
		t.Errorf("list does not name %s (%v):\n%s", ref, err, list)
	}
	status, err := runPlugin(t, "status", "svc/demo", "-n", ns)
	if err != nil || !strings.Contains(status, ref+", copied as deployment/") {
		t.Errorf("status does not name %s (%v):\n%s", ref, err, status)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("the intercept ended with %v:\n%s", err, p.output())
	}
	var after kindSnapshot
	waitFor(t, 60*time.Second, "the copy's pods to be gone", func() bool {
		after = snapshotKind(t, ns, generation)
		return len(after.Pods) == len(before.Pods)
	})
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("the namespace is not as it was:\nbefore %+v\nafter  %+v", before, after)
	}
}

// Every workload kind a Service can front is intercepted with the header,
// both routes work, and close restores exactly and deletes only the copy.
func TestEveryWorkloadKind(t *testing.T) {
	t.Parallel()
	t.Run("StatefulSet", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		createStatefulSet(t, ns, nil)
		demoServiceFor(t, ns)
		waitDemoPods(t, ns, 2)
		interceptKind(t, ns, "statefulset/demo", 2, statefulSetGeneration(t, ns))
	})
	t.Run("StatefulSetWithClaims", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		class := staticVolume(t, ns)
		createStatefulSet(t, ns, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: ptr.To(class),
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
			},
		})
		demoServiceFor(t, ns)
		waitDemoPods(t, ns, 1)
		// The warning names what the copy does with the claims.
		out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", "3000", "--dry-run", "--decoy=false")
		if err != nil || !strings.Contains(out, "EmptyClaimTemplates") || !strings.Contains(out, "ordinal hostnames") {
			t.Errorf("the dry run does not warn about the claims and the identity (%v):\n%s", err, out)
		}
		interceptKind(t, ns, "statefulset/demo", 1, statefulSetGeneration(t, ns))
	})
	t.Run("ReplicaSet", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "demo-v1", Namespace: ns},
			Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(2)),
				Selector: &metav1.LabelSelector{MatchLabels: demoLabels}, Template: demoTemplate(demoLabels)},
		}
		if _, err := cs.AppsV1().ReplicaSets(ns).Create(t.Context(), rs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		demoServiceFor(t, ns)
		waitDemoPods(t, ns, 2)
		interceptKind(t, ns, "replicaset/demo-v1", 2, func() int64 {
			rs, err := cs.AppsV1().ReplicaSets(ns).Get(context.Background(), "demo-v1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return rs.Generation
		})
	})
	t.Run("Pod", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		createBarePod(t, ns, "demo")
		demoServiceFor(t, ns)
		waitDemoPods(t, ns, 1)
		interceptKind(t, ns, "pod/demo", 1, func() int64 {
			p, err := cs.CoreV1().Pods(ns).Get(context.Background(), "demo", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return p.Generation
		})
		// A second bare pod behind the Service: two workloads, refused.
		createBarePod(t, ns, "demo-2")
		waitDemoPods(t, ns, 2)
		out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", "3000")
		if err == nil || !strings.Contains(out, "selects pods of several workloads (pod/demo, pod/demo-2)") {
			t.Errorf("want a refusal naming both pods, got %v:\n%s", err, out)
		}
	})
	t.Run("Rollout", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		installRolloutCRD(t)
		rollout := createRollout(t, ns, "demo", int64(2), demoTemplate(demoLabels))
		rolloutPods(t, ns, rollout, demoLabels, 2)
		demoServiceFor(t, ns)
		waitDemoPods(t, ns, 2)
		interceptKind(t, ns, "rollout/demo", 2, func() int64 {
			u, err := dyn.Resource(rolloutsGVR).Namespace(ns).Get(context.Background(), "demo", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return u.GetGeneration()
		})

		// A Rollout with neither a template nor a workloadRef is refused.
		empty := createRollout(t, ns, "empty", 1, corev1.PodTemplateSpec{})
		emptyLabels := map[string]string{"app": "empty"}
		rolloutPods(t, ns, empty, emptyLabels, 1)
		waitFor(t, time.Minute, "the template-less rollout's pod", func() bool {
			pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=empty"})
			return err == nil && len(pods.Items) == 1
		})
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "empty", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: emptyLabels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
		if _, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := runPlugin(t, "svc/empty", "-n", ns, "-l", "3000")
		if err == nil || !strings.Contains(out, "rollout empty has neither spec.template nor spec.workloadRef") {
			t.Errorf("want a refusal of the template-less rollout, got %v:\n%s", err, out)
		}
	})
}

func createStatefulSet(t *testing.T, ns string, claim *corev1.PersistentVolumeClaim) {
	t.Helper()
	replicas := int32(2)
	tmpl := demoTemplate(demoLabels)
	var claims []corev1.PersistentVolumeClaim
	if claim != nil {
		replicas = 1
		claims = []corev1.PersistentVolumeClaim{*claim}
		tmpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: claim.Name, MountPath: "/data"}}
	}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas), ServiceName: "demo",
			Selector: &metav1.LabelSelector{MatchLabels: demoLabels}, Template: tmpl, VolumeClaimTemplates: claims,
			PodManagementPolicy: appsv1.ParallelPodManagement},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func statefulSetGeneration(t *testing.T, ns string) func() int64 {
	return func() int64 {
		s, err := cs.AppsV1().StatefulSets(ns).Get(context.Background(), "demo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Generation
	}
}

// staticVolume makes a hostPath PersistentVolume of a class of its own
// (no provisioner runs here) and returns the class; it is removed, with
// its directory, when the test ends.
func staticVolume(t *testing.T, ns string) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "kubectl-intercept-e2e-"+ns)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              ns,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: dir, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(t.Context(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), ns, metav1.DeleteOptions{})
		_ = os.RemoveAll(dir)
	})
	return ns
}

func createBarePod(t *testing.T, ns, name string) {
	t.Helper()
	tmpl := demoTemplate(demoLabels)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: tmpl.Labels}, Spec: tmpl.Spec}
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// installRolloutCRD installs Argo Rollouts' CRD alone (no controller):
// enough to create Rollouts that the plugin reads.
func installRolloutCRD(t *testing.T) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "rollouts.argoproj.io"},
		"spec": map[string]any{
			"group": "argoproj.io", "scope": "Namespaced",
			"names": map[string]any{"kind": "Rollout", "listKind": "RolloutList", "plural": "rollouts", "singular": "rollout"},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
				"subresources": map[string]any{"status": map[string]any{},
					"scale": map[string]any{"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
			}},
		},
	}}
	_, err := dyn.Resource(crdGVR).Create(t.Context(), crd, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err == nil {
		t.Cleanup(func() {
			_ = dyn.Resource(crdGVR).Delete(context.Background(), "rollouts.argoproj.io", metav1.DeleteOptions{})
		})
	}
	waitFor(t, 30*time.Second, "the Rollout CRD to be served", func() bool {
		_, err := dyn.Resource(rolloutsGVR).Namespace("default").List(t.Context(), metav1.ListOptions{})
		return err == nil
	})
}

// createRollout creates a Rollout with tmpl as its template (none when
// tmpl is empty).
func createRollout(t *testing.T, ns, name string, replicas int64, tmpl corev1.PodTemplateSpec) *unstructured.Unstructured {
	t.Helper()
	spec := map[string]any{"replicas": replicas,
		"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}}}
	if len(tmpl.Spec.Containers) > 0 {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&tmpl)
		if err != nil {
			t.Fatal(err)
		}
		spec["template"] = m
		spec["selector"] = map[string]any{"matchLabels": map[string]any{"app": tmpl.Labels["app"]}}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
	out, err := dyn.Resource(rolloutsGVR).Namespace(ns).Create(t.Context(), u, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rolloutPods does what the Rollouts controller would: a ReplicaSet owned
// by the Rollout runs its pods.
func rolloutPods(t *testing.T, ns string, rollout *unstructured.Unstructured, labels map[string]string, n int32) {
	t.Helper()
	podLabels := map[string]string{"rollouts-pod-template-hash": "6b8d9c"}
	for k, v := range labels {
		podLabels[k] = v
	}
	tmpl := demoTemplate(podLabels)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: rollout.GetName() + "-6b8d9c", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout",
				Name: rollout.GetName(), UID: rollout.GetUID(), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(n), Selector: &metav1.LabelSelector{MatchLabels: podLabels}, Template: tmpl},
	}
	if _, err := cs.AppsV1().ReplicaSets(ns).Create(t.Context(), rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
