//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// With 3 replicas every copy pod holds the route: 50 of 50 header requests
// (new connections, spread by kube-proxy) reach the laptop.
func TestEveryReplicaIntercepted(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 3})
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	// Every copy pod holds the route once the CLI has a tunnel to each.
	waitFor(t, 30*time.Second, "tunnels to 3 pods", func() bool { return strings.Count(p.output(), "route up:") >= 3 })
	for i := 0; i < 50; i++ {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
			t.Fatalf("header request %d of 50 reached %q", i+1, got)
		}
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
}

// -a sends every connection to the laptop, whatever its headers.
func TestAllTraffic(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-a")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	waitFor(t, 30*time.Second, "tunnels to 2 pods", func() bool { return strings.Count(p.output(), "route up:") >= 2 })
	// Once seen at the laptop, every connection must go there.
	waitFor(t, 2*time.Second, "a request without header to reach the laptop", func() bool {
		e, code, err := get(serviceURL(svc), nil)
		return err == nil && code == 200 && e.Pod == laptopPod
	})
	for i := 0; i < 10; i++ {
		if got := routedTo(t, svc, nil); got != laptopPod {
			t.Fatalf("request %d without header reached %q, want the laptop", i, got)
		}
	}
	p.interrupt(t)
	assertRestored(t, ns, "demo", before)
}

// -r picks one port of a two-port Service; the other port keeps being
// served by the copy's app container (here a line-echo TCP protocol).
func TestRemotePortOfTwoPortService(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{numericTarget: true, serviceMutate: func(s *corev1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "tcp", Port: 9090, TargetPort: intstr.FromString("tcp"), Protocol: corev1.ProtocolTCP})
	}})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-r", "80")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if !p.printsSoon("all of them move to the copy") {
		t.Errorf("no warning that every port moves to the copy:\n%s", p.output())
	}
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q", got)
	}
	reply := lineEcho(t, net.JoinHostPort(svc.Spec.ClusterIP, "9090"), "ping")
	if !strings.HasPrefix(reply, "demo-intercept-") || !strings.HasSuffix(reply, ": ping") {
		t.Fatalf("the other port answered %q, want the copy's app", reply)
	}
	p.interrupt(t)
	assertRestored(t, ns, "demo", before)
}

func lineEcho(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := dialTimeout(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, line)
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("line echo via %s: %v", addr, err)
	}
	return strings.TrimSpace(reply)
}

// When another tool sets the selector back during the intercept, the CLI
// says so and names it; with nothing listening locally it warns up front.
func TestRevertByAnotherToolIsReported(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", "1") // nothing listens on port 1
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if !p.printsSoon("nothing listens on localhost:1") {
		t.Errorf("no warning about the empty local port:\n%s", p.output())
	}
	patch := `{"spec":{"selector":{"app":"demo","intercept.kubectl.dev/session":null}}}`
	_, err := cs.CoreV1().Services(ns).Patch(context.Background(), "demo", types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "argocd-application-controller"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitOutput(t, `set by "argocd-application-controller"`, 10*time.Second)
	p.interrupt(t)
}

// A browser cannot add a header: a cookie, or a W3C baggage member that
// tracing propagates across services, selects the laptop instead.
func TestCookieAndBaggageRoutes(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	alice, bob := laptop(t, "alice"), laptop(t, "bob")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(alice), "--cookie", "dev=alice", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	if !a.printsSoon(`document.cookie = "dev=alice; path=/"`) {
		t.Fatalf("no browser instructions for the cookie:\n%s", a.output())
	}
	b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(bob), "--baggage", "dev=bob", "-w")
	b.waitOutput(t, "Intercepting service", 2*time.Minute)

	for i := 0; i < 10; i++ {
		if got := routedTo(t, svc, header("Cookie", "theme=dark; dev=alice")); got != "alice" {
			t.Fatalf("a request with cookie dev=alice reached %q", got)
		}
		if got := routedTo(t, svc, header("Cookie", "dev=alice2")); got == "alice" {
			t.Fatal("cookie dev=alice2 reached alice's laptop")
		}
		if got := routedTo(t, svc, header("Baggage", "userId=7, dev=bob;prop=1")); got != "bob" {
			t.Fatalf("a request with baggage dev=bob reached %q", got)
		}
		if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
			t.Fatalf("a plain request reached %q", got)
		}
	}
	for _, p := range []*pluginProc{a, b} {
		p.cmd.Process.Signal(os.Interrupt)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
		}
	}
	assertRestored(t, ns, "demo", before)
}
