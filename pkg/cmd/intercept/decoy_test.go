package intercept

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// --take-over with --decoy is refused with the reason, before anything
// happens; either alone, or --decoy=false with --take-over, is fine.
func TestValidateDecoyAndTakeOver(t *testing.T) {
	for _, tc := range []struct {
		name     string
		decoy    *bool
		takeOver bool
		want     string
	}{
		{"decoy and take-over", ptr.To(true), true, "--take-over and --decoy contradict each other"},
		{"decoy", ptr.To(true), false, ""},
		{"take-over", nil, true, ""},
		{"no decoy and take-over", ptr.To(false), true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(func(o *Options) { o.LocalPort = 3000; o.Timeout = 1; o.Decoy = tc.decoy; o.TakeOver = tc.takeOver })
			err := o.Validate()
			if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// The flags decide the mode a new session is started in: a take-over
// needs a copy; without either flag, the workload's kind decides.
func TestModeFromFlags(t *testing.T) {
	for _, tc := range []struct {
		decoy    *bool
		takeOver bool
		want     session.Mode
	}{
		{nil, false, session.ModeAuto},
		{ptr.To(true), false, session.ModeDecoy},
		{ptr.To(false), false, session.ModeCopy},
		{nil, true, session.ModeCopy},
	} {
		r := &runner{}
		r.Decoy, r.TakeOver = tc.decoy, tc.takeOver
		if got := r.mode(); got != tc.want {
			t.Errorf("--decoy %v --take-over %v: mode %q, want %q", tc.decoy, tc.takeOver, got, tc.want)
		}
	}
}

// --dry-run of a StatefulSet's Service prints the decoy, the proxy
// Deployment and the Service as they would be applied.
func TestDryRunDecoyGolden(t *testing.T) {
	labels := map[string]string{"app": "ledger"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "ledger"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.40", Selector: labels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "ledger", UID: "s-1"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "ledger", Image: "ledger:3", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}}}}},
		Status: appsv1.StatefulSetStatus{ReadyReplicas: 2, Replicas: 2, UpdatedReplicas: 2, CurrentReplicas: 2}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "ledger-0", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "ledger", UID: "s-1", Controller: ptr.To(true)}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	cs := fake.NewClientset(svc, sts, pod)
	st, err := session.Start(context.Background(), cs, session.StartOptions{Namespace: "bank", Service: "ledger",
		ProxyImage: "ghcr.io/kubectl-intercept/intercept-proxy:0.1.0", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printDryRun(&out, st, route.Route{}); err != nil {
		t.Fatal(err)
	}
	got := bytes.ReplaceAll(out.Bytes(), []byte(st.Record.ID), []byte("SESSIONID"))
	got = bytes.ReplaceAll(got, []byte(st.Record.Created.Format(time.RFC3339)), []byte("CREATED"))
	golden.Assert(t, "dry-run-decoy", got)
}
