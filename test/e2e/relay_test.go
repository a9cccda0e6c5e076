//go:build e2e

package e2e

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// relayOf returns the pod a CLI holds its one tunnel to, as it said last.
func relayOf(t *testing.T, p *pluginProc) string {
	t.Helper()
	m := regexp.MustCompile(`route up: pod (\S+) \(its own tunnel\)`).FindAllStringSubmatch(p.output(), -1)
	if len(m) == 0 {
		t.Fatalf("the CLI opened no tunnel:\n%s", p.output())
	}
	return m[len(m)-1][1]
}

// apiConns counts the TCP connections process pid holds open to the API
// server, from /proc (the process's sockets and the host's TCP table).
func apiConns(t *testing.T, pid int) int {
	t.Helper()
	u, err := url.Parse(apiHost)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		t.Fatalf("resolving the API server %s: %v", u.Hostname(), err)
	}
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" || !inodes[fields[9]] { // 01: established
				continue
			}
			if ap, ok := procAddr(fields[2]); ok && strconv.Itoa(int(ap.Port())) == port {
				for _, ip := range ips {
					if a, _ := netip.AddrFromSlice(ip); a.Unmap() == ap.Addr().Unmap() {
						n++
					}
				}
			}
		}
		f.Close()
	}
	return n
}

// procAddr decodes /proc/net/tcp's ADDR:PORT (the address's 32-bit words in
// host order, little-endian here).
func procAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(h)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if !ok || err != nil || err2 != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a, uint16(port)), true
}

// everyPodRoutes sends n requests with each developer's header straight to
// each copy pod's sidecar and fails unless every one reached its developer.
func everyPodRoutes(t *testing.T, pods []corev1.Pod, n int, devs ...string) {
	t.Helper()
	for _, dev := range devs {
		reached := 0
		for _, pod := range pods {
			data, _ := sidecarPorts(t, pod)
			for range n {
				e, code, err := get("http://"+pod.Status.PodIP+":"+data+"/", header("x-dev", dev))
				if err != nil || code != 200 || e.Pod != dev {
					t.Fatalf("%s's request to pod %s reached %q (status %d, %v)", dev, pod.Name, e.Pod, code, err)
				}
				reached++
			}
		}
		t.Logf("%s: %d of %d requests reached their laptop, over %d pods", dev, reached, n*len(pods), len(pods))
	}
}

// A copy of 6 replicas and 3 developers: each CLI holds one tunnel (to its
// relay) and at most 2 connections to the API server, yet every
// developer's header reaches only them on every pod. A developer killed
// with -9 leaves every pod within 2 s. Deleting a relay's pod moves its
// developer's routes to another relay within 2 s, and requests through
// the Service meanwhile all succeed.
func TestOneTunnelPerDeveloper(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{replicas: 6})
	before := takeSnapshot(t, ns, "demo")
	devs := []string{"alice", "bob", "carol"}
	procs := map[string]*pluginProc{}
	for _, dev := range devs {
		p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptop(t, dev)), "-x", "x-dev:"+dev, "-w")
		p.waitOutput(t, "Intercepting service", 2*time.Minute)
		procs[dev] = p
	}
	pods := readyCopyPods(t, theCopy(t, ns))
	if len(pods) != 6 {
		t.Fatalf("%d ready copy pods, want 6", len(pods))
	}
	for _, dev := range devs {
		p := procs[dev]
		waitFor(t, 30*time.Second, dev+"'s route on 6 pods", func() bool { return strings.Count(p.output(), "route up:") >= 6 })
		if own := strings.Count(p.output(), "(its own tunnel)"); own != 1 || strings.Contains(p.output(), "warning:") {
			t.Fatalf("%s's CLI holds %d tunnels, want 1 (a relay for the other pods):\n%s", dev, own, p.output())
		}
		// The admissions' short port-forwards are over once every route is up.
		var n int
		waitFor(t, 15*time.Second, dev+"'s CLI down to 2 API-server connections", func() bool {
			n = apiConns(t, p.cmd.Process.Pid)
			return n <= 2
		})
		t.Logf("%s's CLI: relay %s, %d connection(s) to the API server", dev, relayOf(t, p), n)
	}
	everyPodRoutes(t, pods, 10, devs...)

	// kill -9: carol's route leaves every pod within 2 s.
	procs["carol"].cmd.Process.Kill()
	procs["carol"].cmd.Wait()
	killed := time.Now()
	waitFor(t, 2*time.Second, "carol's route to leave every pod", func() bool {
		for _, pod := range pods {
			data, _ := sidecarPorts(t, pod)
			e, code, err := get("http://"+pod.Status.PodIP+":"+data+"/", header("x-dev", "carol"))
			if err != nil || code != 200 || !strings.HasPrefix(e.Pod, "demo-") {
				return false
			}
		}
		return true
	})
	t.Logf("carol's route left all 6 pods %s after kill -9", time.Since(killed).Round(time.Millisecond))
	everyPodRoutes(t, pods, 2, "alice", "bob")

	// Delete alice's relay under load through the Service.
	relay := relayOf(t, procs["alice"])
	var sent, failed, misrouted atomic.Int64
	var lastMiss atomic.Int64 // unix nanos of the last misrouted request
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, dev := range []string{"alice", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				e, code, err := get(serviceURL(svc), header("x-dev", dev))
				switch {
				case err != nil || code != 200:
					failed.Add(1)
					t.Logf("%s's request: status %d, %v", dev, code, err)
				case e.Pod != dev:
					misrouted.Add(1)
					lastMiss.Store(time.Now().UnixNano())
				}
			}
		}()
	}
	time.Sleep(time.Second)
	deleted := time.Now()
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), relay, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	procs["alice"].waitOutput(t, "relays the route now", 30*time.Second)
	newRelay := regexp.MustCompile(`pod (\S+) relays the route now`).FindStringSubmatch(procs["alice"].output())[1]
	if newRelay == relay {
		t.Fatalf("the deleted pod %s is still the relay", relay)
	}
	waitReplacement(t, ns, relay, 6)
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("relay %s deleted: %s took over; %d requests through the Service, %d failed, %d reached the app instead of their laptop (the last %s after the deletion)",
		relay, newRelay, sent.Load(), failed.Load(), misrouted.Load(), lastMissAfter(lastMiss.Load(), deleted))
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed while the relay's pod went", failed.Load(), sent.Load())
	}
	if last := lastMiss.Load(); last != 0 && time.Unix(0, last).Sub(deleted) > 2*time.Second {
		t.Fatalf("a request reached the app instead of its laptop %s after the relay's pod was deleted", time.Unix(0, last).Sub(deleted))
	}
	everyPodRoutes(t, readyCopyPods(t, theCopy(t, ns)), 2, "alice", "bob")

	for _, dev := range []string{"alice", "bob"} {
		procs[dev].cmd.Process.Signal(syscall.SIGTERM)
		if err := procs[dev].cmd.Wait(); err != nil {
			t.Fatalf("%s's kubectl-intercept: %v\n%s", dev, err, procs[dev].output())
		}
	}
	assertRestored(t, ns, "demo", before)
}

