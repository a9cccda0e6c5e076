package workload

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenCase is a testdata/<name>-in.yaml: the original objects.
type goldenCase struct {
	Service    corev1.Service    `json:"service"`
	Deployment appsv1.Deployment `json:"deployment"`
	// Port is the -r flag.
	Port string `json:"port,omitempty"`
}

type goldenOut struct {
	Plan PortPlan           `json:"plan"`
	Copy *appsv1.Deployment `json:"copy"`
}

// The copy transform is golden-tested: a reviewer reads the diff of
// testdata/*-out.yaml, not code.
func TestCopyGolden(t *testing.T) {
	ins, _ := filepath.Glob("testdata/copy-*-in.yaml")
	if len(ins) == 0 {
		t.Fatal("no golden cases")
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), "-in.yaml")
		t.Run(name, func(t *testing.T) {
			var c goldenCase
			readYAML(t, in, &c)
			port, err := SelectPort(&c.Service, c.Port)
			if err != nil {
				t.Fatal(err)
			}
			orig := c.Deployment.DeepCopy()
			cp, plan, err := Copy(CopyInput{
				Original: &c.Deployment, Service: &c.Service, Port: port, Replicas: 2,
				Name: c.Deployment.Name + "-intercept-abc123", SessionLabel: "intercept.kubectl.dev/session", SessionID: "abc123",
				Labels:     map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept", "intercept.kubectl.dev/session": "abc123"},
				ProxyImage: "example.com/intercept-proxy:v1",
			})
			if err != nil {
				t.Fatal(err)
			}
			if !equalYAML(t, orig, &c.Deployment) {
				t.Fatal("Copy modified its input")
			}
			got, err := yaml.Marshal(goldenOut{Plan: plan, Copy: cp})
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
				t.Errorf("copy differs from %s (go test -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func equalYAML(t *testing.T, a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return string(x) == string(y)
}
