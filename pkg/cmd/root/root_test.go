package root

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	_ "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/internal/golden" // -update, which go test ./pkg/cmd/... passes to every package

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
)

// The root command carries kubectl's standard flags and our own.
func TestRootFlags(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	for _, f := range []string{"namespace", "context", "kubeconfig", "as", "remote-port", "local-port", "header", "cookie", "baggage", "all", "clean", "quiet", "wait", "detach", "dry-run", "proxy-image", "timeout"} {
		if cmd.Flags().Lookup(f) == nil && cmd.PersistentFlags().Lookup(f) == nil {
			t.Errorf("flag --%s missing", f)
		}
	}
	if got := cmd.Flags().Lookup("header").DefValue; got != route.DefaultHeaderName+":"+route.DefaultHeaderValue {
		t.Errorf("default header %q", got)
	}
}

// czctl's spellings: -k for --kubeconfig, --remotePort and --localPort;
// and --force only with -c.
func TestCzctlFlags(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
	if err := cmd.ParseFlags([]string{"-k", "/tmp/kc", "--remotePort", "http", "--localPort", "3000", "-n", "shop"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"kubeconfig": "/tmp/kc", "remote-port": "http", "local-port": "3000", "namespace": "shop"} {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}

// Help reads right: no flag's usage turns words into a value name, and
// nothing promises more than the restore does.
func TestHelpReadsRight(t *testing.T) {
	root := NewCmdRoot(genericiooptions.IOStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	for _, cmd := range append(root.Commands(), root) {
		var out bytes.Buffer
		cmd.SetOut(&out)
		if err := cmd.Help(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		for _, bad := range []string{"--detach kubectl", "--env-file docker", "exactly as it was", "(the default)"} {
			if strings.Contains(help, bad) {
				t.Errorf("%s --help says %q", cmd.Name(), bad)
			}
		}
		// pflag names a flag's value after a backquoted word of its usage
		// (--env-file docker run --env-file): no usage may hold one.
		for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if strings.Contains(f.Usage, "`") {
					name, _ := pflag.UnquoteUsage(f)
					t.Errorf("%s --%s: its usage holds a backquote, which --help prints as the value's name %q", cmd.Name(), f.Name, name)
				}
			})
		}
	}
}

// --dry-run without -l still has every other flag checked: the command
// refuses contradicting or invalid flags before it reads the cluster.
func TestDryRunFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"svc/web", "--dry-run", "--tunnel", "bogus", "--timeout", "-5s", "-w", "--detach"}, "contradict"},
		{[]string{"svc/web", "--dry-run", "--timeout", "-5s"}, "--timeout must be positive"},
		{[]string{"svc/web", "--dry-run", "--tunnel", "bogus"}, "use builtin or ngrok"},
	} {
		var out bytes.Buffer
		cs := fake.NewClientset()
		cmd := NewCmdRootFor(factory.NewFor(cs, nil, "shop"), genericiooptions.IOStreams{Out: &out, ErrOut: &out})
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
		if len(cs.Actions()) > 0 {
			t.Errorf("%v: the cluster was asked: %v", tc.args, cs.Actions())
		}
	}
}
