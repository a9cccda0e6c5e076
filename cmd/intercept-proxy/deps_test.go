package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The sidecar runs next to every replica of a teammate's service, so what
// it links is memory each of those pods pays: the Kubernetes client, the
// ngrok agent and protobuf belong to the developer's end only (the sidecar
// idles under 8 MiB without them, at about 19 MiB with them).
func TestSidecarLinksNoClusterClientOrNgrok(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"k8s.io/", "golang.ngrok.com/", "google.golang.org/protobuf", "google.golang.org/grpc"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the sidecar links %s", dep)
			}
		}
	}
}

// The sidecar links its own packages and the wire it shares with the CLI,
// nothing of the CLI's: pkg/sidecar, pkg/wire and the two packages both
// binaries use (pkg/cores, pkg/version). A CLI package that creeps in
// brings its dependencies and its assumptions (a kubeconfig, a terminal).
func TestSidecarLinksNothingOfTheCLI(t *testing.T) {
	const mod = "github.com/kubectl-intercept/kubectl-intercept/"
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{"pkg/sidecar/", "pkg/wire/", "pkg/wire", "pkg/cores", "pkg/version", "cmd/intercept-proxy"}
	ours := 0
	for _, dep := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(dep, mod)
		if !ok {
			continue
		}
		ours++
		if !slices.ContainsFunc(allowed, func(a string) bool {
			return rel == a || strings.HasSuffix(a, "/") && strings.HasPrefix(rel, a)
		}) {
			t.Errorf("the sidecar links %s, a package of the CLI's: move what both need under pkg/wire", rel)
		}
	}
	if ours < 3 {
		t.Fatalf("found %d of the module's packages among the sidecar's dependencies: the test no longer sees them", ours)
	}
}
