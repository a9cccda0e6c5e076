//go:build e2e

// Package e2e runs kubectl-intercept against a real cluster: by default the
// local one of hack/cluster.sh (a real API server, kubelet, containerd and
// kube-proxy), or the cluster KUBECONFIG names, as it is. The tests' traffic
// to the cluster leaves from a client pod inside it (client_test.go), so
// the suite runs on kind or any cluster; only the tests that need this host
// to be the node skip elsewhere. The files build only with -tags e2e, so a
// plain go test ./... neither compiles nor starts any of this.
//
// Environment:
//
//	KUBECONFIG   one kubeconfig file: the suite runs on its current context
//	             and does not run hack/cluster.sh. Unset: hack/cluster.sh up,
//	             then $CLUSTER_DIR/kubeconfig. Tests that need this host
//	             to be the cluster's node skip unless KUBECONFIG is unset
//	             or names $CLUSTER_DIR/kubeconfig (see requireLocalCluster).
//	E2E_REMOTE   1: treat the cluster as another one even when it is the
//	             local one (those tests skip, the demo image is pulled if
//	             missing), to see what runs on kind or a cloud cluster
//	PROXY_IMAGE  the sidecar image, which the cluster must already have or
//	             be able to pull (old name: KUBECTL_INTERCEPT_PROXY_IMAGE)
//	DEMO_IMAGE   the demo app's image, likewise (old name: E2E_DEMO_IMAGE)
//	E2E_PLUGIN   the kubectl-intercept binary built with the e2ehooks tag
//	             (default bin/kubectl-intercept-e2e, make build-e2e)
//	E2E_KUBECTL  kubectl, for the namespace dump of a failed test
//
// A test that owns its namespace (newNamespace) and touches nothing
// outside it calls t.Parallel: go test runs it after the serial ones,
// -parallel at a time (make e2e: E2E_PARALLEL). The others stay serial, so
// nothing runs beside them:
//
//   - the admission policies and their bindings are cluster-wide
//     (TestLeastPrivilegeRole, TestLeastPrivilegeRoleAsClientCertificateUser,
//     TestAdmissionPolicyConfinesTheRole);
//   - an iptables rule on this host (TestRelayBlockedByNetworkPolicyFallsBack);
//   - floods of hundreds of connections whose sidecar memory is read from
//     the kubelet (TestSidecarSurvivesAFlood,
//     TestSidecarBudgetHoldsUnderFanOut, TestSidecarBudgetHoldsUnderH2Fill)
//     and steady load (TestZeroDowntimeUnderLoad);
//   - a bound of a few seconds on what a user would notice: failing open
//     (TestFailOpenAfterKill, TestFailOpenAfterSIGSTOP), a relay's pod
//     going (TestOneTunnelPerDeveloper), -a taking every connection
//     (TestAllTraffic), and no failed request while pods drain as the copy
//     scales in (TestRoutesFollowCopyPods, TestCopyScalesWithTheOriginal):
//     a node busy with other tests' pods would make those slow, not wrong;
//   - TestNothingListening, whose new Service must refuse on a port without
//     a backend: beside other tests, its ClusterIP, just freed by another
//     test's Service, once still answered that one's HTTP.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

var (
	cs         kubernetes.Interface
	dyn        dynamic.Interface
	kubeconfig string
	// apiHost is the API server's URL, for counting connections to it.
	apiHost   string
	plugin    string
	demoImage string
	// localCluster: the cluster is hack/cluster.sh's, whose node is this
	// host (its iptables, its processes), and E2E_REMOTE is not set.
	localCluster bool
	// demoPullPolicy: the local cluster has the demo image imported and
	// no registry; another cluster may have to pull it.
	demoPullPolicy = corev1.PullNever
)

// The images hack/images.sh builds by default.
const (
	defaultProxyImage = "localhost/kubectl-intercept/intercept-proxy:0.1.0"
	defaultDemoImage  = "localhost/kubectl-intercept/demo:0.1.0"
)

