package portforward

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// relayPods is a fake copy whose sidecars have peer ports: each pod is a
// loopback address (127.0.0.N), its sidecar one tunnel.Server for the
// port-forwards and the peer port alike.
type relayPods struct {
	*pods
	port    int
	mu      sync.Mutex
	servers map[string]*tunnel.Server
	broken  map[string]bool // pods whose port-forward fails
	ctx     context.Context
}

func newRelayPods(t *testing.T, names ...string) *relayPods {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &relayPods{pods: newPods(), servers: map[string]*tunnel.Server{}, broken: map[string]bool{}, ctx: ctx}
	r.port, _ = strconv.Atoi(port)
	for i, n := range names {
		r.add(t, n, i+2, true)
	}
	return r
}

// add starts pod name at 127.0.0.n, listening on the peer port if peer.
func (r *relayPods) add(t *testing.T, name string, n int, peer bool) {
	t.Helper()
	pod := copyPod(name)
	pod.Status.PodIP = fmt.Sprintf("127.0.0.%d", n)
	pod.CreationTimestamp = metav1.Unix(int64(1000+n), 0)
	r.pods.mu.Lock()
	r.tables[name] = &table{}
	srv := &tunnel.Server{Pod: name, Routes: r.tables[name], Admitted: &tunnel.Admissions{}}
	r.pods.mu.Unlock()
	r.mu.Lock()
	r.servers[name] = srv
	r.mu.Unlock()
	if peer {
		ln, err := net.Listen("tcp", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(r.port)))
		if err != nil {
			t.Fatal(err)
		}
		go srv.ServePeers(r.ctx, ln)
	}
	if err := r.cs.Tracker().Add(pod); err != nil {
		t.Fatal(err)
	}
}

// dial is a port-forward to the pod's sidecar.
func (r *relayPods) dial(ctx context.Context, pod string) (net.Conn, error) {
	r.mu.Lock()
	srv, ok := r.servers[pod]
	broken := r.broken[pod]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("pod %s not found", pod)
	}
	if broken {
		return nil, fmt.Errorf("port-forward to pod %s: the kubelet refused", pod)
	}
	r.pods.mu.Lock()
	r.dials[pod]++
	r.pods.mu.Unlock()
	a, b := net.Pipe()
	go srv.ServeConn(r.ctx, b)
	return a, nil
}

func (r *relayPods) dialCount(pod string) int {
	r.pods.mu.Lock()
	defer r.pods.mu.Unlock()
	return r.dials[pod]
}

// One tunnel, to the oldest pod; the route reaches every pod through it
// after one short admission each. A pod the relay cannot reach gets a
// tunnel of its own, with a warning. When the relay's pod goes, another
// takes over and every pod still holds the route; when the CLI stops,
// every pod drops it.
var corev1Pods = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

func TestFollowerRelays(t *testing.T) {
	r := newRelayPods(t, "a", "b", "c")
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123"}
	f := r.follower(alice)
	f.Dial = func(ctx context.Context, pod string) (io.ReadWriteCloser, error) { return r.dial(ctx, pod) }
	f.PeerPort = r.port
	var logMu sync.Mutex
	var logs []string
	f.Log = func(format string, args ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		logMu.Unlock()
	}
	said := func(s string) bool {
		logMu.Lock()
		defer logMu.Unlock()
		for _, l := range logs {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}
	stop := run(t, f)
	for _, p := range []string{"a", "b", "c"} {
		eventually(t, "pod "+p+" holds the route", func() bool { return holds(r.table(p), alice) })
	}
	eventually(t, "3 pods registered", func() bool { return len(f.Registered()) == 3 })
	if n := r.dialCount("a"); n != 1 {
		t.Errorf("%d port-forwards to the relay a, want 1", n)
	}
	for _, p := range []string{"b", "c"} {
		if n := r.dialCount(p); n != 1 {
			t.Errorf("%d port-forwards to pod %s, want 1 (the admission)", n, p)
		}
	}

	// d listens on no peer port (a NetworkPolicy drops the relay's dial).
	r.add(t, "d", 5, false)
	eventually(t, "pod d holds the route", func() bool { return holds(r.table("d"), alice) })
	if !said("warning: pod d gets a tunnel of its own") {
		t.Errorf("no warning for pod d: %q", logs)
	}

	// The relay's pod goes: b (the oldest left) relays.
	if err := r.cs.Tracker().Delete(corev1Pods, "shop", "a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b relays", func() bool { return said("pod b relays the route now") })
	defer func() {
		if t.Failed() {
			t.Logf("the follower said: %q", logs)
		}
	}()
	eventually(t, "c holds the route through b", func() bool { return said("route up: pod c (relayed by pod b)") })
	for _, p := range []string{"b", "c", "d"} {
		if !holds(r.table(p), alice) {
			t.Errorf("pod %s lost the route when the relay moved", p)
		}
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"b", "c", "d"} {
		eventually(t, "pod "+p+" drops the route", func() bool { return !holds(r.table(p), alice) })
	}
}

// A relay whose port-forward keeps failing while its pod looks healthy is
// avoided: after three failures another pod relays, and every other pod
// holds the route again.
func TestFollowerMovesOffAFailingRelay(t *testing.T) {
	r := newRelayPods(t, "a", "b", "c")
	r.broken["a"] = true
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123"}
	f := r.follower(alice)
	f.Dial = func(ctx context.Context, pod string) (io.ReadWriteCloser, error) { return r.dial(ctx, pod) }
	f.PeerPort = r.port
	stop := run(t, f)
	defer stop()
	deadline := time.Now().Add(15 * time.Second)
	for !holds(r.table("b"), alice) || !holds(r.table("c"), alice) {
		if time.Now().After(deadline) {
			t.Fatalf("b and c do not hold the route 15 s after their relay's port-forward began failing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	relay := f.relay
	f.mu.Unlock()
	if relay == "a" {
		t.Fatal("the failing pod a is still the relay")
	}
}