func lastMissAfter(last int64, since time.Time) string {
	if last == 0 {
		return "never"
	}
	return time.Unix(0, last).Sub(since).Round(time.Millisecond).String()
}

// A NetworkPolicy that lets the copy's pods take the Service's traffic but
// not reach each other: a developer who joins then cannot have their route
// relayed, so each other pod gets a tunnel of their own, the CLI says so,
// and their header reaches them on every pod. The local cluster's bridge
// network enforces no policy, so the test adds the rule a
// policy-enforcing network would: new connections to the copy pods' peer
// port are dropped (connections already open stay, as they do under a
// policy change).
func TestRelayBlockedByNetworkPolicyFallsBack(t *testing.T) {
	requireLocalCluster(t, "it enforces the NetworkPolicy with an iptables rule on this host")
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatalf("iptables: %v (hack/cluster.sh installs it)", err)
	}
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{replicas: 3})
	before := takeSnapshot(t, ns, "demo")

	a := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptop(t, "alice")), "-x", "x-dev:alice", "-w")
	a.waitOutput(t, "Intercepting service", 2*time.Minute)
	waitFor(t, 30*time.Second, "alice's route on 3 pods", func() bool { return strings.Count(a.output(), "route up:") >= 3 })
	pods := readyCopyPods(t, theCopy(t, ns))
	peer := peerPort(t, pods[0])
	http := intstr.FromString("http")
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-pod-to-pod", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			// The Service's port only: no other port, from anywhere.
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &http}}}},
		},
	}
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Create(t.Context(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		rule := []string{"FORWARD", "-d", pod.Status.PodIP, "-p", "tcp", "--dport", peer, "-m", "conntrack", "--ctstate", "NEW",
			"-m", "comment", "--comment", "e2e NetworkPolicy " + ns, "-j", "DROP"}
		if out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
	}

	b := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptop(t, "bob")), "-x", "x-dev:bob", "-w")
	b.waitOutput(t, "Intercepting service", 2*time.Minute)
	waitFor(t, 30*time.Second, "bob's route on 3 pods", func() bool { return strings.Count(b.output(), "route up:") >= 3 })
	if !strings.Contains(b.output(), "warning: pod") || !strings.Contains(b.output(), "NetworkPolicy") {
		t.Fatalf("bob's CLI did not say why it opened more tunnels:\n%s", b.output())
	}
	if own := strings.Count(b.output(), "(its own tunnel)"); own != 3 {
		t.Fatalf("bob's CLI holds %d tunnels, want 3 (one per pod):\n%s", own, b.output())
	}
	t.Logf("bob's CLI said: %s", firstLine(b.output(), "warning:"))
	everyPodRoutes(t, pods, 5, "alice", "bob")

	for _, p := range []*pluginProc{a, b} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
		}
	}
	if err := cs.NetworkingV1().NetworkPolicies(ns).Delete(t.Context(), policy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	assertRestored(t, ns, "demo", before)
}

func firstLine(out, containing string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, containing) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// peerPort is the copy pod's sidecar peer port.
func peerPort(t *testing.T, pod corev1.Pod) string {
	t.Helper()
	for _, c := range pod.Spec.Containers {
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--peer=:"); ok {
				return v
			}
		}
	}
	t.Fatalf("pod %s's sidecar has no peer port", pod.Name)
	return ""
}