func TestMain(m *testing.M) {
	repo, _ := filepath.Abs("../..")
	local := localKubeconfig()
	kubeconfig = os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		// Start the local cluster once per run, or reuse the one that is up.
		kubeconfig, localCluster = local, true
		up := exec.Command(filepath.Join(repo, "hack/cluster.sh"), "up")
		up.Stdout, up.Stderr = os.Stderr, os.Stderr
		if err := up.Run(); err != nil {
			fail("the local cluster is not available (hack/cluster.sh up, as root; or set KUBECONFIG to run on another cluster): %v", err)
		}
	} else {
		// The cluster KUBECONFIG names, as it is: nothing is started.
		if _, err := os.Stat(kubeconfig); err != nil {
			fail("KUBECONFIG=%s: %v (it must name one kubeconfig file; unset it to run on the local cluster of hack/cluster.sh)", kubeconfig, err)
		}
		localCluster = sameFile(kubeconfig, local)
	}
	if os.Getenv("E2E_REMOTE") == "1" {
		localCluster = false
	}
	if !localCluster {
		demoPullPolicy = corev1.PullIfNotPresent
	}
	plugin = os.Getenv("E2E_PLUGIN")
	if plugin == "" {
		plugin = filepath.Join(repo, "bin/kubectl-intercept-e2e")
	}
	// The crash and ngrok tests need the hooks only that build has.
	if out, err := exec.Command(plugin, "--ngrok-connect-url", "127.0.0.1:1", "--help").CombinedOutput(); err != nil {
		fail("E2E_PLUGIN=%s is not a plugin built with the e2e suite's hooks (make build-e2e builds bin/kubectl-intercept-e2e, with the e2ehooks tag): %v\n%s", plugin, err, out)
	}
	// PROXY_IMAGE and DEMO_IMAGE, as for make images; the older names still
	// work. The plugin reads the sidecar's image from its own variable.
	proxyImage := firstEnv(defaultProxyImage, "PROXY_IMAGE", "KUBECTL_INTERCEPT_PROXY_IMAGE")
	os.Setenv("KUBECTL_INTERCEPT_PROXY_IMAGE", proxyImage)
	demoImage = firstEnv(defaultDemoImage, "DEMO_IMAGE", "E2E_DEMO_IMAGE")

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fail("KUBECONFIG=%s: %v", kubeconfig, err)
	}
	// A cluster that does not answer fails the run at once, not every test
	// after its own timeout.
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 15 * time.Second
	version, err := kubernetes.NewForConfigOrDie(probe).Discovery().ServerVersion()
	if err != nil {
		fail("the cluster of %s does not answer: %v", kubeconfig, err)
	}
	where := "the local cluster of hack/cluster.sh"
	if !localCluster {
		where = "not the local cluster (or E2E_REMOTE=1): tests that need this host to be the node skip"
	}
	fmt.Fprintf(os.Stderr, "e2e: %s (Kubernetes %s at %s), %s; images %s, %s\n",
		kubeconfig, version.GitVersion, cfg.Host, where, proxyImage, demoImage)
	cs = kubernetes.NewForConfigOrDie(cfg)
	apiHost = cfg.Host
	dyn = dynamic.NewForConfigOrDie(cfg)
	start := time.Now()
	if inCluster, err = startClientPod(cfg); err != nil {
		fail("the client pod that sends the tests' traffic from inside the cluster: %v", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: traffic leaves from the client pod %s/%s (ready in %s)\n", inCluster.ns, inCluster.pod, time.Since(start).Round(100*time.Millisecond))
	code := m.Run()
	inCluster.delete()
	os.Exit(code)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
	os.Exit(1)
}

// localKubeconfig is where hack/cluster.sh writes the local cluster's admin
// kubeconfig: $CLUSTER_DIR/kubeconfig, CLUSTER_DIR defaulting to
// $CACHE_DIR/cluster and CACHE_DIR to /var/tmp/kubectl-intercept.
func localKubeconfig() string {
	dir := os.Getenv("CLUSTER_DIR")
	if dir == "" {
		dir = filepath.Join(envOr("CACHE_DIR", "/var/tmp/kubectl-intercept"), "cluster")
	}
	return filepath.Join(dir, "kubeconfig")
}

// sameFile reports whether the paths name one file (or, when either does
// not exist, are the same path).
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	absA, _ := filepath.Abs(a)
	absB, _ := filepath.Abs(b)
	return absA == absB
}

// requireLocalCluster skips the test unless it runs on the local cluster of
// hack/cluster.sh (KUBECONFIG unset, or naming that cluster's kubeconfig,
// and E2E_REMOTE unset): why says what the test needs of this host as the
// cluster's node (its iptables, its processes, the plugin reaching a
// ClusterIP from here). Traffic to the cluster is no reason: it leaves
// from the client pod (dialCluster).
func requireLocalCluster(t *testing.T, why string) {
	t.Helper()
	if !localCluster {
		t.Skipf("needs the local cluster of hack/cluster.sh: %s", why)
	}
}

// inPart runs check, a part of a test, as the subtest name, counted as if
// written inline: a Fatal in check ends the test, an Error fails it.
func inPart(t *testing.T, name string, check func(t *testing.T)) {
	t.Helper()
	returned := false
	if !t.Run(name, func(t *testing.T) {
		check(t)
		returned = true
	}) && !returned {
		t.FailNow()
	}
}

// fromHost is an inPart that needs this host inside the cluster's network
// (the plugin itself sending a request to a ClusterIP): off the local
// cluster that part skips and the rest of the test goes on. The test's own
// requests need no such part: they leave from the client pod (inPart).
func fromHost(t *testing.T, name string, check func(t *testing.T)) {
	t.Helper()
	inPart(t, name, func(t *testing.T) {
		requireLocalCluster(t, "the plugin sends this request from this host to a ClusterIP")
		check(t)
	})
}

