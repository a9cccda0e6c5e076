package local

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
)

// envCluster is a namespace with an intercepted Service web: its verified
// copy, whose template sets NODE_OPTIONS and reads a ConfigMap that sets
// git's GIT_CONFIG_* (core.fsmonitor runs a command at the next git
// status), the copy's ReplicaSet and one running pod of it. podEnv is what
// the pod object itself declares (a look-alike's spec).
func envCluster(podEnv []corev1.EnvVar) (*fake.Clientset, *session.Started) {
	const ns, id = "shop", "abc123"
	rec := &session.Record{Version: session.RecordVersion, ID: id, Service: "web", Workload: "web", Kind: "Deployment",
		Copy: "web-intercept-" + id, Port: "80", Selector: map[string]string{"app": "web"}, Created: time.Now().UTC()}
	app := corev1.Container{Name: "app", Image: "web:1",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
		Env: []corev1.EnvVar{
			{Name: "NODE_OPTIONS", Value: "--require /attacker/evil.js"},
			{Name: "MODE", Value: "dev"},
			{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		}}
	labels := map[string]string{session.LabelManagedBy: session.ManagedByValue, session.LabelSession: id}
	tmpl := corev1.PodSpec{Containers: []corev1.Container{app, {Name: workload.SidecarName, Image: "proxy:1"}}, EnableServiceLinks: ptr.To(false)}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rec.Copy, UID: "copy-uid", Labels: labels,
		Annotations: map[string]string{session.AnnotationRecord: rec.Encode()}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl}}}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rec.Copy + "-5d8f", UID: "rs-uid", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: ptr.To(true)}}}}
	podSpec := *tmpl.DeepCopy()
	podSpec.Containers[0].Env = podEnv
	podSpec.Containers[0].EnvFrom = nil
	podSpec.NodeName = "node-1"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rs.Name + "-abcde", Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true)}}},
		Spec: podSpec,
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.5",
			ContainerStatuses: []corev1.ContainerStatus{{Name: workload.SidecarName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "settings"}, Data: map[string]string{
		"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "touch owned", "LISTEN": ":8080"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{session.LabelSession: id}, Ports: []corev1.ServicePort{{Port: 80}}}}
	return fake.NewClientset(d, rs, pod, cm, svc), &session.Started{Record: rec, Service: svc}
}

func envOptions(cs *fake.Clientset, allow ...string) *Options {
	return &Options{Client: cs, Namespace: "shop", Service: "web",
		Container: "app", Command: []string{"env"}, EnvAllow: allow}
}

// NODE_OPTIONS in the copy's template and GIT_CONFIG_* from a ConfigMap do
// not reach -- CMD; the output names each, quoted.
func TestCommandEnvLeavesOutWhatRunsCode(t *testing.T) {
	cs, st := envCluster(nil)
	o := envOptions(cs)
	ls := &Setup{}
	pod, _, err := o.resolveEnv(context.Background(), st, "web-intercept-abc123-5d8f-abcde", ls)
	if err != nil {
		t.Fatal(err)
	}
	env := CommandEnv([]string{"PATH=/usr/bin", "HOME=/home/dev"}, ls.CommandVars(), "127.0.0.1:1080")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for _, name := range []string{"NODE_OPTIONS", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"} {
		if v, ok := got[name]; ok {
			t.Errorf("the command gets %s=%q from the cluster", name, v)
		}
	}
	for k, v := range map[string]string{"MODE": "dev", "LISTEN": ":8080", "POD": pod.Name, "PATH": "/usr/bin"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	var errOut bytes.Buffer
	errOut.WriteString(DescribeWithheld(ls.Withheld))
	for _, name := range []string{`"NODE_OPTIONS"`, `"GIT_CONFIG_COUNT"`, `"GIT_CONFIG_KEY_0"`, `"GIT_CONFIG_VALUE_0"`, "--env-allow"} {
		if !strings.Contains(errOut.String(), name) {
			t.Errorf("the output does not name %s:\n%s", name, errOut.String())
		}
	}
}

// --env-allow takes one variable in, and only that one.
func TestEnvAllowTakesOneIn(t *testing.T) {
	cs, st := envCluster(nil)
	ls := &Setup{}
	if _, _, err := envOptions(cs, "NODE_OPTIONS").resolveEnv(context.Background(), st, "web-intercept-abc123-5d8f-abcde", ls); err != nil {
		t.Fatal(err)
	}
	env := strings.Join(CommandEnv(nil, ls.CommandVars(), ""), "\n")
	if !strings.Contains(env, "NODE_OPTIONS=--require /attacker/evil.js") || strings.Contains(env, "GIT_CONFIG_") {
		t.Errorf("with --env-allow NODE_OPTIONS the command gets:\n%s", env)
	}
	if strings.Join(ls.Withheld, ",") != "GIT_CONFIG_COUNT,GIT_CONFIG_KEY_0,GIT_CONFIG_VALUE_0" {
		t.Errorf("left out %q", ls.Withheld)
	}
}

// The environment is the verified copy's template's, not what a pod object
// carrying the session label declares; a copy whose own record does not
// match gives no environment at all.
func TestEnvFromVerifiedCopyTemplate(t *testing.T) {
	cs, st := envCluster([]corev1.EnvVar{{Name: "FROM_POD", Value: "planted"}})
	ls := &Setup{}
	if _, _, err := envOptions(cs).resolveEnv(context.Background(), st, "web-intercept-abc123-5d8f-abcde", ls); err != nil {
		t.Fatal(err)
	}
	for _, v := range ls.env {
		if v.Name == "FROM_POD" {
			t.Errorf("the environment took %s from the pod object, not the copy's template", v.Name)
		}
	}
	d, _ := cs.AppsV1().Deployments("shop").Get(context.Background(), st.Record.Copy, metav1.GetOptions{})
	d.Labels[session.LabelManagedBy] = "someone"
	if _, err := cs.AppsV1().Deployments("shop").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := envOptions(cs).resolveEnv(context.Background(), st, "web-intercept-abc123-5d8f-abcde", &Setup{})
	if err == nil || !strings.Contains(err.Error(), "is not the copy") {
		t.Errorf("a copy that does not check out: %v", err)
	}
}

// Another user made the --env-file path beforehand, mode 0666, and holds it
// open: the secrets go to a new file of mode 0600 in its place, and the
// held file never receives them.
func TestEnvFileReplacesAPreCreatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	o := &Options{EnvFile: path}
	if err := o.writeEnvFiles(nopLog{}, []podenv.Var{{Name: "DB_PASSWORD", Value: "s3cret"}}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	if b, _ := io.ReadAll(held); len(b) > 0 {
		t.Errorf("the pre-created file received %q", b)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "DB_PASSWORD=s3cret") {
		t.Errorf("%s holds %q", path, b)
	}
}

// A symbolic link at --env-file (or --env-json) is refused with a message;
// its target is not written.
func TestEnvFileRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Options{{EnvFile: filepath.Join(dir, "app.env")}, {EnvJSON: filepath.Join(dir, "app.json")}} {
		link := o.EnvFile + o.EnvJSON
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		err := o.writeEnvFiles(nopLog{}, []podenv.Var{{Name: "DB_PASSWORD", Value: "s3cret"}})
		if err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: %v, want a refusal that names the symbolic link", link, err)
		}
		if b, _ := os.ReadFile(target); string(b) != "theirs\n" {
			t.Errorf("the link's target now holds %q", b)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 3 && len(entries) != 2 {
			t.Errorf("left behind: %v", entries)
		}
	}
}

// A --mount DIR that is a symbolic link is refused before anything is made.
func TestMountRefusesASymlinkedDir(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shared")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "mnt")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckMountDir(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("--mount a link: %v, want a refusal", err)
	}
}

