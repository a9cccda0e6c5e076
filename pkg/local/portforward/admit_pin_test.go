package portforward

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// pinKey admits key on pod through a port-forward, then holds a relay
// session under it on the pod's peer port, as anything on the pod network
// that knows the key can (a copy's app container, say).
func pinKey(t *testing.T, r *relayPods, pod, addr, key string) *tunnel.Client {
	t.Helper()
	conn, err := r.dial(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Admit(key); err != nil {
		t.Fatalf("admit: %v", err)
	}
	c.Close()
	pc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(pc)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var hello struct{ Nonce string }
	json.Unmarshal(line, &hello)
	nonce, _ := hex.DecodeString(hello.Nonce)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("kubectl-intercept peer v1\x00"))
	m.Write(nonce)
	fmt.Fprintf(pc, "{\"mac\":%q}\n", hex.EncodeToString(m.Sum(nil)))
	if line, err = br.ReadBytes('\n'); err != nil || strings.Contains(string(line), "error") {
		t.Fatalf("proof refused: %s %v", line, err)
	}
	s, err := tunnel.NewClient(pc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A Role holder fills a new pod's admissions before the developer's CLI
// reaches it (keys of their own, each with a relay session that holds a
// route) and registers the developer's header there. The CLI's admit is
// refused; it must not retry it forever without registering: the pod gets
// a tunnel of its own, the CLI meets the squat, says so and contests it.
func TestFullAdmissionsDoNotHideASquat(t *testing.T) {
	r := newRelayPods(t, "a", "b")
	alice := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "alice-owner-key-0123456789abcdef0123"}
	f := r.follower(alice)
	f.Dial = func(ctx context.Context, pod string) (io.ReadWriteCloser, error) { return r.dial(ctx, pod) }
	f.PeerPort = r.port
	log := &logged{}
	f.Log = log.logf
	stop := run(t, f)
	defer stop()
	for _, p := range []string{"a", "b"} {
		eventually(t, "pod "+p+" holds the route", func() bool { return holds(r.table(p), alice) })
	}

	// Pod c comes up (the squatter scaled the copy); its sidecar listens
	// before the pod is in the CLI's watch, and the squatter fills it.
	pod := copyPod("c")
	pod.Status.PodIP = "127.0.0.4"
	pod.CreationTimestamp = metav1.Unix(2000, 0) // the newest: never the relay
	r.pods.mu.Lock()
	r.tables["c"] = &table{}
	srv := &tunnel.Server{Pod: "c", Routes: r.tables["c"], Admitted: &tunnel.Admissions{}}
	r.pods.mu.Unlock()
	r.mu.Lock()
	r.servers["c"] = srv
	r.mu.Unlock()
	addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(r.port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServePeers(r.ctx, ln)
	for i := range tunnel.MaxAdmissions {
		key := fmt.Sprintf("squatter-pin-%04d-0123456789abcdef0123", i)
		pin := pinKey(t, r, "c", addr, key)
		defer pin.Close()
		if _, err := pin.Register(route.Route{Header: "X-Junk", Value: strconv.Itoa(i), Owner: "eve@b", Client: key}); err != nil {
			break // the peer port holds no more sessions: the rest stay free
		}
	}
	conn, err := r.dial(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := tunnel.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	squat := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: "squatter-owner-key-0123456789abcdef0123"}
	if _, err := mc.Register(squat); err != nil {
		t.Fatal(err)
	}
	if err := r.cs.Tracker().Add(pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the squat on pod c found and suspended", func() bool {
		return slices.Contains(f.Conflicts(), "c") && r.table("c").isSuspended(squat.Client)
	})
	if !log.said("held on pod c by another key") {
		t.Fatal("the CLI did not say which pod another key holds")
	}
}
