package local

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podfiles"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// The hostname is the one the kubelet gives the pod.
func TestPodHostname(t *testing.T) {
	for _, tc := range []struct {
		pod  corev1.Pod
		want string
	}{
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-intercept-b4k9x2-5d8f-abcde"}}, "web-intercept-b4k9x2-5d8f-abcde"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0"}, Spec: corev1.PodSpec{Hostname: "db-primary", Subdomain: "db"}}, "db-primary"},
		{corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 62) + "-bcd"}}, strings.Repeat("a", 62)},
	} {
		if got := podHostname(&tc.pod); got != tc.want {
			t.Errorf("podHostname(%s) = %q, want %q", tc.pod.Name, got, tc.want)
		}
	}
}

// What the sandbox gives is said in words status and the active message
// print: the resolver, where connections leave from, the mounts, the
// local exceptions.
func TestDescribeSandbox(t *testing.T) {
	local, err := sandbox.ParseLocal("localhost:5432")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sandbox.Config{Hostname: "web-1",
		DNS:    sandbox.DNS{Nameserver: netip.MustParseAddr("10.96.0.10"), Search: []string{"shop.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}},
		Mounts: []sandbox.Mount{{Source: "/tmp/x/etc/config", Target: "/etc/config"}}, Local: []sandbox.Local{local}}
	side := describeSandbox(cfg, "web-1")
	for got, want := range map[string]string{
		side.DNS:          "nameserver 10.96.0.10, search shop.svc.cluster.local svc.cluster.local, options ndots:5",
		side.Network:      "every TCP connection leaves from pod web-1",
		side.MountsLine(): "1 mount at its path, read-only and kept up to date: /etc/config",
		side.LocalLine():  "localhost:5432 (dialed from this machine, not the pod)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if none := (&SandboxSide{}); none.MountsLine() == "" || none.LocalLine() != "" {
		t.Errorf("no mounts: %q; no --local: %q", none.MountsLine(), none.LocalLine())
	}
	ls := &Setup{sandbox: &sandboxPlan{side: side}, EnvFrom: "3 variables"}
	if s := ls.Summary([]string{"./web"}); s == nil || s.Sandbox == nil || s.Sandbox.Hostname != "web-1" {
		t.Errorf("status's record of the sandbox: %+v", s)
	}
}

// The command in the sandbox gets no proxy variables of ours (the user's
// own stay), and the sandbox's private tree is not named to it (its files
// are at their paths); --mount's is.
func TestSandboxCommandEnv(t *testing.T) {
	o := &Options{Command: []string{"./web"}, Sandbox: true}
	if o.WantsNetwork() || !o.WantsEnv() {
		t.Errorf("--sandbox: WantsNetwork %t (the sandbox needs no proxy), WantsEnv %t", o.WantsNetwork(), o.WantsEnv())
	}
	ls := &Setup{env: []podenv.Var{{Name: "DSN", Value: "postgres://db"}}, Files: &podfiles.Tree{Root: "/tmp/private"}, privateFiles: true, sandbox: &sandboxPlan{}}
	env := CommandEnv([]string{"HTTPS_PROXY=http://corp:3128", "HOME=/home/dev"}, ls.CommandVars(), "")
	got := strings.Join(env, " ")
	if got != "HTTPS_PROXY=http://corp:3128 HOME=/home/dev DSN=postgres://db" {
		t.Errorf("the sandbox's environment: %s", got)
	}
	ls.privateFiles = false
	if vars := ls.CommandVars(); vars[len(vars)-1].Name != EnvRoot {
		t.Errorf("with --mount the command is told where the files are: %+v", vars)
	}
}
