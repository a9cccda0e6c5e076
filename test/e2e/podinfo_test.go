//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// podinfo (github.com/stefanprodan/podinfo) is a web app we did not write:
// its /api/echo handler posts the request's body to every --backend-url and
// answers with the backends' answers, a JSON array of strings. A frontend
// podinfo in front of a backend podinfo is a two-tier app as users run it.
//
// Its frontend passes on to the backend only x-request-id, the B3 headers
// (x-b3-*) and x-ot-span-context, copied by name; W3C traceparent and
// baggage only when it runs with --otel-service-name (then its OpenTelemetry
// transport injects them). So the marker that crosses a podinfo frontend as
// it is deployed (podinfo's own deploy/webapp) is a header among those:
// x-request-id.
const (
	podinfoMarkerName  = "X-Request-Id"
	podinfoMarkerValue = "dev-alice"
	podinfoPort        = 9898
)

// podinfoImage is the image hack/podinfo/build.sh builds: PODINFO_IMAGE, else
// localhost/kubectl-intercept/podinfo:<the version pinned in hack/podinfo/go.mod>.
func podinfoImage(t *testing.T) string {
	t.Helper()
	if img := os.Getenv("PODINFO_IMAGE"); img != "" {
		return img
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "hack", "podinfo", "go.mod"))
	if err != nil {
		t.Fatalf("reading podinfo's pin: %v (or set PODINFO_IMAGE)", err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/stefanprodan/podinfo (v\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("hack/podinfo/go.mod pins no github.com/stefanprodan/podinfo version")
	}
	return "localhost/kubectl-intercept/podinfo:" + string(m[1])
}

// deployPodinfo creates a podinfo Deployment and its Service (port 9898,
// targetPort "http") named name, with args after the port's, and waits
// until its pods are ready.
func deployPodinfo(t *testing.T, ns, name, image string, replicas int32, args ...string) *corev1.Service {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To(int64(5)),
					Containers: []corev1.Container{{
						Name:            "podinfo",
						Image:           image,
						ImagePullPolicy: demoPullPolicy,
						Args:            append([]string{"--port=" + strconv.Itoa(podinfoPort), "--level=info"}, args...),
						Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: podinfoPort}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	ctx := t.Context()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: podinfoPort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, name+" ready", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == replicas && d.Status.UpdatedReplicas == replicas
	})
	return svc
}

// podinfoCaller posts to the frontend's /api/echo from the client pod.
type podinfoCaller struct {
	url string
	c   *http.Client
}

// podinfoBody is what the test posts: the real backend echoes it.
const podinfoBody = "hello from the client pod"

// whoAnswered posts once through the frontend (with the marker when
// marked) and says who answered behind it: "laptop", "backend" (a podinfo
// of the cluster, which echoes the body) or what the frontend said.
func (p podinfoCaller) whoAnswered(marked bool) (who string, laptopSaw http.Header, err error) {
	if marked {
		return p.send(header(podinfoMarkerName, podinfoMarkerValue))
	}
	return p.send(nil)
}

