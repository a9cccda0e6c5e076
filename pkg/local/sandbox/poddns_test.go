package sandbox

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestPodDNS(t *testing.T) {
	five, two := "5", "2"
	dnsIP := netip.MustParseAddr("10.96.0.10")
	for _, tc := range []struct {
		name      string
		spec      corev1.PodSpec
		clusterIP netip.Addr
		want      DNS
		note      bool
	}{
		{name: "ClusterFirst", spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst}, clusterIP: dnsIP,
			want: DNS{Nameserver: dnsIP, Upstream: "10.96.0.10:53", Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst, the DNS Service not readable", spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst},
			want: DNS{Nameserver: placeholderNameserver, Upstream: "kube-dns.kube-system.svc.cluster.local:53", Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst with dnsConfig", clusterIP: dnsIP, spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, DNSConfig: &corev1.PodDNSConfig{
			Searches: []string{"corp.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}},
			want: DNS{Nameserver: dnsIP, Upstream: "10.96.0.10:53", Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "None", clusterIP: dnsIP, spec: corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"10.0.0.53"}, Searches: []string{"corp.example"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &five}}}},
			want: DNS{Nameserver: netip.MustParseAddr("10.0.0.53"), Upstream: "10.0.0.53:53", Search: []string{"corp.example"}, Options: []string{"ndots:5"}}},
		{name: "Default", clusterIP: dnsIP, spec: corev1.PodSpec{DNSPolicy: corev1.DNSDefault},
			want: DNS{Nameserver: dnsIP, Upstream: "10.96.0.10:53"}, note: true},
		{name: "host network", clusterIP: dnsIP, spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, HostNetwork: true},
			want: DNS{Nameserver: dnsIP, Upstream: "10.96.0.10:53"}, note: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "backend-1", Namespace: "shop"}, Spec: tc.spec}
			got, note := PodDNS(pod, tc.clusterIP)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PodDNS = %+v\nwant     %+v", got, tc.want)
			}
			if (note != "") != tc.note {
				t.Errorf("note %q", note)
			}
		})
	}
}

func TestClusterDNS(t *testing.T) {
	client := fake.NewClientset(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10"}})
	if a, err := ClusterDNS(t.Context(), client); err != nil || a != netip.MustParseAddr("10.96.0.10") {
		t.Errorf("ClusterDNS = %v, %v", a, err)
	}
	coredns := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "rke2-coredns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.43.0.10"},
	})
	if a, err := ClusterDNS(t.Context(), coredns); err != nil || a != netip.MustParseAddr("10.43.0.10") {
		t.Errorf("ClusterDNS of a Service labeled k8s-app=kube-dns = %v, %v", a, err)
	}
	port53 := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "kube-system"},
		Spec:       corev1.ServiceSpec{ClusterIP: "10.0.0.53", Ports: []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}}},
	})
	if a, err := ClusterDNS(t.Context(), port53); err != nil || a != netip.MustParseAddr("10.0.0.53") {
		t.Errorf("ClusterDNS of a Service on port 53 = %v, %v", a, err)
	}
	if a, err := ClusterDNS(t.Context(), fake.NewClientset()); err != nil || a.IsValid() {
		t.Errorf("ClusterDNS without the Service = %v, %v; want no address and no error", a, err)
	}
}

func TestVolumeMounts(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/config", "var/run/secrets/kubernetes.io/serviceaccount"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/config"},
		{Name: "token", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount/"},
		{Name: "data", MountPath: "/data"}, // an emptyDir: podfiles wrote nothing
	}}
	got := VolumeMounts(root, c)
	want := []Mount{
		{Source: filepath.Join(root, "etc/config"), Target: "/etc/config"},
		{Source: filepath.Join(root, "var/run/secrets/kubernetes.io/serviceaccount"), Target: "/var/run/secrets/kubernetes.io/serviceaccount"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("VolumeMounts = %v\nwant %v", got, want)
	}
}
