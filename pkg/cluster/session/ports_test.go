package session

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

func twoPortService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "shop"},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "grpc", Port: 9000, TargetPort: intstr.FromInt32(9000)},
				{Name: "metrics", Port: 9100, TargetPort: intstr.FromInt32(9100)},
			},
		},
	}
}

func twoPortRecord() *Record {
	r := &Record{Version: 1, ID: "abc123", Service: "shop", Workload: "shop", Copy: "shop-intercept-abc123"}
	r.setPorts([]PortEntry{
		{Port: "http", Plan: workload.PortPlan{Port: "http", AppPort: 8080, SidecarPort: 18080, ControlPort: 18081, TargetPortName: "http"}},
		{Port: "grpc", Plan: workload.PortPlan{Port: "grpc", AppPort: 9000, SidecarPort: 18082, ControlPort: 18083}},
	})
	return r
}

// Two ports switch in one update, each to its own listener, and restore
// exactly; the port not intercepted is left alone.
func TestSwitchRestoreTwoPorts(t *testing.T) {
	orig := twoPortService()
	rec := twoPortRecord()
	sw, err := Switch(orig, rec)
	if err != nil {
		t.Fatal(err)
	}
	got := []intstr.IntOrString{sw.Spec.Ports[0].TargetPort, sw.Spec.Ports[1].TargetPort, sw.Spec.Ports[2].TargetPort}
	want := []intstr.IntOrString{intstr.FromString("http"), intstr.FromInt32(18082), intstr.FromInt32(9100)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targetPorts after the switch: %v, want %v", got, want)
	}
	decoded, err := DecodeRecord(sw.Annotations[AnnotationRecord])
	if err != nil {
		t.Fatal(err)
	}
	if keys := decoded.PortKeys(); !reflect.DeepEqual(keys, []string{"http", "grpc"}) {
		t.Fatalf("the record's ports: %v", keys)
	}
	back, kept := Restore(sw, decoded)
	if len(kept) != 0 || !reflect.DeepEqual(back, orig) {
		t.Fatalf("restore is not exact (kept %v):\n got %+v\nwant %+v", kept, back, orig)
	}
}

func TestSelectPorts(t *testing.T) {
	svc := twoPortService()
	ports, err := selectPorts(svc, []string{"http", "9000"})
	if err != nil || len(ports) != 2 || ports[1].Name != "grpc" {
		t.Fatalf("got %v, %v", ports, err)
	}
	if _, err := selectPorts(svc, []string{"http", "80"}); err == nil || !strings.Contains(err.Error(), "port http is given twice") {
		t.Errorf("the same port by name and number: %v", err)
	}
	if _, err := selectPorts(svc, nil); err == nil || !strings.Contains(err.Error(), "say which one") {
		t.Errorf("no port on a three-port Service: %v", err)
	}
}

// A developer joins a session of several ports on some of them; a port the
// copy has no listener for is refused, and so is no port at all.
func TestJoiningPorts(t *testing.T) {
	svc, rec := twoPortService(), twoPortRecord()
	if err := joinablePorts(svc, rec, []string{"9000"}); err != nil {
		t.Errorf("joining port 9000 (grpc): %v", err)
	}
	if err := joinablePorts(svc, rec, []string{"metrics"}); err == nil || !strings.Contains(err.Error(), "no listener for port metrics") {
		t.Errorf("joining port metrics: %v", err)
	}
	if err := joinablePorts(svc, rec, nil); err == nil || !strings.Contains(err.Error(), "say which") {
		t.Errorf("joining a two-port session without a port: %v", err)
	}
	if _, err := rec.EntryFor(svc, ""); err == nil || !strings.Contains(err.Error(), "say which") {
		t.Errorf("no port named on a two-port session: %v", err)
	}
	if e, err := rec.EntryFor(svc, "9000"); err != nil || e.Plan.ControlPort != 18083 {
		t.Errorf("port 9000: %+v, %v", e, err)
	}
}

// A record naming a port twice is refused.
func TestRecordRefusesAPortTwice(t *testing.T) {
	rec := twoPortRecord()
	rec.Selector = map[string]string{"app": "shop"}
	rec.More[0].Port = "http"
	if _, err := DecodeRecord(rec.Encode()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("decoded a record with port http twice: %v", err)
	}
}
