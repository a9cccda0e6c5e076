package workload

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenCase is a testdata/<name>-in.yaml: the original objects.
type goldenCase struct {
	Service corev1.Service `json:"service"`
	// One of the workload kinds.
	Deployment  *appsv1.Deployment  `json:"deployment,omitempty"`
	StatefulSet *appsv1.StatefulSet `json:"statefulSet,omitempty"`
	ReplicaSet  *appsv1.ReplicaSet  `json:"replicaSet,omitempty"`
	Pod         *corev1.Pod         `json:"pod,omitempty"`
	Rollout     map[string]any      `json:"rollout,omitempty"`
	// Port is the -r flag; Ports the REMOTE side of several -p flags.
	Port  string   `json:"port,omitempty"`
	Ports []string `json:"ports,omitempty"`
}

// source is the case's workload as a Source, and a copy of its input to
// check that Copy leaves it alone.
func (c *goldenCase) source(t *testing.T) (*Source, any) {
	t.Helper()
	switch {
	case c.Deployment != nil:
		return FromDeployment(c.Deployment), c.Deployment.DeepCopy()
	case c.StatefulSet != nil:
		return FromStatefulSet(c.StatefulSet), c.StatefulSet.DeepCopy()
	case c.ReplicaSet != nil:
		return FromReplicaSet(c.ReplicaSet), c.ReplicaSet.DeepCopy()
	case c.Pod != nil:
		return FromPod(c.Pod), c.Pod.DeepCopy()
	case c.Rollout != nil:
		u := &unstructured.Unstructured{Object: c.Rollout}
		src, err := FromRollout(u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return src, u.DeepCopy()
	}
	t.Fatal("the case names no workload")
	return nil, nil
}

func (c *goldenCase) input() any {
	switch {
	case c.Deployment != nil:
		return c.Deployment
	case c.StatefulSet != nil:
		return c.StatefulSet
	case c.ReplicaSet != nil:
		return c.ReplicaSet
	case c.Pod != nil:
		return c.Pod
	}
	return &unstructured.Unstructured{Object: c.Rollout}
}

type goldenOut struct {
	Plans []PortPlan         `json:"plans"`
	Copy  *appsv1.Deployment `json:"copy"`
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
			cp, plans, err := Copy(CopyInput{
				Source: src, Service: &c.Service, Ports: ports, Replicas: 2,
				Name: src.Name + "-intercept-abc123", SessionLabel: "intercept.kubectl.dev/session", SessionID: "abc123",
				Labels:     map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept", "intercept.kubectl.dev/session": "abc123"},
				ProxyImage: "example.com/intercept-proxy:v1",
			})
			if err != nil {
				t.Fatal(err)
			}
			if !equalYAML(t, orig, c.input()) {
				t.Fatal("Copy modified its input")
			}
			got, err := yaml.Marshal(goldenOut{Plans: plans, Copy: cp})
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
