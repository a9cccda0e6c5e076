//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The values the demo's configuration holds: an = in a value, a newline,
// $(...) and $$, which peers have mangled.
const (
	greeting = "hello=world"
	password = "p@ss=$$word$(NOT_EXPANDED)"
	pemLike  = "-----BEGIN-----\nabc=\n-----END-----"
)

// fsmonitorMark is the file git's core.fsmonitor would create on the
// laptop if the namespace's GIT_CONFIG_* reached a command.
func fsmonitorMark(ns string) string {
	return filepath.Join(os.TempDir(), "kubectl-intercept-e2e-fsmonitor-"+ns)
}

// localWorld makes a namespace with the demo and what it needs: a backend
// Service answering with its own name (HTTP on 80, a TCP line echo on
// 9090), a ConfigMap and a Secret used through env, envFrom and fieldRefs.
// As a hostile teammate would, the template sets NODE_OPTIONS and a
// ConfigMap sets git's GIT_CONFIG_* (core.fsmonitor runs a command).
func localWorld(t *testing.T) (ns string, svc *corev1.Service) {
	t.Helper()
	ns = newNamespace(t)
	ctx := t.Context()
	deployDemo(t, ns, demoOptions{name: "backend", replicas: 1, serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "tcp", Port: 9090, TargetPort: intstr.FromString("tcp"), Protocol: corev1.ProtocolTCP})
	}})
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-config"},
		Data:       map[string]string{"GREETING": greeting, "MODE": "canary", "config.yaml": "feature: on\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "tooling"},
		Data:       map[string]string{"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "touch " + fsmonitorMark(ns)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-secret"},
		StringData: map[string]string{"PASSWORD": password, "PEM": pemLike},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc = deployDemo(t, ns, demoOptions{replicas: 2, deploymentMutate: func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		ref := func(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }
		c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("demo-config")}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: ref("tooling")}}}
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "NODE_OPTIONS", Value: "--require /nonexistent/evil.js"},
			corev1.EnvVar{Name: "LITERAL", Value: "a=b=c"},
			corev1.EnvVar{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("demo-config"), Key: "GREETING"}}},
			corev1.EnvVar{Name: "EXPANDED", Value: "say $(GREETING) in $(MY_NAMESPACE)"},
			corev1.EnvVar{Name: "MY_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			corev1.EnvVar{Name: "ESCAPED", Value: "$$(GREETING)"},
			corev1.EnvVar{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("demo-secret"), Key: "PASSWORD"}}},
			corev1.EnvVar{Name: "PEM", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref("demo-secret"), Key: "PEM"}}},
			corev1.EnvVar{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: ref("demo-config"), Key: "absent", Optional: ptr.To(true)}}},
		)
		d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes,
			corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref("demo-config"),
				Items: []corev1.KeyToPath{{Key: "config.yaml", Path: "config.yaml"}}}}},
			corev1.Volume{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "demo-secret", DefaultMode: ptr.To(int32(0o400))}}},
			corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		)
		c.VolumeMounts = append(c.VolumeMounts,
			corev1.VolumeMount{Name: "config", MountPath: "/etc/demo", ReadOnly: true},
			corev1.VolumeMount{Name: "secret", MountPath: "/etc/secret", ReadOnly: true},
			corev1.VolumeMount{Name: "scratch", MountPath: "/scratch"},
		)
	}})
	return ns, svc
}

// localDemo builds the demo app for this machine: the developer's service.
func localDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "intercept-demo")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../../cmd/intercept-demo" // a module of its own
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// readEnv0 reads `env -0` output: NAME=VALUE records separated by NUL.
func readEnv0(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, rec := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(rec), "="); ok {
			out[k] = v
		}
	}
	return out
}

