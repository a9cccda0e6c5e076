//go:build e2e

package e2e

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Bad input and Services that cannot be intercepted are refused with a
// message that says why, and the namespace is left exactly as it was.
func TestRefusalsLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "tcp", Port: 9090, TargetPort: intstr.FromString("tcp"), Protocol: corev1.ProtocolTCP})
	}})
	mk := func(name string, mutate func(*corev1.Service)) {
		svc := &corev1.Service{}
		svc.Name, svc.Namespace = name, ns
		svc.Spec.Ports = []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}
		mutate(svc)
		if _, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("noselector", func(*corev1.Service) {})
	mk("external", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName, s.Spec.Ports = corev1.ServiceTypeExternalName, "example.com", nil
	})
	mk("nopods", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "nothing"} })
	before := takeSnapshot(t, ns, "demo")

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown service", []string{"svc/nope", "-l", "3000"}, `"nope" not found`},
		{"not a service", []string{"deployment/demo", "-l", "3000"}, "kubectl intercept works on Services"},
		{"no selector", []string{"svc/noselector", "-l", "3000"}, "has no selector"},
		{"external name", []string{"svc/external", "-l", "3000"}, "ExternalName"},
		{"no pods", []string{"svc/nopods", "-l", "3000"}, "selects no running pods"},
		{"two ports without -r", []string{"svc/demo", "-l", "3000"}, "say which one to intercept with -r"},
		{"unknown -r", []string{"svc/demo", "-l", "3000", "-r", "grpc"}, `has no port "grpc"`},
		{"header on a port that speaks tcp", []string{"svc/demo", "-l", "3000", "-r", "tcp"}, "there are no headers to route on; intercept every connection instead with -a"},
		{"malformed -x", []string{"svc/demo", "-l", "3000", "-x", "x-dev"}, "is not name:value"},
		{"no -l", []string{"svc/demo", "-r", "http"}, "-l LOCAL_PORT"},
		{"missing namespace", []string{"svc/demo", "-l", "3000", "-n", "no-such-namespace"}, "not found"},
		{"malformed -p", []string{"svc/demo", "-p", "http:3000"}, "LOCAL must be a port number"},
		{"-p a port twice", []string{"svc/demo", "-p", "3000:http", "-p", "3001:80"}, "port http is given twice"},
		{"-p and -r", []string{"svc/demo", "-p", "3000:http", "-r", "tcp"}, "not both"},
		{"-p to a port the Service lacks", []string{"svc/demo", "-p", "3000:http", "-p", "3001:grpc"}, `has no port "grpc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", ns}, tc.args...)
			out, err := runPlugin(t, args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want a refusal containing %q, got err %v:\n%s", tc.want, err, out)
			}
		})
	}
	if after := takeSnapshot(t, ns, "demo"); !reflect.DeepEqual(before, after) {
		t.Fatalf("a refused intercept changed the namespace:\nbefore %+v\nafter  %+v", before, after)
	}
}

// A copy that can never become ready (its sidecar image does not exist)
// fails within --timeout with the cluster's reason, and leaves nothing.
func TestUnpullableImageFailsFastAndCleansUp(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	start := time.Now()
	out, err := runPlugin(t, "svc/demo", "-n", ns, "-l", "3000", "--proxy-image", "localhost/kubectl-intercept/does-not-exist:0.0.1", "--timeout", "60s")
	if err == nil || !strings.Contains(out, "ErrImagePull") && !strings.Contains(out, "ImagePullBackOff") {
		t.Fatalf("want a failure naming the image pull, got err %v:\n%s", err, out)
	}
	t.Logf("failed after %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	assertRestored(t, ns, "demo", before)
}

// The original's required anti-affinity against its own pods would repel
// the copy from the only node; the copy's terms are scoped to itself.
func TestSelfAntiAffinityCopySchedules(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 1, deploymentMutate: func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey:   "kubernetes.io/hostname",
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			}},
		}}
	}})
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--timeout", "60s")
	p.waitOutput(t, "Intercepting service", 90*time.Second)
	// The header through the ClusterIP, from the client pod.
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q", got)
	}
}
