package workload

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func preflightInputs() (*corev1.Service, *appsv1.Deployment) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 3},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2},
	}
	return svc, d
}

// What cannot work is refused, naming the reason; what works at a cost
// is a warning.
func TestPreflight(t *testing.T) {
	rwo := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}
	rwx := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}}}
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.Service, *appsv1.Deployment)
		pvcs   map[string]*corev1.PersistentVolumeClaim
		refuse string
		warn   string
		all    bool // -a
	}{
		{name: "plain", mutate: func(*corev1.Service, *appsv1.Deployment) {}},
		{name: "udp", refuse: "speaks UDP", mutate: func(s *corev1.Service, _ *appsv1.Deployment) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }},
		{name: "tls by appProtocol", refuse: "TLS (its appProtocol kubernetes.io/wss says so)", mutate: func(s *corev1.Service, _ *appsv1.Deployment) {
			s.Spec.Ports[0].AppProtocol = ptr.To("kubernetes.io/wss")
		}},
		{name: "tls by name", refuse: "-a", mutate: func(s *corev1.Service, _ *appsv1.Deployment) { s.Spec.Ports[0].Name = "https" }},
		{name: "database by name", refuse: "no headers to route on", mutate: func(s *corev1.Service, _ *appsv1.Deployment) { s.Spec.Ports[0].Name = "mysql-primary" }},
		{name: "database with -a", all: true, mutate: func(s *corev1.Service, _ *appsv1.Deployment) { s.Spec.Ports[0].AppProtocol = ptr.To("mysql") }},
		{name: "grpc", mutate: func(s *corev1.Service, _ *appsv1.Deployment) { s.Spec.Ports[0].Name = "grpc" }},
		{name: "custom appProtocol", mutate: func(s *corev1.Service, _ *appsv1.Deployment) {
			s.Spec.Ports[0].AppProtocol = ptr.To("example.com/orders")
		}},
		{name: "hostNetwork", refuse: "hostNetwork", mutate: func(_ *corev1.Service, d *appsv1.Deployment) { d.Spec.Template.Spec.HostNetwork = true }},
		{name: "hostPort", refuse: "hostPort 80", mutate: func(_ *corev1.Service, d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Ports[0].HostPort = 80
		}},
		{name: "rwo claim", refuse: "ReadWriteOnce", pvcs: map[string]*corev1.PersistentVolumeClaim{"data": rwo}, mutate: withClaim},
		{name: "rwx claim", pvcs: map[string]*corev1.PersistentVolumeClaim{"data": rwx}, mutate: withClaim},
		{name: "rollout", refuse: "rolling out", mutate: func(_ *corev1.Service, d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1 }},
		{name: "init containers", warn: "init container", mutate: func(_ *corev1.Service, d *appsv1.Deployment) {
			d.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "migrate"}}
		}},
		{name: "singleton", warn: "singleton", mutate: func(_ *corev1.Service, d *appsv1.Deployment) {
			d.Spec.Replicas = ptr.To(int32(1))
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 1, UpdatedReplicas: 1}
			d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
		}},
		{name: "multi-port", warn: "all of them move", mutate: func(s *corev1.Service, _ *appsv1.Deployment) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "grpc", Port: 9000})
		}},
		{name: "argo", warn: "Argo CD", mutate: func(s *corev1.Service, _ *appsv1.Deployment) {
			s.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop:/Service:default/web"}
		}},
		{name: "flux and helm", warn: "Flux and Helm", mutate: func(s *corev1.Service, _ *appsv1.Deployment) {
			s.Labels = map[string]string{"kustomize.toolkit.fluxcd.io/name": "shop", "app.kubernetes.io/managed-by": "Helm"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, d := preflightInputs()
			tc.mutate(svc, d)
			warnings, err := Preflight(svc, []*corev1.ServicePort{&svc.Spec.Ports[0]}, FromDeployment(d), tc.pvcs, tc.all)
			if tc.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("want refusal with %q, got %v", tc.refuse, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			joined := strings.Join(warnings, "\n")
			if (tc.warn == "") != (len(warnings) == 0) || !strings.Contains(joined, tc.warn) {
				t.Fatalf("want warning %q, got %q", tc.warn, joined)
			}
		})
	}
}

func withClaim(_ *corev1.Service, d *appsv1.Deployment) {
	d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
}

func TestCheckService(t *testing.T) {
	svc, _ := preflightInputs()
	if err := CheckService(svc); err != nil {
		t.Fatal(err)
	}
	headless := svc.DeepCopy()
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	if err := CheckService(headless); err == nil || !strings.Contains(err.Error(), "headless") {
		t.Fatalf("headless: %v", err)
	}
}

// A port's appProtocol, or else its name, says what it speaks.
func TestPortSpeaks(t *testing.T) {
	for _, tc := range []struct {
		name, appProtocol string
		want              Speech
	}{
		{"http", "", SpeaksHTTP},
		{"", "", SpeaksHTTP},
		{"web", "", SpeaksHTTP},
		{"grpc", "", SpeaksH2C},
		{"grpc-web", "", SpeaksHTTP},
		{"http2-api", "", SpeaksH2C},
		{"GRPC", "", SpeaksH2C},
		{"tcp-line", "", SpeaksOther},
		{"https", "", SpeaksTLS},
		{"grpc", "http", SpeaksHTTP}, // appProtocol wins
		{"web", "kubernetes.io/h2c", SpeaksH2C},
		{"web", "kubernetes.io/ws", SpeaksHTTP},
		{"web", "example.com/custom", SpeaksHTTP},
		{"web", "redis", SpeaksOther},
	} {
		p := &corev1.ServicePort{Name: tc.name}
		if tc.appProtocol != "" {
			p.AppProtocol = ptr.To(tc.appProtocol)
		}
		if got, from := PortSpeaks(p); got != tc.want {
			t.Errorf("name %q appProtocol %q: %v (from %s), want %v", tc.name, tc.appProtocol, got, from, tc.want)
		}
	}
}
