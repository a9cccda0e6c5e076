package rbac

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// The sidecar the policy pins is the one pkg/cluster/workload's copy transform
// writes: every golden copy's sidecar takes arguments of the policy's
// shapes, in its order, and the environment, the mount, the volume and the
// user the policy names. (The e2e test TestAdmissionPolicyConfinesTheRole
// has the API server admit the transform's copy.)
func TestPolicyPinsTheTransformsSidecar(t *testing.T) {
	goldens, err := filepath.Glob("../workload/testdata/copy-*-out.yaml")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("the copy transform's golden files: %v", err)
	}
	first := []*regexp.Regexp{regexp.MustCompile("^" + reListen + "$"), regexp.MustCompile("^" + reUp + "$"),
		regexp.MustCompile("^" + reControl + "$"), regexp.MustCompile("^" + rePeer + "$")}
	extra := regexp.MustCompile("^(" + reExtra + ")$")
	for _, path := range goldens {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var golden struct {
			Copy appsv1.Deployment `json:"copy"`
		}
		if err := yaml.Unmarshal(raw, &golden); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		spec := golden.Copy.Spec.Template.Spec
		var sc *corev1.Container
		for i := range spec.Containers {
			if spec.Containers[i].Name == workload.SidecarName {
				sc = &spec.Containers[i]
			}
		}
		if sc == nil {
			t.Fatalf("%s: no sidecar", path)
		}
		if len(sc.Args) < len(first) {
			t.Fatalf("%s: sidecar args %q", path, sc.Args)
		}
		for i, a := range sc.Args {
			if i < len(first) && !first[i].MatchString(a) || i >= len(first) && !extra.MatchString(a) {
				t.Errorf("%s: the policy refuses the sidecar's argument %d %q", path, i, a)
			}
		}
		var env []string
		for _, e := range sc.Env {
			env = append(env, e.Name)
		}
		if !slices.Equal(env, []string{"POD_NAME", "MEMORY_LIMIT"}) || sc.EnvFrom != nil {
			t.Errorf("%s: the sidecar's environment %q is not the policy's", path, env)
		}
		if len(sc.VolumeMounts) != 1 || sc.VolumeMounts[0].Name != noTokenVolume || sc.VolumeMounts[0].MountPath != tokenPath ||
			!sc.VolumeMounts[0].ReadOnly || sc.VolumeMounts[0].SubPath != "" {
			t.Errorf("%s: the sidecar's mounts %+v are not the policy's", path, sc.VolumeMounts)
		}
		if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == noTokenVolume && v.EmptyDir != nil }) {
			t.Errorf("%s: no empty directory %s", path, noTokenVolume)
		}
		s := sc.SecurityContext
		if s == nil || s.RunAsUser == nil || *s.RunAsUser != sidecarUser || s.RunAsGroup == nil || *s.RunAsGroup != sidecarUser {
			t.Errorf("%s: the sidecar's user is not %d: %+v", path, sidecarUser, s)
		}
		if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
			t.Errorf("%s: a copy that shares its process namespace, which the policy refuses", path)
		}
	}
}
