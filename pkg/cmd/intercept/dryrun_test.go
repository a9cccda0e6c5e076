package intercept

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// --dry-run prints the copy and the Service as they would be applied,
// computed by the start sequence on a cluster that holds the demo.
func TestDryRunGolden(t *testing.T) {
	labels := map[string]string{"app": "demo"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}}}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo", UID: "d-1"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "demo", Image: "demo:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
			}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2, Replicas: 2, UpdatedReplicas: 2, ObservedGeneration: 1}}
	d.Generation = 1
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo-5d8f", UID: "rs-1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "demo", UID: "d-1", Controller: ptr.To(true)}}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "demo-5d8f-abcde", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "demo-5d8f", UID: "rs-1", Controller: ptr.To(true)}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	cs := fake.NewClientset(svc, d, rs, pod)
	st, err := session.Start(context.Background(), cs, session.StartOptions{Namespace: "shop", Service: "demo",
		ProxyImage: "ghcr.io/kubectl-intercept/intercept-proxy:0.1.0", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// The session id and the time are random and now: fixed for the file.
	var out bytes.Buffer
	if err := printDryRun(&out, st, route.Route{}); err != nil {
		t.Fatal(err)
	}
	got := bytes.ReplaceAll(out.Bytes(), []byte(st.Record.ID), []byte("SESSIONID"))
	got = bytes.ReplaceAll(got, []byte(st.Record.Created.Format(time.RFC3339)), []byte("CREATED"))
	golden.Assert(t, "dry-run", got)
}

// The copy's name in the dry run's line for a joined intercept comes from
// the record's annotation in the cluster: a terminal escape or a newline
// in it is shown escaped, not sent to the terminal.
func TestDryRunEscapesTheRecordedCopy(t *testing.T) {
	st := &session.Started{Service: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}},
		Record: &session.Record{Copy: "web-intercept-x\x1b]0;owned\x07\nkubectl delete ns prod"}}
	var out bytes.Buffer
	if err := printDryRun(&out, st, route.Route{}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("the dry run prints the recorded copy raw:\n%q", out.String())
	}
}
