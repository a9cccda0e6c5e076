package intercept

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/portforward"
)

// activate waits until every ready pod of the copy holds the route on each
// port (or some of the developer's requests would miss the laptop), the
// Service's endpoints are the copy's, and requests to each port's ClusterIP
// reach sidecars; it returns the pod whose sidecar answered the last probe.
func (r *runner) activate(ctx context.Context, p *cmdutil.Progress, st *session.Started, tunnels []portTunnel) (string, error) {
	rec := st.Record
	want := 1
	if d, err := r.f.Client.AppsV1().Deployments(r.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{}); err == nil && d.Status.ReadyReplicas > 1 {
		want = int(d.Status.ReadyReplicas)
	}
	done := p.Step(fmt.Sprintf("putting the route on the copy's %d pod(s)", want))
	wctx, cancel := context.WithTimeout(ctx, r.Timeout)
	var err error
	for _, t := range tunnels {
		if err = t.follower.WaitRegistered(wctx, want); err != nil {
			break
		}
	}
	cancel()
	done(err)
	if err != nil {
		return "", err
	}
	done = p.Step("checking that service " + r.Service + " reaches the sidecars only")
	err = session.WaitEndpointsOnCopy(ctx, r.f.Client, r.Namespace, r.Service, rec, r.Timeout)
	var pod string
	for _, t := range tunnels {
		if err != nil {
			break
		}
		pod, err = verifyActive(ctx, t.follower, st.Service, t.entry.Port, r.Timeout)
	}
	done(err)
	return pod, err
}

func (r *runner) printActive(p *cmdutil.Progress, st *session.Started, tunnels []portTunnel, pod string, fr *local.Front) {
	rt := r.Route
	what := "requests with " + rt.String()
	switch {
	case rt.All:
		what = "every connection"
	case rt.Header != "":
		what = "requests with header " + rt.String()
	}
	if len(tunnels) == 1 {
		p.Infof("Intercepting service %s/%s port %s: %s go to localhost:%d (verified through pod %s).", r.Namespace, r.Service, tunnels[0].entry.Port, what, tunnels[0].local, pod)
	} else {
		var ports []string
		for _, t := range tunnels {
			ports = append(ports, fmt.Sprintf("port %s to localhost:%d", t.entry.Port, t.local))
		}
		p.Infof("Intercepting service %s/%s, %s on %s (verified through pod %s).", r.Namespace, r.Service, what, strings.Join(ports, ", "), pod)
	}
	url := fmt.Sprintf("http://%s.%s:%s/", r.Service, r.Namespace, local.ServicePort(st.Service, tunnels[0].entry.Port))
	if !rt.All {
		p.Infof("Try it from inside the cluster: curl -H %s %s", cmdutil.ShellQuote(cmdutil.HeaderLine(rt)), url)
	}
	switch {
	case rt.Cookie != "":
		p.Infof("From a browser, open your frontend, paste in its devtools console and reload: document.cookie = \"%s=%s; path=/\"", rt.Cookie, rt.Value)
	case rt.Baggage != "":
		p.Infof("OpenTelemetry SDKs pass baggage on with every call a service makes: requests that start with it come here however deep %s is in the call graph.", r.Service)
	}
	if fr.Remote != "" {
		p.Infof("Requests reach this machine through ngrok endpoint %s; it refuses requests that lack this intercept's secret.", fr.Remote)
	}
	if fr.InspectURL != "" {
		p.Infof("See each intercepted request at %s", fr.InspectURL)
	}
	if fr.InspectWarning != "" {
		p.Warn(fr.InspectWarning)
	}
	if fr.PreviewURL != "" {
		p.Infof("Preview: %s sends every request into the cluster with %s: open it in a browser to click through the system with your version of %s.", fr.PreviewURL, describeMarker(rt), r.Service)
	}
	if !r.Detached {
		p.Infof("Press Ctrl-C to end the intercept.")
	} else {
		p.Infof("End it with: kubectl intercept close svc/%s -n %s", r.Service, r.Namespace)
	}
}

// activeProbes is how many probes in a row must reach sidecars. Each is a
// new connection that kube-proxy balances at random over the endpoints it
// has programmed; while half of them were still the original's, ten in a
// row would reach sidecars by chance once in a thousand.
const activeProbes = 10

// verifyActive asks a sidecar to request the Service's ClusterIP with the
// probe header until sidecars answer activeProbes times in a row: kube-proxy
// then sends new connections to the copy.
func verifyActive(ctx context.Context, f *portforward.Follower, svc *corev1.Service, port string, timeout time.Duration) (string, error) {
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, local.ServicePort(svc, port)) + "/"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	streak := 0
	for {
		c, err := f.AnyClient()
		if err == nil {
			var pod string
			if pod, err = c.Probe(url); err == nil {
				if streak++; streak == activeProbes {
					return pod, nil
				}
				continue
			}
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

// describeMarker says what a preview adds to each request.
func describeMarker(r route.Route) string {
	switch {
	case r.All:
		return "nothing added (every connection is yours)"
	case r.Cookie != "":
		return "your cookie " + r.Cookie + "=" + r.Value + " (also set in the browser)"
	case r.Baggage != "":
		return "your baggage member " + r.String()
	}
	return "your header " + r.Header + ": " + r.Value
}
