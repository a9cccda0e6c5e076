//go:build e2e

package e2e

// The suite's traffic leaves from a pod inside the cluster, as any caller's
// does: TestMain starts one client pod (the demo image with
// --tunnel-listen) in a namespace of its own. Every connection a test opens
// to a cluster address (a ClusterIP, a pod IP, a Service's DNS name) is a
// port-forward to that pod (the plugin's own dialer, one per connection)
// carrying CONNECT addr, and the pod dials the address itself. What travels
// inside is the test's own: HTTP/1.1, h2c, gRPC or raw TCP, on connections
// it may keep alive. Only loopback (the laptop side: the plugin's previews,
// the test's own servers) is dialed from this host directly. So the suite
// needs nothing of this host's network beyond the API server, and runs on
// kind or any cluster as on the local one.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	localpf "github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
)

// tunnelPort is where the client pod serves CONNECT, on its loopback only.
const tunnelPort = 7070

// inCluster is the suite's client pod, started by TestMain.
var inCluster *clientPod

// clientPod is a pod that opens the suite's connections from inside the
// cluster, each reached through a port-forward of its own.
type clientPod struct {
	cfg     *rest.Config
	ns, pod string
}

// startClientPod creates the client pod in a namespace of its own, waits
// until it is ready and its tunnel answers.
func startClientPod(cfg *rest.Config) (*clientPod, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := make([]byte, 3)
	rand.Read(b)
	c := &clientPod{cfg: cfg, ns: "e2e-client-" + hex.EncodeToString(b), pod: "client"}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating the client pod's namespace: %w", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: c.pod, Labels: map[string]string{"app": "e2e-client"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(1)),
			Containers: []corev1.Container{{
				Name:            "client",
				Image:           demoImage,
				ImagePullPolicy: demoPullPolicy,
				Args:            []string{fmt.Sprintf("--tunnel-listen=127.0.0.1:%d", tunnelPort), "--tcp-listen=", "--raw-listen=", "--pod=e2e-client"},
				Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(c.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		c.delete()
		return nil, fmt.Errorf("creating the client pod: %w", err)
	}
	var ip, state string
	for ip == "" {
		p, err := cs.CoreV1().Pods(c.ns).Get(ctx, c.pod, metav1.GetOptions{})
		if err == nil && podReady(p) {
			ip = p.Status.PodIP
			break
		}
		if err == nil {
			state = string(p.Status.Phase)
			for _, st := range p.Status.ContainerStatuses {
				if st.State.Waiting != nil {
					state += ", " + st.State.Waiting.Reason + ": " + st.State.Waiting.Message
				}
			}
		}
		select {
		case <-ctx.Done():
			c.delete()
			return nil, fmt.Errorf("the client pod %s/%s is not ready after 2 minutes (image %s; %s)", c.ns, c.pod, demoImage, state)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The tunnel works end to end: the pod dials its own HTTP port.
	conn, err := c.dial(ctx, net.JoinHostPort(ip, "8080"))
	if err != nil {
		c.delete()
		return nil, err
	}
	conn.Close()
	return c, nil
}

// delete deletes the client pod's namespace.
func (c *clientPod) delete() {
	_ = cs.CoreV1().Namespaces().Delete(context.Background(), c.ns, metav1.DeleteOptions{})
}

// dial opens a connection from the client pod to addr: a port-forward
// connection of its own to the pod's tunnel (one per connection, so a
// connection the test leaves unread holds up no other), and CONNECT addr
// through it.
func (c *clientPod) dial(ctx context.Context, addr string) (net.Conn, error) {
	life, end := context.WithCancel(context.Background())
	stopDial := context.AfterFunc(ctx, end)
	stream, err := localpf.DialPod(life, c.cfg, c.ns, c.pod, tunnelPort)
	if err != nil {
		end()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("dial %s from the client pod %s/%s: %w", addr, c.ns, c.pod, err)
	}
	// A pipe gives the stream a net.Conn's deadlines.
	conn, pod := net.Pipe()
	go func() {
		_, _ = io.Copy(pod, stream)
		pod.Close()
		end()
	}()
	go func() {
		_, _ = io.Copy(stream, pod)
		stream.Close()
		end()
	}()
	// The handshake ends with the context; without a deadline of its own,
	// within the pod's dial timeout and a margin.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	br := bufio.NewReader(conn)
	_, err = fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", addr, addr)
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("dial %s from the client pod %s/%s: %w", addr, c.ns, c.pod, err)
	}
	// A CONNECT's 200 has no body (the tunnel follows the head); a
	// refusal's body is the reason.
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		reason, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		conn.Close()
		return nil, &podDialError{addr: addr, from: c.ns + "/" + c.pod, reason: strings.TrimSpace(string(reason))}
	}
	if !stopDial() {
		conn.Close()
		return nil, fmt.Errorf("dial %s from the client pod %s/%s: %w", addr, c.ns, c.pod, ctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	return &tunnelConn{Conn: conn, r: br}, nil
}

// podDialError is the client pod's own dial failing: refused, timed out,
// no such host.
type podDialError struct{ addr, from, reason string }

func (e *podDialError) Error() string {
	return fmt.Sprintf("dial %s from the client pod %s: %s", e.addr, e.from, e.reason)
}

// Unwrap lets errors.Is(err, syscall.ECONNREFUSED) hold for a refusal, as
// for a dial from this host.
func (e *podDialError) Unwrap() error {
	if strings.Contains(e.reason, "connection refused") {
		return syscall.ECONNREFUSED
	}
	return nil
}

// tunnelConn is a connection through the tunnel: its first bytes may
// already sit in the reader that read the CONNECT answer. It has no
// half-close: closing ends both ways.
type tunnelConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *tunnelConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// dialCluster is the suite's dialer: a connection to a cluster address
// leaves from the client pod; one to loopback (this host's own servers,
// the plugin's local ports) is dialed here.
func dialCluster(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return inCluster.dial(ctx, addr)
}

// dialTimeout is net.DialTimeout for the suite: see dialCluster.
func dialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return dialCluster(ctx, "tcp", addr)
}

// clusterTransport makes tr dial through dialCluster and returns it.
func clusterTransport(tr *http.Transport) *http.Transport {
	tr.DialContext = dialCluster
	return tr
}

// httpClient is an HTTP/1.1 client with the timeout whose connections
// leave from the client pod (kept alive, as http.Client's are).
func httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: clusterTransport(&http.Transport{})}
}

// dialGRPC is dialCluster for grpc.WithContextDialer.
func dialGRPC(ctx context.Context, addr string) (net.Conn, error) {
	return dialCluster(ctx, "tcp", addr)
}
