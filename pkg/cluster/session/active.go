package session

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// What makes an intercept active: every ready pod of the copy holds the
// developer's route on each port, the Service's endpoints are the copy's,
// and requests to the Service's ClusterIP reach sidecars, many times in a
// row.

// RouteTunnel is the developer's end of one port's tunnels, as WaitActive
// asks it.
type RouteTunnel interface {
	// WaitRegistered waits until n pods of the copy hold the route.
	WaitRegistered(ctx context.Context, n int) error
	// Probe has a sidecar request url with the probe header and returns
	// the pod whose sidecar answered it.
	Probe(url string) (string, error)
}

// ActivePort is one intercepted Service port (by name or number) and its
// tunnel.
type ActivePort struct {
	Port   string
	Tunnel RouteTunnel
}

// ActiveOptions are what WaitActive checks.
type ActiveOptions struct {
	Namespace string
	Started   *Started
	Ports     []ActivePort
	// Timeout bounds each wait.
	Timeout  time.Duration
	Progress Progress
}

// WaitActive waits until every ready pod of the copy holds the route on
// each port (or some of the developer's requests would miss the laptop),
// the Service's endpoints are the copy's, and requests to each port's
// ClusterIP reach sidecars; it returns the pod whose sidecar answered the
// last probe.
func WaitActive(ctx context.Context, cs kubernetes.Interface, o ActiveOptions) (string, error) {
	rec, svc, p := o.Started.Record, o.Started.Service, o.Progress
	if p == nil {
		p = NopProgress{}
	}
	want := 1
	if d, err := cs.AppsV1().Deployments(o.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{}); err == nil && d.Status.ReadyReplicas > 1 {
		want = int(d.Status.ReadyReplicas)
	}
	done := p.Step(fmt.Sprintf("putting the route on the copy's %d pod(s)", want))
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	var err error
	for _, ap := range o.Ports {
		if err = ap.Tunnel.WaitRegistered(wctx, want); err != nil {
			break
		}
	}
	cancel()
	done(err)
	if err != nil {
		return "", err
	}
	done = p.Step("checking that service " + svc.Name + " reaches the sidecars only")
	err = WaitEndpointsOnCopy(ctx, cs, o.Namespace, svc.Name, rec, o.Timeout)
	var pod string
	for _, ap := range o.Ports {
		if err != nil {
			break
		}
		pod, err = probeActive(ctx, ap.Tunnel, svc, ap.Port, o.Timeout)
	}
	done(err)
	return pod, err
}

// ActiveProbes is how many probes in a row must reach sidecars. Each is a
// new connection that kube-proxy balances at random over the endpoints it
// has programmed; while half of them were still the original's, ten in a
// row would reach sidecars by chance once in a thousand.
const ActiveProbes = 10

// probeActive asks a sidecar to request the Service's ClusterIP with the
// probe header until sidecars answer ActiveProbes times in a row:
// kube-proxy then sends new connections to the copy.
func probeActive(ctx context.Context, t RouteTunnel, svc *corev1.Service, port string, timeout time.Duration) (string, error) {
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, servicePortNumber(svc, port)) + "/"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	streak := 0
	for {
		pod, err := t.Probe(url)
		if err == nil {
			if streak++; streak == ActiveProbes {
				return pod, nil
			}
			continue
		}
		streak = 0
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("requests to service %s (%s) did not reach a sidecar within %s: %w", svc.Name, url, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// servicePortNumber is the number of the Service port key names (by name
// or number), or key itself when the Service has no such port.
func servicePortNumber(svc *corev1.Service, key string) string {
	if i := workload.PortIndex(svc, key); i >= 0 {
		return strconv.Itoa(int(svc.Spec.Ports[i].Port))
	}
	return key
}
