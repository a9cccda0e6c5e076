package workload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

type decoyOut struct {
	Covers bool               `json:"coversEveryPort"`
	Plans  []PortPlan         `json:"plans"`
	Decoy  *corev1.Service    `json:"decoy"`
	Proxy  *appsv1.Deployment `json:"proxy"`
}

// The decoy transform is golden-tested next to the copy's: a reviewer reads
// the diff of testdata/decoy-*-out.yaml.
func TestDecoyGolden(t *testing.T) {
	ins, _ := filepath.Glob("testdata/decoy-*-in.yaml")
	if len(ins) == 0 {
		t.Fatal("no golden cases")
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), "-in.yaml")
		t.Run(name, func(t *testing.T) {
			var c goldenCase
			readYAML(t, in, &c)
			keys := c.Ports
			if len(keys) == 0 {
				keys = []string{c.Port}
			}
			var ports []*corev1.ServicePort
			for _, k := range keys {
				port, err := SelectPort(&c.Service, k)
				if err != nil {
					t.Fatal(err)
				}
				ports = append(ports, port)
			}
			src, orig := c.source(t)
			svcBefore := c.Service.DeepCopy()
			in := DecoyInput{
				Source: src, Service: &c.Service, Ports: ports, Replicas: 2,
				Name: src.Name + "-intercept-abc123", DecoyName: DecoyName(c.Service.Name, "abc123"), DecoyIP: "10.96.7.7",
				SessionLabel: "intercept.kubectl.dev/session", SessionID: "abc123",
				Labels:     map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept", "intercept.kubectl.dev/session": "abc123"},
				ProxyImage: "example.com/intercept-proxy:v1",
			}
			decoy, err := DecoyService(in)
			if err != nil {
				t.Fatal(err)
			}
			proxy, plans, err := ProxyDeployment(in)
			if err != nil {
				t.Fatal(err)
			}
			if !equalYAML(t, orig, c.input()) || !equalYAML(t, svcBefore, &c.Service) {
				t.Fatal("the decoy transform modified its input")
			}
			// The plans are the copy's: a record reads the same in both modes.
			_, copyPlans, err := Copy(CopyInput{Source: src, Service: &c.Service, Ports: ports, Replicas: 2,
				Name: "x", SessionLabel: "intercept.kubectl.dev/session", SessionID: "abc123", ProxyImage: "example.com/intercept-proxy:v1"})
			if err != nil || !equalYAML(t, plans, copyPlans) {
				t.Fatalf("the proxy's port plans differ from the copy's: %v %v (%v)", plans, copyPlans, err)
			}
			got, err := yaml.Marshal(decoyOut{Covers: DecoyCovers(&c.Service, ports), Plans: plans, Decoy: decoy, Proxy: proxy})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+"-out.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("decoy differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

// The proxy's pods never carry a label of the original's selector: the
// decoy selects by it, and would send requests back to the proxy.
func TestProxyPodsAreNotTheDecoysTargets(t *testing.T) {
	ins, _ := filepath.Glob("testdata/decoy-*-in.yaml")
	for _, in := range ins {
		var c goldenCase
		readYAML(t, in, &c)
		src, _ := c.source(t)
		p, _ := SelectPort(&c.Service, c.Port)
		if p == nil {
			p = &c.Service.Spec.Ports[0]
		}
		d, _, err := ProxyDeployment(DecoyInput{Source: src, Service: &c.Service, Ports: []*corev1.ServicePort{p},
			Name: "p", DecoyName: "d", SessionLabel: "s", SessionID: "id", ProxyImage: "i"})
		if err != nil {
			t.Fatal(err)
		}
		for k := range c.Service.Spec.Selector {
			if _, ok := d.Spec.Template.Labels[k]; ok {
				t.Errorf("%s: the proxy's pods carry %s, a key of the decoy's selector", in, k)
			}
		}
	}
}

func TestDecoyNameIsAValidServiceName(t *testing.T) {
	long := strings.Repeat("a", 60)
	for _, svc := range []string{"web", long, strings.Repeat("a-", 30) + "b"} {
		n := DecoyName(svc, "abc123")
		if len(n) > 63 || !strings.HasSuffix(n, "-decoy-abc123") || strings.Contains(n, "--decoy") {
			t.Errorf("DecoyName(%q) = %q", svc, n)
		}
	}
}
