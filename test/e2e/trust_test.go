//go:build e2e

package e2e

import (
	"strconv"
	"strings"
	"testing"
)

// A second developer who learns everything `list -o json` and `status -o
// json` show (no owner key is among it) cannot take, replace or remove the
// first developer's route, with the same header or with --all, and the
// first keeps it.
func TestRouteBelongsToItsOpener(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	alice, bob := newMachine(t), newMachine(t)

	alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "-d")
	for _, args := range [][]string{{"list", "-n", ns, "-o", "json"}, {"status", "svc/demo", "-n", ns, "-o", "json"}} {
		out := bob.run(t, true, args...)
		if strings.Contains(out, `"client"`) || strings.Contains(out, `"secret"`) {
			t.Fatalf("%v shows an owner key or secret:\n%s", args, out)
		}
	}
	for _, args := range [][]string{
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "X-DEV:alice", "-w", "--timeout", "30s"},
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--all", "-w", "--timeout", "30s"},
	} {
		if out := bob.run(t, false, args...); !strings.Contains(out, "alice") {
			t.Fatalf("bob's %v was refused without naming alice's route:\n%s", args, out)
		}
	}
	if out := bob.run(t, true, "close", "svc/demo", "-n", ns); !strings.Contains(out, "by others are live") {
		t.Fatalf("bob's close svc/demo:\n%s", out)
	}
	status := alice.run(t, true, "status", "svc/demo", "-n", ns)
	if !strings.Contains(status, "x-dev:alice by ") && !strings.Contains(status, "X-Dev:alice by ") {
		t.Fatalf("alice's route is gone after bob's attempts:\n%s", status)
	}
	alice.run(t, true, "close")
	assertRestored(t, ns, "demo", before)
}
