package podfiles

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// --mount given a symbolic link to a directory: refused, nothing is
// written to the link's target (the end removed only the link, and the
// secrets stayed in the target).
func TestTreeRefusesASymlinkedRoot(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shared")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mnt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTree(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("NewTree(a link): %v, want a refusal", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) > 0 {
		t.Errorf("the link's target got %v", entries)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target changed mode to %v", fi.Mode().Perm())
	}
}

// A tree a crashed process left is removed by its mark; a directory the
// user has made at the same path since is left alone.
func TestRemoveMarked(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mnt")
	tree, err := NewTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Sync([]File{{Path: "var/run/secrets/token", Data: []byte("t"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if err := RemoveMarked(root, "another-mark"); err == nil {
		t.Error("a tree with another mark was removed")
	}
	if err := RemoveMarked(root, tree.Mark); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the tree stayed: %v", err)
	}
	if err := RemoveMarked(root, tree.Mark); err != nil {
		t.Errorf("a tree already gone: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "mine"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := RemoveMarked(root, tree.Mark); err == nil {
		t.Error("the user's new directory at the same path was taken for the tree")
	}
	if _, err := os.Stat(filepath.Join(root, "mine")); err != nil {
		t.Errorf("the user's directory went: %v", err)
	}
}

// expiringObjects answers token requests with a lifetime of its own, as
// an API server may (capped by --service-account-max-token-expiration, or
// extended to a year).
type expiringObjects struct {
	objects
	life time.Duration
}

func (o *expiringObjects) Token(ctx context.Context, sa string, req *authv1.TokenRequest) (*authv1.TokenRequest, error) {
	out, err := o.objects.Token(ctx, sa, req)
	if err == nil {
		out.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(o.life))
	}
	return out, err
}

// Tokens are renewed from the expiry the API server returned, not the
// lifetime asked for: a token asked for an hour and given ten minutes is
// renewed after eight, not after 48 (38 minutes of an expired token).
func TestRenewalFromReturnedExpiry(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}, Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{{Name: "tok", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3600)}}}}}}}}}
	c := &corev1.Container{Name: "app", VolumeMounts: []corev1.VolumeMount{{Name: "tok", MountPath: "/var/run/secrets/tokens"}}}
	for _, tc := range []struct {
		life, min, max time.Duration
	}{
		{10 * time.Minute, 7*time.Minute + 50*time.Second, 8 * time.Minute},
		{365 * 24 * time.Hour, 23 * time.Hour, 24 * time.Hour},
		{time.Second, 10 * time.Second, 10 * time.Second},
	} {
		files, _, err := Files(context.Background(), Input{Pod: pod, Container: c, Objects: &expiringObjects{life: tc.life}})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Renewal(files, time.Now())
		if !ok || got < tc.min || got > tc.max {
			t.Errorf("a token given %v: renewed after %v (%v), want %v-%v", tc.life, got, ok, tc.min, tc.max)
		}
	}
	if _, ok := Renewal([]File{{Path: "etc/a"}}, time.Now()); ok {
		t.Error("files without a token are renewed")
	}
}
