package completion

import (
	"context"
	"slices"
	"testing"

	_ "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden" // -update, which go test ./pkg/cmd/... passes to every package

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
)

func svc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func nsObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// completionCluster is a fake cluster with Services in two namespaces, web
// in shop under an intercept.
func completionCluster() *fake.Clientset {
	web := svc("shop", "web", corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
		corev1.ServicePort{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP})
	web.Annotations = map[string]string{session.AnnotationRecord: "{}"}
	return fake.NewClientset(web,
		svc("shop", "worker", corev1.ServicePort{Port: 8080}),
		svc("shop", "db", corev1.ServicePort{Name: "pg", Port: 5432}),
		svc("team", "api", corev1.ServicePort{Port: 80}),
		nsObj("shop"), nsObj("team"), nsObj("kube-system"))
}

func TestCompleteServices(t *testing.T) {
	cs := completionCluster()
	for _, tc := range []struct {
		typed           string
		interceptedOnly bool
		want            []string
	}{
		{"", false, []string{"db", "web", "worker"}},
		{"w", false, []string{"web", "worker"}},
		{"wo", false, []string{"worker"}},
		{"svc/", false, []string{"svc/db", "svc/web", "svc/worker"}},
		{"svc/w", false, []string{"svc/web", "svc/worker"}},
		{"service/d", false, []string{"service/db"}},
		{"services/", false, []string{"services/db", "services/web", "services/worker"}},
		{"deployment/", false, nil},
		{"x", false, nil},
		{"", true, []string{"web"}},
		{"svc/", true, []string{"svc/web"}},
	} {
		got := completeServices(context.Background(), cs, "shop", tc.typed, tc.interceptedOnly)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q (intercepted only %v): got %q, want %q", tc.typed, tc.interceptedOnly, got, tc.want)
		}
	}
}

func TestCompletePorts(t *testing.T) {
	cs := completionCluster()
	for _, tc := range []struct {
		service, typed string
		want           []string
	}{
		{"web", "", []string{"http\tport 80/TCP", "80\thttp", "grpc\tport 9090/TCP", "9090\tgrpc"}},
		{"web", "g", []string{"grpc\tport 9090/TCP"}},
		{"web", "9", []string{"9090\tgrpc"}},
		{"worker", "", []string{"8080\tTCP"}},
		{"missing", "", nil},
	} {
		if got := completePorts(context.Background(), cs, "shop", tc.service, tc.typed); !slices.Equal(got, tc.want) {
			t.Errorf("%s %q: got %q, want %q", tc.service, tc.typed, got, tc.want)
		}
	}
}

func TestCompleteNamespaces(t *testing.T) {
	cs := completionCluster()
	got := completeNamespaces(context.Background(), cs, "")
	slices.Sort(got)
	if want := []string{"kube-system", "shop", "team"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := completeNamespaces(context.Background(), cs, "s"); !slices.Equal(got, []string{"shop"}) {
		t.Errorf("%q: got %q", "s", got)
	}
}