// GNU tar reads TAR_OPTIONS before its arguments, and
// --checkpoint-action=exec runs a command during a plain "tar cf". Put in
// the copy's template, it reaches a real tar through the command's
// environment only when --env-allow takes it in.
func TestTarOptionsFromTheTemplateRunNothing(t *testing.T) {
	tar, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar on this machine")
	}
	gnu := false
	if out, err := exec.Command(tar, "--version").Output(); err == nil {
		gnu = strings.Contains(string(out), "GNU tar")
	}
	run := func(allow ...string) (ran bool) {
		t.Helper()
		cs, st := envCluster(nil)
		ctx := context.Background()
		d, err := cs.AppsV1().Deployments("shop").Get(ctx, st.Record.Copy, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := &d.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "TAR_OPTIONS", Value: "--checkpoint=1 --checkpoint-action=exec='touch owned'"})
		if _, err := cs.AppsV1().Deployments("shop").Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		ls := &Setup{}
		if _, _, err := envOptions(cs, allow...).resolveEnv(ctx, st, "web-intercept-abc123-5d8f-abcde", ls); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "data"), bytes.Repeat([]byte("x"), 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tar, "cf", "out.tar", "data")
		cmd.Dir = dir
		cmd.Env = CommandEnv(os.Environ(), ls.CommandVars(), "127.0.0.1:1080")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar cf: %v\n%s", err, out)
		}
		// tar runs the checkpoint's command and waits for it before it
		// exits, so the file is there now if it ever will be.
		_, err = os.Stat(filepath.Join(dir, "owned"))
		return err == nil
	}
	if run() {
		t.Error("TAR_OPTIONS from the copy's template ran a command in a plain tar cf")
	}
	if gnu && !run("TAR_OPTIONS") {
		t.Error("with --env-allow TAR_OPTIONS the checkpoint's command did not run: the test does not show the attack")
	}
}

