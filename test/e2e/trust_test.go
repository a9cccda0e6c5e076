//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// A second developer who learns everything `list -o json` and `status -o
// json` show (no owner key is among it) cannot take, replace or remove the
// first developer's route, with the same header or with --all, and the
// first keeps it.
func TestRouteBelongsToItsOpener(t *testing.T) {
	t.Parallel()
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

// A member of the group that `kubectl intercept rbac` binds the Role to,
// with its admission policies in force, can intercept and close, and is
// refused what the Role would let them do beyond that: turning an unrelated
// Deployment into a copy or deleting it, a copy without the one sidecar
// image (a look-alike by prefix included) or with a way onto its node,
// a copy whose sidecar is not the one the copy transform writes (its
// arguments, environment, mounts, hooks, user; a script mounted over its
// binary) or whose containers share a process namespace, changing a live
// copy's pods, changing any field of a Service but the
// selector, the ports' targetPort and our annotation, writing a pod's
// status beyond the readiness gate (its labels included), and Leases not
// ours.
func TestAdmissionPolicyConfinesTheRole(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	const user = "e2e-confined"
	group := rbacGroup(ns)
	installRBAC(t, ns, group)
	as := impersonate(t, user, group)
	ctx := context.Background()
	dryCreate := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	dryUpdate := metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}
	dryDelete := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	refused := func(what string, err error) {
		t.Helper()
		if !refusedByPolicy(err) {
			t.Errorf("%s: want the admission policy's refusal, got %v", what, err)
		}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: want it allowed, got %v", what, err)
		}
	}

	// Deployments.
	image := os.Getenv("KUBECTL_INTERCEPT_PROXY_IMAGE")
	repository := image
	if i := strings.LastIndexAny(image, ":@"); i > strings.LastIndex(image, "/") {
		repository = image[:i]
	}
	// copyLike is the copy transform's own copy of demo, as the plugin
	// would create it, changed by mutate.
	demoDeployment, err := cs.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	demoService, err := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	transformed, _, err := workload.Copy(workload.CopyInput{
		Source:   &workload.Source{Kind: workload.KindDeployment, Name: "demo", Namespace: ns, Template: demoDeployment.Spec.Template, Replicas: 1, Ready: 1},
		Service:  demoService,
		Ports:    []*corev1.ServicePort{&demoService.Spec.Ports[0]},
		Replicas: 1, Name: "look-alike", SessionLabel: "intercept.kubectl.dev/session", SessionID: "look-alike",
		Labels:     map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept"},
		ProxyImage: image,
	})
	if err != nil {
		t.Fatal(err)
	}
	copyLike := func(mutate func(*appsv1.Deployment)) *appsv1.Deployment {
		d := transformed.DeepCopy()
		mutate(d)
		return d
	}
	sidecarOf := func(d *appsv1.Deployment) *corev1.Container {
		for i, c := range d.Spec.Template.Spec.Containers {
			if c.Name == workload.SidecarName {
				return &d.Spec.Template.Spec.Containers[i]
			}
		}
		t.Fatalf("no sidecar in %+v", d.Spec.Template.Spec.Containers)
		return nil
	}
	create := func(d *appsv1.Deployment) error {
		_, err := as.AppsV1().Deployments(ns).Create(ctx, d, dryCreate)
		return err
	}
	allowed("the copy transform's copy with the sidecar image "+image, create(copyLike(func(*appsv1.Deployment) {})))
	refused("a Deployment not labeled a copy", create(copyLike(func(d *appsv1.Deployment) { d.Labels = nil })))
	refused("a copy without the sidecar", create(copyLike(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers = d.Spec.Template.Spec.Containers[:1]
	})))
	for _, lookAlike := range []string{image + "-evil", repository + "-evil:1", repository + "/evil:1", "evil.example/" + image} {
		refused("a copy whose sidecar image is the look-alike "+lookAlike, create(copyLike(func(d *appsv1.Deployment) {
			sidecarOf(d).Image = lookAlike
		})))
	}
	refused("a copy whose sidecar runs another command", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).Command = []string{"/bin/sh", "-c", "id"}
	})))
	// The sidecar as a whole: what would let the maker of a copy run
	// another program as the sidecar, or steer it, is refused.
	refused("a copy whose init container writes a script the sidecar mounts over its binary (subPath)", create(copyLike(func(d *appsv1.Deployment) {
		spec := &d.Spec.Template.Spec
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.InitContainers = []corev1.Container{{Name: "write", Image: demoImage, Command: []string{"/bin/sh", "-c", "echo exit 0 > /bin-out/proxy"},
			VolumeMounts: []corev1.VolumeMount{{Name: "bin", MountPath: "/bin-out"}}}}
		sidecarOf(d).VolumeMounts = append(sidecarOf(d).VolumeMounts, corev1.VolumeMount{Name: "bin", MountPath: "/intercept-proxy", SubPath: "proxy"})
	})))
	refused("a copy whose sidecar has no --control (another container takes the control port)", create(copyLike(func(d *appsv1.Deployment) {
		sc := sidecarOf(d)
		sc.Args = slices.DeleteFunc(sc.Args, func(a string) bool { return strings.HasPrefix(a, "--control=") })
	})))
	refused("a copy whose sidecar's control port is on every address", create(copyLike(func(d *appsv1.Deployment) {
		sc := sidecarOf(d)
		for i, a := range sc.Args {
			if strings.HasPrefix(a, "--control=127.0.0.1:") {
				sc.Args[i] = "--control=0.0.0.0:" + strings.TrimPrefix(a, "--control=127.0.0.1:")
			}
		}
	})))
	refused("a copy whose sidecar has a static route", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).Args = append(sidecarOf(d).Args, "--route=x-dev:alice=10.0.0.1:80")
	})))
	refused("a copy whose sidecar has another environment variable", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).Env = append(sidecarOf(d).Env, corev1.EnvVar{Name: "GODEBUG", Value: "http2debug=2"})
	})))
	refused("a copy whose sidecar takes its environment from a ConfigMap (envFrom)", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}}
	})))
	refused("a copy whose sidecar mounts another volume", create(copyLike(func(d *appsv1.Deployment) {
		spec := &d.Spec.Template.Spec
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "extra", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		sidecarOf(d).VolumeMounts = append(sidecarOf(d).VolumeMounts, corev1.VolumeMount{Name: "extra", MountPath: "/etc/extra"})
	})))
	refused("a copy whose app container mounts the sidecar's volume", create(copyLike(func(d *appsv1.Deployment) {
		app := &d.Spec.Template.Spec.Containers[0]
		app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: "intercept-no-token", MountPath: "/shared"})
	})))
	refused("a copy whose sidecar runs a postStart hook", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/intercept-proxy", "-version"}}}}
	})))
	refused("a copy whose sidecar runs as root", create(copyLike(func(d *appsv1.Deployment) {
		sidecarOf(d).SecurityContext.RunAsUser = ptr.To(int64(0))
		sidecarOf(d).SecurityContext.RunAsNonRoot = nil
	})))
	refused("a copy whose containers share one process namespace", create(copyLike(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.ShareProcessNamespace = ptr.To(true)
	})))
	refused("a copy with a privileged container", create(copyLike(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	})))
	refused("a copy with SYS_ADMIN", create(copyLike(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
	})))
	refused("a copy on the host's network", create(copyLike(func(d *appsv1.Deployment) { d.Spec.Template.Spec.HostNetwork = true })))
	refused("a copy with a hostPath volume", create(copyLike(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Volumes = append(d.Spec.Template.Spec.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
	})))

	// The unrelated Deployment demo: neither turned into a copy (label,
	// sidecar, another image, one step or two) nor deleted.
	changeDemo := func(change func(*appsv1.Deployment)) error {
		d, err := as.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		change(d)
		_, err = as.AppsV1().Deployments(ns).Update(ctx, d, dryUpdate)
		return err
	}
	labelOurs := func(d *appsv1.Deployment) {
		metav1.SetMetaDataLabel(&d.ObjectMeta, "app.kubernetes.io/managed-by", "kubectl-intercept")
	}
	refused("labeling the unrelated Deployment demo a copy", changeDemo(labelOurs))
	refused("turning the unrelated Deployment demo into a copy with another image", changeDemo(func(d *appsv1.Deployment) {
		labelOurs(d)
		d.Spec.Template.Spec.Containers[0].Image = "evil:1"
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "intercept-proxy", Image: image})
	}))
	refused("deleting the unrelated Deployment demo", as.AppsV1().Deployments(ns).Delete(ctx, "demo", dryDelete))

	// Services: only the selector, the ports' targetPort and our
	// annotation change. An exposed Service shows the fields that only a
	// LoadBalancer takes.
	exposed := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "exposed", Namespace: ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "demo"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, exposed, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changeService := func(name string, change func(*corev1.Service)) error {
		svc, err := as.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		change(svc)
		_, err = as.CoreV1().Services(ns).Update(ctx, svc, dryUpdate)
		return err
	}
	allowed("switching the Service's selector, targetPort and our annotation", changeService("demo", func(s *corev1.Service) {
		s.Spec.Selector = map[string]string{"intercept.kubectl.dev/session": "x"}
		s.Spec.Ports[0].TargetPort = intstr.FromInt32(18080)
		metav1.SetMetaDataAnnotation(&s.ObjectMeta, "intercept.kubectl.dev/record", "{}")
	}))
	for what, change := range map[string]func(*corev1.Service){
		"record under the key of releases up to 0.1 (read, never written)": func(s *corev1.Service) {
			metav1.SetMetaDataAnnotation(&s.ObjectMeta, "intercept.kubectl.dev/session", "{}")
		},
		"externalIPs (CVE-2020-8554)": func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"203.0.113.7"} },
		"an ownerReference": func(s *corev1.Service) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "kube-root-ca.crt", UID: "6f1c0d1e-0000-4000-8000-000000000001"}}
		},
		"a finalizer":          func(s *corev1.Service) { s.Finalizers = []string{"example.com/hold"} },
		"sessionAffinity":      func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP },
		"a port's appProtocol": func(s *corev1.Service) { s.Spec.Ports[0].AppProtocol = ptr.To("kubernetes.io/h2c") },
		"a port's number":      func(s *corev1.Service) { s.Spec.Ports[0].Port = 8081 },
		"a port's name":        func(s *corev1.Service) { s.Spec.Ports[0].Name = "other" },
		"the type":             func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort },
		"a label":              func(s *corev1.Service) { metav1.SetMetaDataLabel(&s.ObjectMeta, "team", "evil") },
		"another annotation":   func(s *corev1.Service) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, "example.com/x", "y") },
	} {
		refused("changing the Service's "+what, changeService("demo", change))
	}
	for what, change := range map[string]func(*corev1.Service){
		"externalTrafficPolicy":    func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal },
		"loadBalancerSourceRanges": func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"0.0.0.0/0"} },
		"a port's nodePort": func(s *corev1.Service) {
			s.Spec.Ports[0].NodePort++
		},
	} {
		refused("changing the LoadBalancer Service's "+what, changeService("exposed", change))
	}

	// Leases: only ours, before and after.
	leaseOf := func(name string, labeled bool) *coordinationv1.Lease {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		if labeled {
			l.Labels = map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept"}
		}
		return l
	}
	leases := as.CoordinationV1().Leases(ns)
	_, err = leases.Create(ctx, leaseOf("intercept-presence-x", true), dryCreate)
	allowed("creating a Lease of ours", err)
	_, err = leases.Create(ctx, leaseOf("intercept-presence-x", false), dryCreate)
	refused("creating an unlabeled Lease", err)
	_, err = leases.Create(ctx, leaseOf("leader", true), dryCreate)
	refused("creating a labeled Lease not named intercept-...", err)
	theirs, err := cs.CoordinationV1().Leases(ns).Create(ctx, leaseOf("intercept-theirs", false), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	theirs.Labels = leaseOf("", true).Labels
	_, err = leases.Update(ctx, theirs, dryUpdate)
	refused("labeling a Lease not ours", err)
	refused("deleting a Lease not ours", leases.Delete(ctx, theirs.Name, dryDelete))

	port := laptop(t, laptopPod)
	m := newMachine(t)
	flags := []string{"-n", ns, "--as", user, "--as-group", group}
	if out := m.run(t, true, append([]string{"svc/demo", "-l", strconv.Itoa(port), "-x", "x-dev:confined", "-d"}, flags...)...); strings.Contains(out, "admission policy") {
		t.Errorf("a confined member was warned about the admission policy:\n%s", out)
	}

	// The live copy: its replica count may follow the original; its pods'
	// template, labels and owners stay.
	copies, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=kubectl-intercept"})
	if err != nil || len(copies.Items) != 1 {
		t.Fatalf("the copy: %v, %d", err, len(copies.Items))
	}
	changeCopy := func(change func(*appsv1.Deployment)) error {
		d, err := as.AppsV1().Deployments(ns).Get(ctx, copies.Items[0].Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		change(d)
		_, err = as.AppsV1().Deployments(ns).Update(ctx, d, dryUpdate)
		return err
	}
	// The plugin's own copy, as it is in the cluster, is a copy the
	// policy admits.
	again := copies.Items[0].DeepCopy()
	again.ObjectMeta = metav1.ObjectMeta{Name: "again", Namespace: ns, Labels: again.Labels, Annotations: again.Annotations}
	again.Status = appsv1.DeploymentStatus{}
	allowed("creating the plugin's live copy again", create(again))
	allowed("scaling the copy", changeCopy(func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To(*d.Spec.Replicas + 1) }))
	refused("changing the copy's app image", changeCopy(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "evil:1" }))
	refused("changing the copy's service account", changeCopy(func(d *appsv1.Deployment) { d.Spec.Template.Spec.ServiceAccountName = "default" }))
	refused("moving the copy to another session", changeCopy(func(d *appsv1.Deployment) {
		d.Labels["intercept.kubectl.dev/session"] = "other"
	}))
	refused("changing the copy's record", changeCopy(func(d *appsv1.Deployment) {
		metav1.SetMetaDataAnnotation(&d.ObjectMeta, "intercept.kubectl.dev/record", "{}")
	}))

	// The intercept set its pods' readiness gate; nothing else of a pod's
	// status may be written (labels and annotations included), and no pod
	// but a copy's.
	notReady := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False"}]}}`)
	gate := []byte(`{"status":{"conditions":[{"type":"intercept.kubectl.dev/routes","status":"True"}]}}`)
	relabel := []byte(`{"metadata":{"labels":{"intercept.kubectl.dev/session":"other"}}}`)
	annotate := []byte(`{"metadata":{"annotations":{"example.com/x":"y"}}}`)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		_, copyPod := p.Labels["intercept.kubectl.dev/session"]
		for _, patch := range [][]byte{notReady, gate, relabel, annotate} {
			_, err := as.CoreV1().Pods(ns).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
			what := fmt.Sprintf("patching the status of pod %s (a copy's: %t) with %s", p.Name, copyPod, patch)
			if copyPod && string(patch) == string(gate) {
				allowed(what, err)
			} else {
				refused(what, err)
			}
		}
	}
	m.run(t, true, append([]string{"close"}, flags...)...)
	assertRestored(t, ns, "demo", before)
}