// The developer's command runs with the pod's environment and the
// cluster's network, serves the intercepted requests with what it gets
// from the in-cluster backend, and the intercept ends with it.
func TestLocalProcessLivesAsThePod(t *testing.T) {
	t.Parallel()
	ns, svc := localWorld(t)
	before := takeSnapshot(t, ns, "demo")
	demo := localDemo(t)
	out := t.TempDir()
	port, fwd, bad := freePort(t), freePort(t), freePort(t)
	// The command: record what it sees, reach the backend both ways, then
	// serve as the developer's service until told to stop, and exit 7.
	mount := filepath.Join(t.TempDir(), "pod")
	_ = os.Remove(fsmonitorMark(ns))
	script := fmt.Sprintf(`env -0 > %[1]s/env
if command -v git >/dev/null; then git init -q %[1]s/repo && git -C %[1]s/repo status >/dev/null 2>&1; touch %[1]s/git-ran; fi
cp "$KUBECTL_INTERCEPT_ROOT/etc/demo/config.yaml" %[1]s/config.yaml
curl -sS --max-time 10 http://backend.%[2]s/ > %[1]s/via-http-proxy 2> %[1]s/via-http-proxy.err
env -u http_proxy -u HTTP_PROXY curl -sS --max-time 10 http://backend/ > %[1]s/via-socks 2> %[1]s/via-socks.err
touch %[1]s/fetched
%[3]s --listen 127.0.0.1:%[4]d --tcp-listen= --raw-listen= --pod laptop &
demo=$!
while [ ! -f %[1]s/stop ]; do sleep 0.1; done
kill $demo
exit 7
`, out, ns, demo, port)
	state := t.TempDir()
	p := startPluginEnv(t, []string{"XDG_STATE_HOME=" + state}, "svc/demo", "-n", ns, "-l", strconv.Itoa(port),
		"--env-file", filepath.Join(out, "demo.env"), "--env-json", filepath.Join(out, "demo.json"), "--mount", mount,
		"--forward", fmt.Sprintf("%d:backend:9090", fwd), "--forward", fmt.Sprintf("%d:nowhere.invalid:80", bad),
		"--", "sh", "-c", script)
	p.waitOutput(t, "the intercept ends when it exits", 2*time.Minute)
	waitFor(t, 30*time.Second, "the command to reach the backend", func() bool {
		_, err := os.Stat(filepath.Join(out, "fetched"))
		return err == nil
	})

	env := readEnv0(t, filepath.Join(out, "env"))
	for k, want := range map[string]string{
		// MY_NAMESPACE is defined after EXPANDED: as in the pod, it stays.
		"LITERAL": "a=b=c", "GREETING": greeting, "EXPANDED": "say " + greeting + " in $(MY_NAMESPACE)", "MY_NAMESPACE": ns,
		"ESCAPED": "$(GREETING)", "PASSWORD": password, "PEM": pemLike, "CFG_MODE": "canary", "CFG_GREETING": greeting,
		"BACKEND_SERVICE_PORT_TCP": "9090", "HTTP_PROXY": "", "ALL_PROXY": "",
	} {
		got, ok := env[k]
		switch {
		case !ok:
			t.Errorf("the command lacks %s", k)
		case want != "" && got != want:
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := env["OPTIONAL"]; ok {
		t.Error("a missing optional key gave a variable")
	}
	// What would run code on the laptop stays out, and is named.
	for _, k := range []string{"NODE_OPTIONS", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"} {
		if v, ok := env[k]; ok && (strings.Contains(v, "evil") || strings.Contains(v, "fsmonitor") || v == "1") {
			t.Errorf("the command got %s=%q from the cluster", k, v)
		}
		if !strings.Contains(p.output(), strconv.Quote(k)) {
			t.Errorf("the output does not name %s as left out:\n%s", k, p.output())
		}
	}
	if _, err := os.Stat(filepath.Join(out, "git-ran")); err == nil {
		if _, err := os.Stat(fsmonitorMark(ns)); err == nil {
			t.Error("git status in the command ran the cluster's core.fsmonitor")
		}
	}
	if !strings.HasPrefix(env["POD_NAME"], "demo-intercept-") {
		t.Errorf("POD_NAME = %q, want a copy pod's name", env["POD_NAME"])
	}
	for _, f := range []string{"via-http-proxy", "via-socks"} {
		b, _ := os.ReadFile(filepath.Join(out, f))
		errb, _ := os.ReadFile(filepath.Join(out, f+".err"))
		var e echo
		if err := json.Unmarshal(b, &e); err != nil || !strings.HasPrefix(e.Pod, "backend-") {
			t.Errorf("%s: the backend answered %q (%s)", f, b, errb)
		}
	}

	// The volumes' files under KUBECTL_INTERCEPT_ROOT, read-only, the
	// emptyDir named as not copied; a change to the ConfigMap reaches them.
	if env["KUBECTL_INTERCEPT_ROOT"] != mount {
		t.Errorf("KUBECTL_INTERCEPT_ROOT = %q, want %s", env["KUBECTL_INTERCEPT_ROOT"], mount)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "config.yaml")); string(b) != "feature: on\n" {
		t.Errorf("the command read config.yaml as %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(mount, "etc/secret/PEM")); string(b) != pemLike {
		t.Errorf("etc/secret/PEM = %q", b)
	}
	if st, err := os.Stat(filepath.Join(mount, "etc/secret/PASSWORD")); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("etc/secret/PASSWORD: %v %v, want mode 0400", st, err)
	}
	if !strings.Contains(p.output(), "not copied: /scratch (volume scratch)") {
		t.Error("the emptyDir is not named as not copied")
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "demo-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["config.yaml"] = "feature: off\n"
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the changed ConfigMap in the mounted file", func() bool {
		b, _ := os.ReadFile(filepath.Join(mount, "etc/demo/config.yaml"))
		return string(b) == "feature: off\n"
	})

	// --env-json holds every value; --env-file loads with Docker's rules to
	// the same values but the multi-line one, which it names.
	var fromJSON map[string]string
	if b, err := os.ReadFile(filepath.Join(out, "demo.json")); err != nil || json.Unmarshal(b, &fromJSON) != nil {
		t.Fatalf("--env-json: %v", err)
	}
	if fromJSON["PEM"] != pemLike || fromJSON["PASSWORD"] != password {
		t.Errorf("--env-json: PEM %q PASSWORD %q", fromJSON["PEM"], fromJSON["PASSWORD"])
	}
	for _, k := range []string{"NODE_OPTIONS", "GIT_CONFIG_COUNT", "GIT_CONFIG_VALUE_0"} {
		if v, ok := fromJSON[k]; ok {
			t.Errorf("--env-json holds %s=%q", k, v)
		}
	}
	for _, f := range []string{"demo.env", "demo.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want mode 0600", f, err)
		}
	}
	fromFile := dockerEnvFile(t, filepath.Join(out, "demo.env"))
	for k, v := range fromJSON {
		if got, ok := fromFile[k]; strings.Contains(v, "\n") == ok || (ok && got != v) {
			t.Errorf("--env-file %s = %q (present %t), JSON %q", k, got, ok, v)
		}
	}
	if !strings.Contains(p.output(), "leaves out") || !strings.Contains(p.output(), "PEM") {
		t.Error("the left-out multi-line variable is not named")
	}

	// A request with the header reaches the command, which answers with
	// what the in-cluster backend told it (through HTTP_PROXY).
	var got struct {
		Pod    string `json:"pod"`
		Answer echo   `json:"answer"`
	}
	waitFor(t, 10*time.Second, "the laptop to answer /call", func() bool {
		return getJSON(serviceURL(svc)+"call?to=http://backend."+ns+"/", header("X-C6O-INTERCEPT", "yes"), &got) == nil && got.Pod == "laptop"
	})
	if !strings.HasPrefix(got.Answer.Pod, "backend-") {
		t.Errorf("the laptop's call to the backend got %+v", got.Answer)
	}

	// A raw TCP echo through --forward; a forward to a name that does not
	// resolve fails that connection, with the reason, and nothing else.
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fwd), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "through the forward\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.Contains(line, "through the forward") {
		t.Errorf("TCP echo through --forward: %q", line)
	}
	conn.Close()
	badConn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", bad), 5*time.Second)
	if err == nil {
		_ = badConn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, rerr := badConn.Read(make([]byte, 1))
		badConn.Close()
		if rerr == nil {
			t.Error("a forward to a name that does not resolve gave a working connection")
		}
	}
	p.waitOutput(t, "nowhere.invalid:80", 15*time.Second)
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != "laptop" {
		t.Errorf("after the failed forward the intercept routed to %q", got)
	}

	statusCmd := pluginCmd(t, "status", "svc/demo", "-n", ns)
	statusCmd.Env = append(statusCmd.Env, "XDG_STATE_HOME="+state)
	statusOut, err := statusCmd.CombinedOutput()
	status := string(statusOut)
	for _, want := range []string{"On this machine:", "Environment:", "Files:", "Proxy:", "Forward:", "backend:9090", "Command:"} {
		if err != nil || !strings.Contains(status, want) {
			t.Errorf("status lacks %q (%v):\n%s", want, err, status)
		}
	}

	// The command exits by itself: the plugin exits with its code and the
	// Service is restored.
	if err := os.WriteFile(filepath.Join(out, "stop"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = p.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("the plugin ended with %v, want the command's exit code 7:\n%s", err, p.output())
	}
	assertRestored(t, ns, "demo", before)
	if _, err := os.Stat(mount); !os.IsNotExist(err) {
		t.Errorf("--mount %s is still there after the intercept: %v", mount, err)
	}
}

