package main

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The release pushes one tarball per architecture as a single image: a node
// of either architecture must find its own manifest under the one tag.
func TestPushMultiPlatform(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mkimage")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mkimage: %v\n%s", err, out)
	}
	payload := filepath.Join(dir, "payload")
	if err := os.WriteFile(payload, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	reg := httptest.NewServer(registry.New())
	defer reg.Close()
	tag := strings.TrimPrefix(reg.URL, "http://") + "/kubectl-intercept/intercept-proxy:v1.2.3"

	var tarballs []string
	for _, arch := range []string{"amd64", "arm64"} {
		out := filepath.Join(dir, "proxy_"+arch+".tar")
		cmd := exec.Command(bin, "-o", out, "-t", tag, "-platform", "linux/"+arch, "/intercept-proxy="+payload)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkimage %s: %v\n%s", arch, err, b)
		}
		tarballs = append(tarballs, out)
	}
	digest, err := exec.Command(bin, append([]string{"digest"}, tarballs...)...).Output()
	if err != nil {
		t.Fatalf("mkimage digest: %v", err)
	}
	push := exec.Command(bin, append([]string{"push", tag}, tarballs...)...)
	if b, err := push.CombinedOutput(); err != nil {
		t.Fatalf("mkimage push: %v\n%s", err, b)
	}

	ref, err := name.ParseReference(tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull the pushed index: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	// The digest the release builds the plugin with is the one pushed.
	if pushed, err := idx.Digest(); err != nil || pushed.String() != strings.TrimSpace(string(digest)) {
		t.Errorf("mkimage digest printed %q, the registry holds %s (%v)", digest, pushed, err)
	}
	var got []string
	for _, d := range m.Manifests {
		got = append(got, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatalf("image %s: %v", d.Platform, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != d.Platform.Architecture {
			t.Errorf("index says %s, the image's config says %s", d.Platform, cfg.Architecture)
		}
	}
	if strings.Join(got, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("platforms in the pushed index = %v, want linux/amd64 linux/arm64", got)
	}
}

func TestPushRefusesTwoImagesForOnePlatform(t *testing.T) {
	dir := t.TempDir()
	payload := filepath.Join(dir, "payload")
	if err := os.WriteFile(payload, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mkimage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build mkimage: %v\n%s", err, out)
	}
	var tarballs []string
	for _, n := range []string{"a", "b"} {
		out := filepath.Join(dir, n+".tar")
		if b, err := exec.Command(bin, "-o", out, "-t", "localhost/x:1", "-platform", "linux/amd64", "/x="+payload).CombinedOutput(); err != nil {
			t.Fatalf("mkimage: %v\n%s", err, b)
		}
		tarballs = append(tarballs, out)
	}
	if _, err := multiPlatform(tarballs); err == nil || !strings.Contains(err.Error(), "both linux/amd64") {
		t.Fatalf("multiPlatform = %v, want a refusal naming linux/amd64", err)
	}
}