// A flood of unfinished 1 MiB heads and of idle connections against a copy
// pod leaves it Ready, serving the app's traffic, with the sidecar's memory
// under half its 256 MiB limit.
func TestSidecarSurvivesAFlood(t *testing.T) {
	ns, svc, pod := floodedCopy(t, "x-dev:flood")
	data, _ := sidecarPorts(t, pod)
	addr := net.JoinHostPort(pod.Status.PodIP, data)

	const heads, idle = 300, 300
	big := []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < heads+idle; i++ {
		c, err := dialTimeout(addr, 5*time.Second)
		if err != nil {
			continue // refused under the flood: allowed
		}
		conns = append(conns, c)
		if i < heads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
				_, _ = c.Write(big) // the sidecar stops reading past its bound
			}()
		}
	}
	// Meanwhile the app's traffic through the Service is served.
	for i := 0; i < 20; i++ {
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("request %d during the flood reached %q", i, got)
		}
	}
	wg.Wait()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restartedUnder(t, p, "the flood")
	if used := sidecarMemory(t, p); used > 128<<20 {
		t.Errorf("the sidecar uses %d MiB under the flood, over half its 256 MiB limit", used>>20)
	} else {
		t.Logf("sidecar working set under the flood: %d MiB", used>>20)
	}
	readyAfter(t, p, "the flood")
}

