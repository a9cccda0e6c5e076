package status

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
)

// sandboxSide is a command run with --sandbox, as its record keeps it.
func sandboxSide() *local.Side {
	return &local.Side{Environment: "12 variables of container cart", Command: "./cart --debug",
		Files: "3 files of container cart's volumes, at their mountPaths in the sandbox (read-only; kept up to date; their copy under /tmp/kubectl-intercept-files-1 is removed at the end)",
		Sandbox: &local.SandboxSide{Hostname: "cart-intercept-b4k9x2-5d8f-abcde",
			DNS:     "nameserver 10.96.0.10, search shop.svc.cluster.local svc.cluster.local cluster.local, options ndots:5 (queries answered by the cluster's DNS, asked from pod cart-intercept-b4k9x2-5d8f-abcde)",
			Network: "every TCP connection leaves from pod cart-intercept-b4k9x2-5d8f-abcde (its NetworkPolicies apply); other UDP is refused",
			Mounts:  []string{"/etc/cart", "/var/run/secrets/kubernetes.io/serviceaccount"}, Local: []string{"localhost:5432", "192.168.1.0/24"},
			Skipped: []string{"the volume at /etc/hostname is not in the sandbox: that file exists on this machine: inside the sandbox the pod's volume would replace it for every program the command runs; to mount the volume over it anyway, --sandbox-cover /etc/hostname"}}}
}

// status says what the sandbox gives the command: its hostname, DNS,
// network, files at their paths and the destinations kept here.
func TestStatusSandboxGolden(t *testing.T) {
	var out bytes.Buffer
	if err := writeLocalSide(&out, sandboxSide()); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "status-sandbox", out.Bytes())
}

// -o json carries the sandbox under status.local.sandbox.
func TestStatusSandboxJSON(t *testing.T) {
	b, err := json.Marshal(cmdutil.NewLocalStatus(true, 4242, sandboxSide()))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Sandbox struct {
			Hostname string   `json:"hostname"`
			Mounts   []string `json:"mounts"`
			Local    []string `json:"local"`
		} `json:"sandbox"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Sandbox.Hostname != "cart-intercept-b4k9x2-5d8f-abcde" || len(got.Sandbox.Mounts) != 2 || len(got.Sandbox.Local) != 2 {
		t.Errorf("status.local as JSON: %s", b)
	}
}
