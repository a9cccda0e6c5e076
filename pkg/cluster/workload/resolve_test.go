package workload

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

const ns = "shop"

func svcFor(app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9", Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
}

func template(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.com/" + app}}},
	}
}

func ownedPod(name, app string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: template(app).Spec}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

func controller(apiVersion, kind, name string) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID("u-" + name), Controller: ptr.To(true)}
}

func rolloutObject(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{Rollouts: "RolloutList"}, objs...)
}

// Every kind a Service can front resolves to the workload a user would name.
func TestResolveKinds(t *testing.T) {
	tmplMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ptr.To(template("web")))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		objs    []runtime.Object
		dyn     []runtime.Object
		wantRef string
		replica int32
	}{
		{
			name: "deployment",
			objs: []runtime.Object{
				&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
					Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(3)), Template: template("web")}},
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f", Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{*controller("apps/v1", "Deployment", "web")}}},
				ownedPod("web-5d8f-a", "web", controller("apps/v1", "ReplicaSet", "web-5d8f")),
			},
			wantRef: "deployment/web", replica: 3,
		},
		{
			name: "statefulset",
			objs: []runtime.Object{
				&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
					Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2)), Template: template("web")}},
				ownedPod("web-0", "web", controller("apps/v1", "StatefulSet", "web")),
				ownedPod("web-1", "web", controller("apps/v1", "StatefulSet", "web")),
			},
			wantRef: "statefulset/web", replica: 2,
		},
		{
			name: "bare replicaset",
			objs: []runtime.Object{
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-v1", Namespace: ns},
					Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To(int32(4)), Template: template("web")}},
				ownedPod("web-v1-a", "web", controller("apps/v1", "ReplicaSet", "web-v1")),
			},
			wantRef: "replicaset/web-v1", replica: 4,
		},
		{
			name:    "bare pod",
			objs:    []runtime.Object{ownedPod("web", "web", nil)},
			wantRef: "pod/web", replica: 1,
		},
		{
			name: "rollout with a template",
			objs: []runtime.Object{
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7c9", Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{*controller("argoproj.io/v1alpha1", "Rollout", "web")}}},
				ownedPod("web-7c9-a", "web", controller("apps/v1", "ReplicaSet", "web-7c9")),
			},
			dyn:     []runtime.Object{rolloutObject("web", map[string]any{"replicas": int64(5), "template": tmplMap})},
			wantRef: "rollout/web", replica: 5,
		},
		{
			name: "rollout with a workloadRef",
			objs: []runtime.Object{
				&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web-base", Namespace: ns},
					Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(0)), Template: template("web")}},
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7c9", Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{*controller("argoproj.io/v1alpha1", "Rollout", "web")}}},
				ownedPod("web-7c9-a", "web", controller("apps/v1", "ReplicaSet", "web-7c9")),
			},
			dyn: []runtime.Object{rolloutObject("web", map[string]any{"replicas": int64(2),
				"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-base"}})},
			wantRef: "rollout/web", replica: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.objs...)
			target, err := Resolve(context.Background(), cs, newDynamic(tc.dyn...), svcFor("web"), "intercept.kubectl.dev/session")
			if err != nil {
				t.Fatal(err)
			}
			if got := target.Source.Ref(); got != tc.wantRef {
				t.Errorf("resolved %s, want %s", got, tc.wantRef)
			}
			if target.Source.Replicas != tc.replica {
				t.Errorf("desired replicas %d, want %d", target.Source.Replicas, tc.replica)
			}
			if c := target.Source.Template.Spec.Containers; len(c) != 1 || c[0].Image != "example.com/web" {
				t.Errorf("the template's containers are %+v", c)
			}
		})
	}
}

// What cannot be copied is refused before anything changes, saying why.
func TestResolveRefuses(t *testing.T) {
	cases := []struct {
		name string
		objs []runtime.Object
		dyn  []runtime.Object
		want []string
	}{
		{
			name: "two workloads",
			objs: []runtime.Object{
				&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.StatefulSetSpec{Template: template("web")}},
				ownedPod("web-0", "web", controller("apps/v1", "StatefulSet", "web")),
				ownedPod("stray", "web", nil),
			},
			want: []string{"several workloads", "pod/stray", "statefulset/web"},
		},
		{
			name: "a daemonset",
			objs: []runtime.Object{ownedPod("agent-x", "web", controller("apps/v1", "DaemonSet", "agent"))},
			want: []string{"daemonset/agent", "DaemonSet"},
		},
		{
			name: "a rollout without a template",
			objs: []runtime.Object{
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7c9", Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{*controller("argoproj.io/v1alpha1", "Rollout", "web")}}},
				ownedPod("web-7c9-a", "web", controller("apps/v1", "ReplicaSet", "web-7c9")),
			},
			dyn:  []runtime.Object{rolloutObject("web", map[string]any{"replicas": int64(1)})},
			want: []string{"rollout web has neither spec.template nor spec.workloadRef"},
		},
		{
			name: "a rollout with a workloadRef to something else",
			objs: []runtime.Object{
				&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-7c9", Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{*controller("argoproj.io/v1alpha1", "Rollout", "web")}}},
				ownedPod("web-7c9-a", "web", controller("apps/v1", "ReplicaSet", "web-7c9")),
			},
			dyn: []runtime.Object{rolloutObject("web", map[string]any{
				"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x"}})},
			want: []string{"only a Deployment's template can be copied"},
		},
		{
			name: "no pods",
			want: []string{"selects no running pods"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), fake.NewClientset(tc.objs...), newDynamic(tc.dyn...), svcFor("web"), "intercept.kubectl.dev/session")
			if err == nil {
				t.Fatal("resolved; want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A StatefulSet's copy warns by name that its claims become empty
// directories and that its pods lose their identity.
func TestPreflightStatefulSet(t *testing.T) {
	s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{Template: template("web"),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}}}}
	svc := svcFor("web")
	warnings, err := Preflight(svc, []*corev1.ServicePort{&svc.Spec.Ports[0]}, FromStatefulSet(s), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(warnings, "\n")
	for _, w := range []string{WarnEmptyClaims, "(data)", "no stable network identity", "ordinal hostnames"} {
		if !strings.Contains(joined, w) {
			t.Errorf("warnings %q do not say %q", joined, w)
		}
	}
}