// sidecarMemory reads the sidecar container's working set from the
// kubelet's summary.
func sidecarMemory(t *testing.T, pod *corev1.Pod) uint64 {
	t.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", pod.Spec.NodeName, "proxy", "stats", "summary").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("the kubelet's summary: %v", err)
	}
	var summary struct {
		Pods []struct {
			PodRef     struct{ Name, Namespace string }
			Containers []struct {
				Name   string
				Memory struct {
					WorkingSetBytes uint64
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &summary); err != nil {
		t.Fatal(err)
	}
	for _, p := range summary.Pods {
		if p.PodRef.Name != pod.Name || p.PodRef.Namespace != pod.Namespace {
			continue
		}
		for _, c := range p.Containers {
			if c.Name == "intercept-proxy" {
				return c.Memory.WorkingSetBytes
			}
		}
	}
	t.Fatalf("no memory figure for the sidecar of %s", pod.Name)
	return 0
}

// A forged record in the Service's annotation that names an unrelated
// Deployment makes intercept and close refuse with what to check, and
// neither the Service nor that Deployment changes.
func TestForgedRecordChangesNothing(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	deployDemo(t, ns, demoOptions{name: "payments", replicas: 1})
	ctx := context.Background()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forged := `{"version":1,"id":"f0rged","service":"demo","workload":"demo","copy":"payments","port":"http",` +
		`"selector":{"app":"payments"},"plan":{"appPort":8080,"sidecarPort":18080,"controlPort":18081,"targetPortName":"http"},"created":"2026-12-01T00:00:00Z"}`
	svc.Annotations = map[string]string{"intercept.kubectl.dev/session": forged}
	if _, err := cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svcBefore, _ := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	payBefore, _ := cs.AppsV1().Deployments(ns).Get(ctx, "payments", metav1.GetOptions{})
	m := newMachine(t)
	for _, args := range [][]string{
		{"svc/demo", "-n", ns, "-l", "3000", "-x", "x-dev:forged", "-w", "--timeout", "30s"},
		{"close", "svc/demo", "-n", ns},
	} {
		out := m.run(t, false, args...)
		if !strings.Contains(out, "names deployment payments") || !strings.Contains(out, "nothing was changed") {
			t.Fatalf("%v with a forged record:\n%s", args, out)
		}
	}
	svcAfter, _ := cs.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	payAfter, _ := cs.AppsV1().Deployments(ns).Get(ctx, "payments", metav1.GetOptions{})
	if svcAfter.ResourceVersion != svcBefore.ResourceVersion || payAfter.ResourceVersion != payBefore.ResourceVersion {
		t.Fatal("a forged record led to a change of the Service or of deployment payments")
	}
}
