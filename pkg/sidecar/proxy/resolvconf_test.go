package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The sidecar reads the pod's resolv.conf as it is, and never more of it
// than a CLI takes, however large the file.
func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "resolv.conf")
	const conf = "nameserver 10.96.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
	if err := os.WriteFile(small, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readResolvConfAt(small); err != nil || string(got) != conf {
		t.Fatalf("readResolvConfAt = %q, %v; want the file", got, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("search x\n", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readResolvConfAt(big); err != nil || len(got) > tunnel.MaxResolvConf+1 {
		t.Fatalf("a 9 MiB file: %d bytes, %v; want at most %d", len(got), err, tunnel.MaxResolvConf+1)
	}
	if _, err := readResolvConfAt(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file read without an error")
	}
}