// The proxy's variables are the plugin's in every spelling: a pod's
// HTTPS_PROXY, Https_Proxy or NO_PROXY (left out unless --env-allow names
// them) and this machine's do not send -- CMD's traffic elsewhere or
// around the proxy into the cluster.
func TestCommandProxyIsThePlugins(t *testing.T) {
	vars := []podenv.Var{
		{Name: "HTTP_PROXY", Value: "http://attacker.example:3128"},
		{Name: "Https_Proxy", Value: "http://attacker.example:3128"},
		{Name: "no_proxy", Value: "*"},
		{Name: "ALL_PROXY", Value: "socks5h://attacker.example:1080"},
	}
	if _, left := podenv.Withhold(vars, nil); len(left) != len(vars) {
		t.Errorf("left out %q, want all of %d", left, len(vars))
	}
	kept, _ := podenv.Withhold(vars, []string{"HTTP_PROXY", "Https_Proxy", "no_proxy", "ALL_PROXY"})
	base := []string{"PATH=/usr/bin", "HTTPS_PROXY=http://corp.example:8080", "NO_PROXY=.corp.example"}
	env := CommandEnv(base, kept, "127.0.0.1:1080")
	want := map[string]string{}
	for _, kv := range proxyEnv("127.0.0.1:1080") {
		k, v, _ := strings.Cut(kv, "=")
		want[strings.ToUpper(k)] = v
	}
	seen := map[string]bool{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		w, ok := want[strings.ToUpper(k)]
		if !ok {
			continue
		}
		seen[strings.ToUpper(k)] = true
		if v != w {
			t.Errorf("the command gets %s=%q, want the plugin's %q", k, v, w)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("the command gets %d of the proxy's %d variables:\n%s", len(seen), len(want), strings.Join(env, "\n"))
	}
}

// nopLog discards what the local side reports.
type nopLog struct{}

func (nopLog) Infof(string, ...any) {}
func (nopLog) Warn(string)          {}
