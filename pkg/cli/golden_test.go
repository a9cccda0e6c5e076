package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// What the commands print for a person is compared with testdata/*.golden;
// after an intended change, `go test ./pkg/cli -update` rewrites them and
// the diff shows what changed.
var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/cli -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test ./pkg/cli -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

var goldenNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func goldenIntercepts() []session.Intercept {
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop"}
	bob := route.Route{Cookie: "dev", Value: "bob", Owner: "bob@laptop"}
	return []session.Intercept{
		{Namespace: "shop", Service: "cart", Port: "http", Workload: "cart", Copy: "cart-intercept-b4k9x2", Ready: "2/2",
			Routes: []route.Route{alice, bob}, Created: goldenNow.Add(-90 * time.Minute), Status: session.StateActive},
		{Namespace: "shop", Service: "search", Port: "8080", Workload: "search", Copy: "search-intercept-7hq2zz", Ready: "1/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-3 * time.Hour), Status: session.StateIdle},
		{Namespace: "team", Service: "api", Port: "grpc", Workload: "api", Kind: "StatefulSet", Copy: "api-intercept-x2x2x2", Ready: "0/1",
			Routes: []route.Route{}, Created: goldenNow.Add(-40 * time.Second), Status: session.StateResidue,
			Problem: "a copy without a switched Service"},
	}
}

func TestListGolden(t *testing.T) {
	for _, tc := range []struct {
		name          string
		allNamespaces bool
		wide          bool
	}{{"list", false, false}, {"list-wide-all-namespaces", true, true}} {
		var out, errOut bytes.Buffer
		if err := writeList(&out, &errOut, goldenIntercepts(), tc.allNamespaces, tc.wide, goldenNow); err != nil {
			t.Fatal(err)
		}
		out.WriteString("--- stderr\n")
		out.Write(errOut.Bytes())
		golden(t, tc.name, out.Bytes())
	}
}

func TestStatusGolden(t *testing.T) {
	in := goldenIntercepts()
	active := &session.Detail{Intercept: in[0], URL: "http://cart.shop:80/", Pods: []session.PodState{
		{Name: "cart-intercept-b4k9x2-5d8f-abcde", Node: "node-1", Ready: true, Routes: in[0].Routes},
		{Name: "cart-intercept-b4k9x2-5d8f-fghij", Node: "node-2", Ready: true, Routes: in[0].Routes[:1]},
		{Name: "cart-intercept-b4k9x2-5d8f-klmno", Node: "node-2", Ready: false, Routes: []route.Route{}, Problem: "sidecar did not answer: connection refused"},
	}}
	residue := &session.Detail{Intercept: in[2], Pods: []session.PodState{}}
	for name, d := range map[string]*session.Detail{"status-active": active, "status-residue": residue} {
		var out bytes.Buffer
		if err := writeStatus(&out, d, goldenNow); err != nil {
			t.Fatal(err)
		}
		golden(t, name, out.Bytes())
	}
}

func TestDoctorGolden(t *testing.T) {
	m := tunnel.Marker{Nonce: "3f9a1c0b5e7d2a46", Header: "X-C6O-INTERCEPT", Cookie: "x-intercept", Baggage: "x-intercept"}
	r := doctorReport{Service: "cart", Entry: "svc/frontend:8080/checkout", Sent: "http://10.96.0.12:8080/checkout", From: "cart-intercept-1-abcde",
		Marker: m, Expect: []tunnel.Carrier{tunnel.CarrierHeader}, Status: 200, Waited: 5 * time.Second,
		Hits: []tunnel.Hit{
			{Carrier: tunnel.CarrierBaggage, Name: "x-intercept", Method: "GET", Path: "/api/cart", Pod: "cart-intercept-1-abcde", Time: goldenNow},
			{Carrier: tunnel.CarrierOther, Name: "X-Dev", Method: "GET", Path: "/api/cart", Pod: "cart-intercept-1-abcde", Time: goldenNow},
		}}
	var out bytes.Buffer
	renderDoctor(&out, r)
	golden(t, "doctor", out.Bytes())
}

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
	if err := printDryRun(&out, st); err != nil {
		t.Fatal(err)
	}
	got := bytes.ReplaceAll(out.Bytes(), []byte(st.Record.ID), []byte("SESSIONID"))
	got = bytes.ReplaceAll(got, []byte(st.Record.Created.Format(time.RFC3339)), []byte("CREATED"))
	golden(t, "dry-run", got)
}