// send posts once through the frontend with the headers h; see whoAnswered.
func (p podinfoCaller) send(h http.Header) (who string, laptopSaw http.Header, err error) {
	req, err := http.NewRequest(http.MethodPost, p.url, strings.NewReader(podinfoBody))
	if err != nil {
		return "", nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := p.c.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	var answers []string
	if err := json.Unmarshal(body, &answers); err != nil || len(answers) != 1 {
		return "", nil, fmt.Errorf("the frontend answered %d %q, not the one backend's answer", resp.StatusCode, body)
	}
	if answers[0] == podinfoBody {
		return "backend", nil, nil
	}
	var e echo
	if json.Unmarshal([]byte(answers[0]), &e) == nil && e.Pod != "" {
		h := http.Header{}
		for k, v := range e.Headers {
			h.Set(k, v)
		}
		return e.Pod, h, nil
	}
	return answers[0], nil, nil
}

// podinfoLoop is a user clicking through the frontend with the marker every
// 200 ms: the frontend's pool (Go's default transport) keeps its
// connection to a backend pod alive between the clicks.
type podinfoLoop struct {
	mu      sync.Mutex
	answers []answer
}

func (l *podinfoLoop) since(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, a := range l.answers {
		if a.at.After(t) {
			out = append(out, a.pod)
		}
	}
	return out
}

func clickThrough(t *testing.T, p podinfoCaller) *podinfoLoop {
	l := &podinfoLoop{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3000 && ctx.Err() == nil; i++ { // 10 minutes at most
			who, _, err := p.whoAnswered(true)
			if err != nil {
				who = "error: " + err.Error()
			}
			l.mu.Lock()
			l.answers = append(l.answers, answer{time.Now(), who})
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// A developer intercepts podinfo's backend behind podinfo's frontend with
// the header the frontend passes on: their requests clicked through the
// frontend reach the laptop, everyone else's the backend. A frontend that
// already holds a connection to a backend pod keeps it: without
// --take-over the plugin says so and the marked requests stay in the
// cluster; with --take-over they reach the laptop within 10 s of active.
// Close leaves the namespace as it was.
func TestPodinfoFrontendToBackend(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	image := podinfoImage(t)
	deployPodinfo(t, ns, "backend", image, 2)
	frontend := deployPodinfo(t, ns, "frontend", image, 1,
		fmt.Sprintf("--backend-url=http://backend:%d/echo", podinfoPort))
	before := takeSnapshot(t, ns, "backend")
	port := laptop(t, laptopPod)
	run := laptopCLI(t)
	caller := podinfoCaller{
		url: fmt.Sprintf("http://%s:%d/api/echo", frontend.Spec.ClusterIP, podinfoPort),
		c:   httpClient(10 * time.Second),
	}
	t.Cleanup(caller.c.CloseIdleConnections)
	intercept := []string{"svc/backend", "-n", ns, "-l", strconv.Itoa(port),
		"-x", strings.ToLower(podinfoMarkerName) + ":" + podinfoMarkerValue, "--detach"}

	// 1. The frontend has not called the backend yet: marked requests reach
	// the laptop, with the marker the frontend passed on; others the backend.
	run(intercept...)
	active := time.Now()
	var saw http.Header
	waitFor(t, 30*time.Second, "a marked request through the frontend on the laptop", func() bool {
		who, h, err := caller.whoAnswered(true)
		saw = h
		return err == nil && who == laptopPod
	})
	t.Logf("a new frontend: the marked request reached the laptop %s after active", time.Since(active).Round(100*time.Millisecond))
	if got := saw.Get(podinfoMarkerName); got != podinfoMarkerValue {
		t.Fatalf("the laptop got %s %q from the frontend, want %q", podinfoMarkerName, got, podinfoMarkerValue)
	}
	for i := 0; i < 5; i++ {
		if who, _, err := caller.whoAnswered(false); err != nil || who != "backend" {
			t.Fatalf("an unmarked request through the frontend: answered by %q (%v), want the backend", who, err)
		}
		if who, _, err := caller.whoAnswered(true); err != nil || who != laptopPod {
			t.Fatalf("a marked request through the frontend: answered by %q (%v), want the laptop", who, err)
		}
	}
	run("close", "svc/backend", "-n", ns)

	// 2. A user clicks through the frontend: its pool keeps a connection
	// to a backend pod between the clicks.
	clicks := clickThrough(t, caller)
	waitFor(t, 30*time.Second, "the clicks answered by the backend", func() bool {
		got := clicks.since(time.Now().Add(-2 * time.Second))
		return len(got) >= 2 && got[len(got)-1] == "backend"
	})

	// Without --take-over the connection stays on the backend's pod, and
	// the plugin says what happens and what to do.
	out := run(intercept...)
	active = time.Now()
	for _, want := range []string{"kept-alive", "--take-over"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the intercept's output does not say %q:\n%s", want, out)
		}
	}
	waitFor(t, 30*time.Second, "5 s of clicks after active", func() bool { return len(clicks.since(active.Add(5*time.Second))) > 0 })
	got := clicks.since(active)
	for _, who := range got {
		if who == laptopPod {
			t.Fatal("without --take-over a marked click reached the laptop over the frontend's kept connection: the test does not show the problem")
		}
	}
	t.Logf("without --take-over, %d marked clicks in the 5 s after active reached the backend, none the laptop", len(got))
	run("close", "svc/backend", "-n", ns)

	// With --take-over: the laptop within 10 s of active, while unmarked
	// requests are answered by the copy of the backend.
	takeOver := append(append([]string{}, intercept...), "--take-over")
	out = run(takeOver...)
	active = time.Now()
	if !strings.Contains(out, "scaling deployment/backend to zero") {
		t.Fatalf("the take-over is not shown:\n%s", out)
	}
	waitFor(t, 10*time.Second, "the marked clicks on the laptop", func() bool {
		got := clicks.since(active)
		return len(got) > 0 && got[len(got)-1] == laptopPod
	})
	t.Logf("with --take-over, the marked clicks reached the laptop %s after active", time.Since(active).Round(100*time.Millisecond))
	if who, _, err := caller.whoAnswered(false); err != nil || who != "backend" {
		t.Fatalf("an unmarked request through the frontend during the take-over: answered by %q (%v), want the backend's copy", who, err)
	}
	run("close", "svc/backend", "-n", ns)

	d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "backend", metav1.GetOptions{})
	if err != nil || ptr.Deref(d.Spec.Replicas, 0) != 2 {
		t.Fatalf("the backend after close: %v replicas, %v; want 2 back", d.Spec.Replicas, err)
	}
	waitFor(t, 60*time.Second, "the backend's 2 pods ready again", func() bool {
		d, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "backend", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2
	})
	assertRestored(t, ns, "backend", before)
	waitFor(t, 30*time.Second, "the clicks answered by the backend again", func() bool {
		got := clicks.since(time.Now().Add(-time.Second))
		return len(got) > 0 && got[len(got)-1] == "backend"
	})
}

// A W3C baggage member crosses a podinfo frontend only when the frontend
// runs with OpenTelemetry on (--otel-service-name): podinfo then installs
// the W3C propagators and its client transport passes the baggage on.
// A frontend without it (podinfo's default) drops it: those requests stay
// in the cluster.
func TestPodinfoBaggageNeedsItsTracing(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	image := podinfoImage(t)
	backendURL := fmt.Sprintf("--backend-url=http://backend:%d/echo", podinfoPort)
	deployPodinfo(t, ns, "backend", image, 1)
	plain := deployPodinfo(t, ns, "frontend", image, 1, backendURL)
	traced := deployPodinfo(t, ns, "traced", image, 1, backendURL, "--otel-service-name=traced")
	before := takeSnapshot(t, ns, "backend")
	port := laptop(t, laptopPod)
	run := laptopCLI(t)
	client := httpClient(10 * time.Second)
	t.Cleanup(client.CloseIdleConnections)
	through := func(svc *corev1.Service) podinfoCaller {
		return podinfoCaller{url: fmt.Sprintf("http://%s:%d/api/echo", svc.Spec.ClusterIP, podinfoPort), c: client}
	}
	// The marked requests carry the member among others, as a traced
	// caller's baggage does.
	bag := header("Baggage", "team=shop,dev=alice")

	run("svc/backend", "-n", ns, "-l", strconv.Itoa(port), "--baggage", "dev=alice", "--detach")
	var saw http.Header
	waitFor(t, 30*time.Second, "a request with the baggage through the traced frontend on the laptop", func() bool {
		who, h, err := through(traced).send(bag)
		saw = h
		return err == nil && who == laptopPod
	})
	if got := saw.Get("Baggage"); !strings.Contains(got, "dev=alice") {
		t.Fatalf("the laptop got baggage %q from the traced frontend, want dev=alice in it", got)
	}
	for i := 0; i < 3; i++ {
		if who, _, err := through(traced).send(nil); err != nil || who != "backend" {
			t.Fatalf("a request without baggage through the traced frontend: answered by %q (%v), want the backend", who, err)
		}
		if who, h, err := through(plain).send(bag); err != nil || who != "backend" {
			t.Fatalf("a request with the baggage through the frontend without tracing: answered by %q (%v, headers %v), want the backend: podinfo without --otel-service-name drops baggage", who, err, h)
		}
	}
	run("close", "svc/backend", "-n", ns)
	assertRestored(t, ns, "backend", before)
}
