package cli

import (
	"bytes"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

func TestResolveServiceName(t *testing.T) {
	ns := "shop"
	flags := genericclioptions.NewConfigFlags(false)
	flags.Namespace = &ns
	for in, want := range map[string]string{"svc/web": "web", "service/web": "web", "web": "web", "services/web": "web"} {
		gotNS, got, err := resolveServiceName(flags, in)
		if err != nil || got != want || gotNS != ns {
			t.Errorf("%q: got %s/%s, %v", in, gotNS, got, err)
		}
	}
	if _, _, err := resolveServiceName(flags, "deployment/web"); err == nil {
		t.Error("deployment/web accepted as a Service")
	}
}

func TestInterceptValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    InterceptOptions
		want string
	}{
		{"no local port", InterceptOptions{Timeout: 1}, "-l LOCAL_PORT"},
		{"port out of range", InterceptOptions{LocalPort: 70000, Timeout: 1}, "-l LOCAL_PORT"},
		{"wait and detach", InterceptOptions{LocalPort: 3000, Wait: true, Detach: true, Timeout: 1}, "contradict"},
		{"ok", InterceptOptions{LocalPort: 3000, Timeout: 1}, ""},
		{"dry run needs no port", InterceptOptions{DryRun: true, Timeout: 1}, ""},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCloseValidate(t *testing.T) {
	if err := (&CloseOptions{}).Validate(nil); err == nil {
		t.Error("close without a Service or --all accepted")
	}
	if err := (&CloseOptions{All: true}).Validate([]string{"svc/x"}); err == nil {
		t.Error("close with both a Service and --all accepted")
	}
}

// The root command carries kubectl's standard flags and our own.
func TestRootFlags(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	for _, f := range []string{"namespace", "context", "kubeconfig", "as", "remote-port", "local-port", "header", "all", "clean", "quiet", "wait", "detach", "dry-run", "proxy-image", "timeout"} {
		if cmd.Flags().Lookup(f) == nil && cmd.PersistentFlags().Lookup(f) == nil {
			t.Errorf("flag --%s missing", f)
		}
	}
	if got := cmd.Flags().Lookup("header").DefValue; got != tunnel.DefaultHeaderName+":"+tunnel.DefaultHeaderValue {
		t.Errorf("default header %q", got)
	}
}

func TestDescribeRoutes(t *testing.T) {
	got := describeRoutes([]tunnel.Route{{Header: "X-Dev", Value: "a", Owner: "alice@l"}, {All: true}})
	if got != "X-Dev:a by alice@l, all traffic" {
		t.Errorf("got %q", got)
	}
}
