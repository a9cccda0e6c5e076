package main

import (
	"os/exec"
	"strings"
	"testing"
)

// layer orders the module's packages as docs/architecture.md draws them: a
// package imports only from its own layer or a later one, so the CLI's
// commands sit on top and the wire, which both binaries link, underneath.
// The sidecar has a layer of its own beside the CLI's (its deps test holds
// it to pkg/wire and the basics).
var layers = []string{"cmd/", "pkg/cmd", "pkg/local", "pkg/cluster/", "pkg/wire", "pkg/cores|pkg/version"}

func layerOf(rel string) int {
	for i, l := range layers {
		for _, prefix := range strings.Split(l, "|") {
			if strings.HasPrefix(rel, prefix) {
				return i
			}
		}
	}
	return -1
}

func TestPackagesImportDownwardOnly(t *testing.T) {
	const mod = "github.com/kubectl-intercept/kubectl-intercept/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"pkg/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from, _ := strings.CutPrefix(fields[0], mod)
		if strings.HasPrefix(from, "pkg/sidecar/") || strings.HasPrefix(from, "pkg/demo") {
			continue // the sidecar's own deps test; the demo app links nothing of ours
		}
		lf := layerOf(from)
		if lf < 0 {
			t.Errorf("package %s is in no layer of docs/architecture.md: put it under pkg/cmd, pkg/local, pkg/cluster or pkg/wire", from)
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			to, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			if li := layerOf(to); li < lf {
				t.Errorf("%s imports %s, a layer above it (%s over %s)", from, to, layers[li], layers[lf])
			}
		}
	}
	if seen < 20 {
		t.Fatalf("saw %d packages: the test no longer finds the module's layers", seen)
	}
}
