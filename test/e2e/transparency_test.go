//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/demo"
)

// serveLocal runs serve (one of the demo's raw listeners) on a loopback
// port of this machine, answering as the laptop.
func serveLocal(t *testing.T, serve func(*demo.Server, net.Listener) error) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serve(demo.NewServer(demo.Config{Pod: laptopPod}), ln)
	return ln.Addr().(*net.TCPAddr).Port
}

// rawHead sends head on a new connection to addr and returns the head the
// raw echo behind it received, and who answered.
func rawHead(t *testing.T, addr, head string) (string, string) {
	t.Helper()
	c, err := dialTimeout(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, head)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s %q %v", addr, resp.Status, body, err)
	}
	return string(body), resp.Header.Get(demo.PodHeader)
}

// headerValues is a head's fields by lower-cased name, values in order.
func headerValues(head string) map[string][]string {
	fields := map[string][]string{}
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if name, value, ok := strings.Cut(line, ":"); ok {
			name = strings.ToLower(name)
			fields[name] = append(fields[name], strings.TrimSpace(value))
		}
	}
	return fields
}

// What the app receives is what the caller sent. To the in-cluster app
// the sidecar passes the request head byte for byte: names in their case
// and order, duplicates, X-Forwarded-For the caller set, nothing added,
// exactly as without the sidecar. To the laptop, through the tunnel and
// the developer's end (Go's HTTP stack), every name, value and duplicate
// arrives in order and nothing is added; names' case and the order of
// different names are Go's.
func TestTransparentHeaders(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "raw", Port: 82, TargetPort: intstr.FromInt32(9191), Protocol: corev1.ProtocolTCP})
	}})
	pods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=demo"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("demo pods: %v", err)
	}
	head := func(dev string) string {
		return "GET /orders?id=7&sort=a;b HTTP/1.1\r\n" +
			"Host: demo.shop.svc\r\n" +
			"x-dev: " + dev + "\r\n" +
			"X-Mixed-CASE: One\r\n" +
			"x-dup: 1\r\n" +
			"X-Forwarded-For: 198.51.100.7\r\n" +
			"x-dup: 2\r\n" +
			"accept: */*\r\n" +
			"\r\n"
	}
	direct, _ := rawHead(t, net.JoinHostPort(pods.Items[0].Status.PodIP, "9191"), head("bob"))
	if direct != head("bob") {
		t.Fatalf("the app itself saw %q, want what was sent", direct)
	}

	p := startPlugin(t, "svc/demo", "-n", ns, "-r", "82", "-x", "x-dev:alice",
		"-l", strconv.Itoa(serveLocal(t, (*demo.Server).ServeRawHead)))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "82")

	for i := 0; i < 4; i++ {
		got, pod := rawHead(t, addr, head("bob"))
		if !strings.HasPrefix(pod, "demo-") || got != direct {
			t.Errorf("to cluster: %q saw\n%q\nwithout the sidecar the app saw\n%q", pod, got, direct)
		}
	}
	got, pod := rawHead(t, addr, head("alice"))
	if pod != laptopPod {
		t.Fatalf("to laptop: answered by %q", pod)
	}
	if line, _, _ := strings.Cut(got, "\r\n"); line != "GET /orders?id=7&sort=a;b HTTP/1.1" {
		t.Errorf("to laptop: request line %q", line)
	}
	if want := headerValues(head("alice")); !reflect.DeepEqual(headerValues(got), want) {
		t.Errorf("to laptop: the app saw fields %v, want %v", headerValues(got), want)
	}
	t.Logf("to laptop, the app saw:\n%s", got)
	p.interrupt(t)
}

// -a on a port that speaks no HTTP (a line protocol): every connection goes
// through the tunnel to the laptop as it is, while the Service's other port
// keeps being served in the cluster.
func TestAllTrafficRawTCP(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "tcp", Port: 9090, TargetPort: intstr.FromString("tcp"), Protocol: corev1.ProtocolTCP})
	}})
	before := takeSnapshot(t, ns, "demo")
	p := startPlugin(t, "svc/demo", "-n", ns, "-r", "tcp", "-a", "-l", strconv.Itoa(serveLocal(t, (*demo.Server).ServeLineEcho)))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "9090")
	waitFor(t, 30*time.Second, "a connection to reach the laptop", func() bool {
		return lineEcho(t, addr, "ping") == laptopPod+": ping"
	})
	for i := 0; i < 10; i++ {
		line := fmt.Sprintf("line %d", i)
		if got := lineEcho(t, addr, line); got != laptopPod+": "+line {
			t.Fatalf("connection %d: %q, want the laptop's echo", i, got)
		}
	}
	if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
		t.Errorf("the HTTP port was answered by %q, want the copy in the cluster", got)
	}
	p.interrupt(t)
	assertRestored(t, ns, "demo", before)
}
