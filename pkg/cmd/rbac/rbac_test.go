package rbac_test

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/root"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
)

// runRBAC runs `kubectl intercept rbac ARGS` without a cluster.
func runRBAC(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv(cmdutil.EnvProxyImage, "")
	var out, errOut bytes.Buffer
	cmd := root.NewCmdRootFor(factory.NewFor(fake.NewClientset(), nil, ""), genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"rbac"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// What `rbac` prints for a namespace and a group, in YAML and in JSON.
func TestRBACGolden(t *testing.T) {
	for name, args := range map[string][]string{
		"rbac":      {"-n", "shop", "--group", "shop-devs", "--proxy-image", "registry.example.com/intercept-proxy:v0.1.0"},
		"rbac-json": {"-n", "shop", "--group", "shop-devs", "--proxy-image", "registry.example.com/intercept-proxy:v0.1.0", "-o", "json"},
	} {
		out, err := runRBAC(t, args...)
		if err != nil {
			t.Fatalf("rbac %v: %v", args, err)
		}
		golden.Assert(t, name, []byte(out))
	}
}

func TestRBACRefuses(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "g"}, "-n NAMESPACE"},
		{[]string{"-n", "shop", "--group", ""}, "--group"},
		{[]string{"-n", "shop", "-o", "name"}, "yaml or json"},
		{[]string{"-n", "shop", "--proxy-image", "a b"}, "not an image reference"},
	} {
		if _, err := runRBAC(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rbac %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