// firstEnv is the first of the variables that is set, else def.
func firstEnv(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return def
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// newNamespace creates a fresh namespace, deleted when the test ends.
func newNamespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	// A DNS label: a subtest's name may hold spaces (as _), commas and more.
	name := "e2e-" + strings.Join(strings.FieldsFunc(strings.ToLower(t.Name()), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	}), "-")
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-") + "-" + hex.EncodeToString(b)
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, name)
		}
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func dumpNamespace(t *testing.T, ns string) {
	kubectl := envOr("E2E_KUBECTL", "kubectl")
	out, _ := exec.Command(kubectl, "--kubeconfig", kubeconfig, "-n", ns, "get", "all", "-o", "wide").CombinedOutput()
	ev, _ := exec.Command(kubectl, "--kubeconfig", kubeconfig, "-n", ns, "get", "events", "--field-selector", "type=Warning,reason!=MissingClusterDNS").CombinedOutput()
	t.Logf("namespace %s at failure:\n%s\n%s", ns, out, ev)
}

// demoOptions shapes the demo Deployment and Service.
type demoOptions struct {
	name     string
	replicas int32
	// numericTarget makes the Service's targetPort a number instead of "http".
	numericTarget    bool
	serviceMutate    func(*corev1.Service)
	deploymentMutate func(*appsv1.Deployment)
}

// deployDemo creates the demo app (Deployment + Service) and waits until
// its pods are ready.
func deployDemo(t *testing.T, ns string, o demoOptions) *corev1.Service {
	t.Helper()
	if o.name == "" {
		o.name = "demo"
	}
	if o.replicas == 0 {
		o.replicas = 2
	}
	labels := map[string]string{"app": o.name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(o.replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: demoTemplate(labels),
		},
	}
	if o.deploymentMutate != nil {
		o.deploymentMutate(d)
	}
	ctx := context.Background()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	target := intstr.FromString("http")
	if o.numericTarget {
		target = intstr.FromInt32(8080)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: target, Protocol: corev1.ProtocolTCP}},
		},
	}
	if o.serviceMutate != nil {
		o.serviceMutate(svc)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "demo deployment ready", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, o.name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == o.replicas && d.Status.UpdatedReplicas == o.replicas
	})
	return svc
}

// demoTemplate is the demo app's pod template: it answers on port 8080
// ("http") with its pod's name, and on 9090 ("tcp") as a TCP echo.
func demoTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers: []corev1.Container{{
				Name:            "demo",
				Image:           demoImage,
				ImagePullPolicy: demoPullPolicy,
				Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "tcp", ContainerPort: 9090}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// echo is what the demo app (and our stand-in laptop service) answers.
type echo struct {
	Pod     string            `json:"pod"`
	Headers map[string]string `json:"headers"`
	Proto   string            `json:"proto"`
}

// get sends one request on a new connection (from the client pod, unless
// url is on loopback) and decodes the echo.
func get(url string, header http.Header) (echo, int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return echo{}, 0, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: clusterTransport(&http.Transport{DisableKeepAlives: true})}
	resp, err := c.Do(req)
	if err != nil {
		return echo{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return echo{}, resp.StatusCode, err
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		return echo{}, resp.StatusCode, fmt.Errorf("status %d, body %q: %w", resp.StatusCode, body, err)
	}
	return e, resp.StatusCode, nil
}

// h2cClient speaks HTTP/2 with prior knowledge, as a gRPC or h2c client
// does, from the client pod.
func h2cClient(t *testing.T) *http.Client {
	tr := clusterTransport(&http.Transport{})
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr.Protocols = &protos
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func serviceURL(svc *corev1.Service) string {
	return fmt.Sprintf("http://%s:%d/", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
}

// pluginProc is a running kubectl-intercept.
type pluginProc struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *pluginProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *pluginProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// startPlugin runs kubectl-intercept in the background.
func startPlugin(t *testing.T, args ...string) *pluginProc {
	t.Helper()
	return startPluginEnv(t, nil, args...)
}

// startPluginEnv runs kubectl-intercept in the background with extra
// environment variables.
func startPluginEnv(t *testing.T, env []string, args ...string) *pluginProc {
	t.Helper()
	p := &pluginProc{cmd: pluginCmd(t, args...)}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("kubectl-intercept %v output:\n%s", args, p.output())
		}
	})
	return p
}

// waitOutput waits until the plugin printed s.
func (p *pluginProc) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("kubectl-intercept to print %q", s), func() bool {
		return strings.Contains(p.output(), s)
	})
}

// printsSoon says whether the plugin prints s within 10 s: the lines that
// follow "Intercepting service" are written a moment after it.
func (p *pluginProc) printsSoon(s string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.output(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// interrupt ends a foreground intercept as Ctrl-C does and waits until it
// has left.
func (p *pluginProc) interrupt(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept after Ctrl-C: %v\n%s", err, p.output())
	}
}

func pluginCmd(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(plugin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "XDG_STATE_HOME="+t.TempDir(), "NO_COLOR=1")
	return cmd
}

// runPlugin runs kubectl-intercept to completion.
func runPlugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := pluginCmd(t, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
