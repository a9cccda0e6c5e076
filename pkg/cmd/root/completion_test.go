package root

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

func svc(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Ports: ports}}
}

func nsObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// completionCluster is a fake cluster with Services in two namespaces, web
// in shop under an intercept.
func completionCluster() *fake.Clientset {
	web := svc("shop", "web", corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
		corev1.ServicePort{Name: "grpc", Port: 9090, Protocol: corev1.ProtocolTCP})
	web.Annotations = map[string]string{session.AnnotationRecord: "{}"}
	return fake.NewClientset(web,
		svc("shop", "worker", corev1.ServicePort{Port: 8080}),
		svc("shop", "db", corev1.ServicePort{Name: "pg", Port: 5432}),
		svc("team", "api", corev1.ServicePort{Port: 80}),
		nsObj("shop"), nsObj("team"), nsObj("kube-system"))
}

// kubeconfig writes a kubeconfig whose current context has namespace team
// and another context with namespace shop.
func kubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config")
	err := os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
contexts:
- name: dev
  context: {cluster: c, user: u, namespace: team}
- name: staging
  context: {cluster: c, user: u, namespace: shop}
current-context: dev
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// complete runs what a shell runs on TAB, `kubectl-intercept __complete
// args...`, against cs, and returns the completions and what went to stderr
// besides cobra's directive line.
func complete(t *testing.T, cs kubernetes.Interface, args ...string) ([]string, string) {
	t.Helper()
	f := factory.New(genericclioptions.NewConfigFlags(true))
	f.NewClient = func(*rest.Config) (kubernetes.Interface, error) { return cs, nil }
	var out, errOut bytes.Buffer
	cmd := NewCmdRootFor(f, genericiooptions.IOStreams{Out: &out, ErrOut: &errOut})
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, ":") { // the directive
			got = append(got, line)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(out.String()), ":4") {
		t.Errorf("%q: completion does not end with ShellCompDirectiveNoFileComp: %q", args, out.String())
	}
	stderr := strings.TrimSpace(strings.ReplaceAll(errOut.String(), "Completion ended with directive: ShellCompDirectiveNoFileComp", ""))
	return got, stderr
}

// TAB after kubectl intercept offers the subcommands and the Services of the
// namespace that -n, --context or the kubeconfig's context names; after -r,
// the ports of the Service typed; after -n, the namespaces; after close,
// only the Services under an intercept.
func TestShellCompletion(t *testing.T) {
	cs, kc := completionCluster(), kubeconfig(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--kubeconfig", kc, "a"}, []string{"api"}}, // the context's namespace, team
		{[]string{"--kubeconfig", kc, "w"}, nil},
		{[]string{"--kubeconfig", kc, ""}, []string{"close\tEnd your intercepts; the last one out restores the Service",
			"completion\tGenerate the autocompletion script for the specified shell",
			"doctor\tCheck that your header, cookie or baggage reaches an intercepted Service from an entry point",
			"help\tHelp about any command",
			"list\tList the intercepted Services of the namespace and their live routes, or (--services) what can be intercepted",
			"rbac\tPrint the Role, its binding to a group and the admission policy that confines the group",
			"replay\tSend the requests a wiretap recorded to a URL and report the answers that differ from the cluster's",
			"status\tShow your intercepts, or one intercept in detail",
			"version\tPrint the version of kubectl-intercept and of the sidecar image it uses", "api"}},
		{[]string{"--kubeconfig", kc, "-n", "shop", "svc/w"}, []string{"svc/web", "svc/worker"}},
		{[]string{"--kubeconfig", kc, "--namespace=shop", "-l", "3000", "w"}, []string{"web", "worker"}},
		{[]string{"--kubeconfig", kc, "--context", "staging", "d"}, []string{"doctor\tCheck that your header, cookie or baggage reaches an intercepted Service from an entry point", "db"}},
		{[]string{"--kubeconfig", kc, "-n", "shop", "svc/web", "-r", ""}, []string{"http\tport 80/TCP", "80\thttp", "grpc\tport 9090/TCP", "9090\tgrpc"}},
		{[]string{"--kubeconfig", kc, "-n", "shop", "-r", ""}, nil}, // no Service typed yet
		{[]string{"--kubeconfig", kc, "-n", "s"}, []string{"shop"}},
		{[]string{"--kubeconfig", kc, "close", "-n", "s"}, []string{"shop"}},
		{[]string{"--kubeconfig", kc, "close", "-n", "shop", ""}, []string{"web"}},
		{[]string{"--kubeconfig", kc, "-n", "shop", "svc/web", "-l", ""}, nil},
	} {
		got, stderr := complete(t, cs, tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
		if stderr != "" {
			t.Errorf("%q: printed %q", tc.args, stderr)
		}
	}
}

// A cluster that refuses or cannot be reached gets no completions and no
// message on the terminal.
func TestShellCompletionErrorsPrintNothing(t *testing.T) {
	cs := completionCluster()
	cs.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	kc := kubeconfig(t)
	for _, args := range [][]string{
		{"--kubeconfig", kc, "w"},
		{"--kubeconfig", kc, "svc/web", "-r", ""},
		{"--kubeconfig", kc, "-n", ""},
		{"--kubeconfig", filepath.Join(t.TempDir(), "missing"), "--context", "nope", "w"},
	} {
		got, stderr := complete(t, cs, args...)
		if len(got) != 0 || stderr != "" {
			t.Errorf("%q: offered %q, printed %q", args, got, stderr)
		}
	}
}

// cobra's completion command prints scripts for the kubectl-intercept
// binary.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "complete -o default -F __start_kubectl-intercept kubectl-intercept",
		"zsh":        "#compdef kubectl-intercept",
		"fish":       "complete -c kubectl-intercept",
		"powershell": "Register-ArgumentCompleter -CommandName 'kubectl-intercept'",
	} {
		var out bytes.Buffer
		cmd := NewCmdRoot(genericiooptions.IOStreams{Out: &out, ErrOut: &out})
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"completion", shell})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("%s script lacks %q", shell, want)
		}
	}
}
