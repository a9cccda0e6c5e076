package podfiles

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
)

type objects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
	tokens  []*authv1.TokenRequest
}

func (o *objects) ConfigMap(_ context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := o.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (o *objects) Secret(_ context.Context, name string) (*corev1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (o *objects) Token(_ context.Context, sa string, req *authv1.TokenRequest) (*authv1.TokenRequest, error) {
	o.tokens = append(o.tokens, req)
	out := req.DeepCopy()
	out.Status.Token = "token-for-" + sa
	return out, nil
}

func testInput() (Input, *objects) {
	o := &objects{
		cms: map[string]*corev1.ConfigMap{"app": {ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Data: map[string]string{"config.yaml": "feature: on\n", "other": "x"}, BinaryData: map[string][]byte{"logo.bin": {0, 1, 2}}}},
		secrets: map[string]*corev1.Secret{"tls": {ObjectMeta: metav1.ObjectMeta{Name: "tls"},
			Data: map[string][]byte{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY")}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "uid-1", Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec: corev1.PodSpec{ServiceAccountName: "web", Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}},
			{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls", DefaultMode: ptr.To(int32(0o400)),
				Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "certs/server.crt", Mode: ptr.To(int32(0o444))}, {Key: "tls.key", Path: "certs/server.key"}}}}},
			{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			}}}},
			{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "vault", ExpirationSeconds: ptr.To(int64(600)), Path: "vault-token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Items: []corev1.KeyToPath{{Key: "other", Path: "other.txt"}}}},
			}}}},
			{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "maybe", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}}},
		}},
	}
	c := &corev1.Container{Name: "web", VolumeMounts: []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/app"},
		{Name: "config", MountPath: "/etc/app.yaml", SubPath: "config.yaml"},
		{Name: "tls", MountPath: "/etc/tls"},
		{Name: "podinfo", MountPath: "/etc/podinfo"},
		{Name: "token", MountPath: "/var/run/secrets/tokens"},
		{Name: "cache", MountPath: "/cache"},
		{Name: "maybe", MountPath: "/etc/maybe"},
		{Name: "config", MountPath: "/etc/by-env", SubPathExpr: "$(WHICH)"},
	}}
	return Input{Pod: pod, Container: c, Env: []podenv.Var{{Name: "WHICH", Value: "other"}}, Objects: o}, o
}

// Every copyable mount's files, at their mountPaths, with items, modes and
// subPaths; what cannot be copied is listed with why.
func TestFiles(t *testing.T) {
	in, o := testInput()
	files, skipped, err := Files(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	modes := map[string]fs.FileMode{}
	for _, f := range files {
		got[f.Path] = string(f.Data)
		modes[f.Path] = f.Mode
	}
	want := map[string]string{
		"etc/app/config.yaml":                "feature: on\n",
		"etc/app/other":                      "x",
		"etc/app/logo.bin":                   "\x00\x01\x02",
		"etc/app.yaml":                       "feature: on\n",
		"etc/tls/certs/server.crt":           "CERT",
		"etc/tls/certs/server.key":           "KEY",
		"etc/podinfo/labels":                 "app=\"web\"\ntier=\"front\"",
		"etc/podinfo/name":                   "web-1",
		"var/run/secrets/tokens/vault-token": "token-for-web",
		"var/run/secrets/tokens/other.txt":   "x",
		"etc/by-env":                         "x",
	}
	for p, v := range want {
		if got[p] != v {
			t.Errorf("%s = %q, want %q", p, got[p], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("files %v", got)
	}
	if modes["etc/tls/certs/server.crt"] != 0o444 || modes["etc/tls/certs/server.key"] != 0o400 || modes["etc/app/other"] != 0o644 {
		t.Errorf("modes %v", modes)
	}
	if len(skipped) != 1 || skipped[0].Mount != "/cache" || !strings.Contains(skipped[0].Reason, "emptyDir") {
		t.Errorf("skipped %+v", skipped)
	}
	if len(o.tokens) != 1 || o.tokens[0].Spec.Audiences[0] != "vault" || *o.tokens[0].Spec.ExpirationSeconds != 600 || o.tokens[0].Spec.BoundObjectRef.Name != "web-1" {
		t.Errorf("token requests %+v", o.tokens)
	}
}

// A required key that is missing is an error naming it.
func TestFilesMissingKey(t *testing.T) {
	in, _ := testInput()
	in.Pod.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "nope", Path: "nope"}}
	if _, _, err := Files(context.Background(), in); err == nil || !strings.Contains(err.Error(), `configmap app has no key "nope"`) {
		t.Errorf("got %v", err)
	}
}

// The tree writes read-only files, replaces what changed, removes what
// went, refuses a path out of the root and a root that holds files, and
// removes itself.
func TestTree(t *testing.T) {
	root := filepath.Join(t.TempDir(), "pod")
	tree, err := NewTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Sync([]File{{Path: "etc/a", Data: []byte("1"), Mode: 0o644}, {Path: "etc/b", Data: []byte("2"), Mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(root, "etc/a")); st.Mode().Perm() != 0o444 {
		t.Errorf("mode %v, want read-only 0444", st.Mode().Perm())
	}
	n, err := tree.Sync([]File{{Path: "etc/a", Data: []byte("changed"), Mode: 0o644}})
	if err != nil || n != 2 {
		t.Fatalf("sync: %d changes, %v", n, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/a")); string(b) != "changed" {
		t.Errorf("etc/a = %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/b")); !os.IsNotExist(err) {
		t.Error("etc/b stayed")
	}
	if _, err := tree.Sync([]File{{Path: "../escape", Data: []byte("x")}}); err == nil {
		t.Error("a path out of the root was written")
	}
	if _, err := NewTree(root); err == nil {
		t.Error("a root with files in it was taken")
	}
	if err := tree.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Error("the root stayed")
	}
}