// Ctrl-C reaches the command first, then the intercept closes; a command
// that cannot start and bad references change nothing.
func TestLocalCommandSignalsAndFailures(t *testing.T) {
	t.Parallel()
	ns, _ := localWorld(t)
	before := takeSnapshot(t, ns, "demo")
	out := t.TempDir()
	port := laptop(t, laptopPod)
	script := fmt.Sprintf(`trap 'echo got-int > %[1]s/signal; exit 130' INT
touch %[1]s/started
while :; do sleep 0.1; done
`, out)
	// The command is to listen on the local port: nothing listens there
	// before it starts, which is no reason to warn.
	idle, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idlePort := idle.Addr().(*net.TCPAddr).Port
	idle.Close()
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(idlePort), "--", "sh", "-c", script)
	p.waitOutput(t, "the intercept ends when it exits", 2*time.Minute)
	if strings.Contains(p.output(), "nothing listens on localhost") {
		t.Errorf("with -- CMD the plugin warned that nothing listens before it started the command:\n%s", p.output())
	}
	waitFor(t, 10*time.Second, "the command to start", func() bool {
		_, err := os.Stat(filepath.Join(out, "started"))
		return err == nil
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	err = p.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("after Ctrl-C the plugin ended with %v, want the command's 130:\n%s", err, p.output())
	}
	if b, _ := os.ReadFile(filepath.Join(out, "signal")); !strings.Contains(string(b), "got-int") {
		t.Error("the command did not get the interrupt")
	}
	assertRestored(t, ns, "demo", before)

	// Each refused before anything changes.
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a command that does not exist", []string{"--", "no-such-command-anywhere"}, 127, "no-such-command-anywhere: command not found"},
		{"a container that does not exist", []string{"--container", "nope", "--", "true"}, 1, "--container nope: the workload behind service demo has no such container (it has demo)"},
	} {
		cmd := pluginCmd(t, append([]string{"svc/demo", "-n", ns, "-l", strconv.Itoa(port)}, tc.args...)...)
		b, err := cmd.CombinedOutput()
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %v (want exit %d) and %q:\n%s", tc.name, err, tc.code, tc.want, b)
		}
	}
	// A required ConfigMap key the workload's env names is gone (the
	// running pods started before it went).
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "demo-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(cm.Data, "GREETING")
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	before = takeSnapshot(t, ns, "demo")
	b, err := pluginCmd(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--", "true").CombinedOutput()
	if err == nil || !strings.Contains(string(b), `configmap demo-config has no key "GREETING"`) || !strings.Contains(string(b), "nothing was changed") {
		t.Errorf("a missing required key: %v\n%s", err, b)
	}
	if after := takeSnapshot(t, ns, "demo"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a refused intercept changed the namespace:\nbefore %+v\nafter  %+v", before, after)
	}
}

// dockerEnvFile reads a file as `docker run --env-file` does.
func dockerEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			t.Fatalf("docker would refuse line %q", line)
		}
		out[k] = v
	}
	return out
}

// getJSON requests url with the headers on a new connection and decodes
// the answer.
func getJSON(url string, h http.Header, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header = h
	c := &http.Client{Timeout: 15 * time.Second, Transport: clusterTransport(&http.Transport{DisableKeepAlives: true})}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
