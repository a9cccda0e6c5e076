package intercept

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// activate waits until the intercept is active (session.WaitActive) on
// every port; it returns the pod whose sidecar answered the last probe.
func (r *runner) activate(ctx context.Context, p *cmdutil.Progress, st *session.Started, tunnels []portTunnel) (string, error) {
	ports := make([]session.ActivePort, len(tunnels))
	for i, t := range tunnels {
		ports[i] = session.ActivePort{Port: t.entry.Port, Tunnel: routeTunnel{t.follower}}
	}
	return session.WaitActive(ctx, r.f.Client, session.ActiveOptions{Namespace: r.Namespace, Started: st, Ports: ports, Timeout: r.Timeout, Progress: p})
}

// routeTunnel is a port's follower as session.WaitActive asks it.
type routeTunnel struct{ *portforward.Follower }

// Probe has a sidecar of any open tunnel request url with the probe header.
func (t routeTunnel) Probe(url string) (string, error) {
	c, err := t.AnyClient()
	if err != nil {
		return "", err
	}
	return c.Probe(url)
}

func (r *runner) printActive(p *cmdutil.Progress, st *session.Started, tunnels []portTunnel, pod string, fr *local.Front) {
	rt := r.Route
	what := describeRequests(rt)
	if rt.Wiretap {
		p.Infof("Wiretapping service %s/%s: the cluster answers %s as before; a copy of each, with its answer, goes to localhost:%d after it is answered, and the inspector compares the two.",
			r.Namespace, r.Service, what, tunnels[0].local)
	} else if len(tunnels) == 1 {
		p.Infof("Intercepting service %s/%s port %s: %s go to localhost:%d (verified through pod %s).", r.Namespace, r.Service, tunnels[0].entry.Port, what, tunnels[0].local, pod)
	} else {
		var ports []string
		for _, t := range tunnels {
			ports = append(ports, fmt.Sprintf("port %s to localhost:%d", t.entry.Port, t.local))
		}
		p.Infof("Intercepting service %s/%s, %s on %s (verified through pod %s).", r.Namespace, r.Service, what, strings.Join(ports, ", "), pod)
	}
	switch {
	case rt.All && rt.Narrowed():
		p.Infof("Other requests, and connections that do not speak HTTP, go to %s in the cluster.", st.Record.WorkloadRef())
	case rt.Narrowed():
		p.Infof("Your requests on other paths or with other methods go to %s in the cluster, your marker or not.", st.Record.WorkloadRef())
	}
	url := fmt.Sprintf("http://%s.%s:%s/", r.Service, r.Namespace, local.ServicePort(st.Service, tunnels[0].entry.Port))
	if curl := cmdutil.TryCurl(rt, url); curl != "" {
		p.Infof("Try it from inside the cluster: %s", curl)
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
	switch {
	case st.Record.IsDecoy():
		p.Infof("By decoy: %s keeps serving what is not yours. Connections callers opened before now (a kept-alive pool, a gRPC channel) stay on its pods until they close, "+
			"so their requests never reach you (--take-over, which moves them, needs a copy: --decoy=false).", st.Record.WorkloadRef())
	case !r.TakeOver:
		p.Infof("Connections callers opened before now (a kept-alive pool, a gRPC channel) stay on %s's pods until they close, "+
			"so their requests never reach you; --take-over moves them to the copy.", st.Record.WorkloadRef())
	}
	if !r.Detached {
		p.Infof("Press Ctrl-C to end the intercept.")
	} else {
		p.Infof("End it with: kubectl intercept close svc/%s -n %s", r.Service, r.Namespace)
	}
}

// describeRequests says which requests go to this machine: those with the
// marker, or every connection, narrowed to some paths and methods.
func describeRequests(rt route.Route) string {
	marker := rt
	marker.PathPrefix, marker.PathRegex, marker.Methods, marker.Wiretap = "", "", "", false
	what := "requests with " + marker.String()
	switch {
	case rt.All && !rt.WholeConnections():
		what = "every HTTP request, marked or not"
	case rt.All:
		what = "every connection"
	case rt.Header != "":
		what = "requests with header " + marker.String()
	}
	if n := cmdutil.Narrowing(rt); n != "" {
		what += ", " + n + ","
	}
	return what
}

// describeMarker says what a preview adds to each request.
func describeMarker(r route.Route) string {
	switch {
	case r.All && r.Narrowed():
		return "nothing added (every request of your paths and methods is yours)"
	case r.All:
		return "nothing added (every connection is yours)"
	case r.Cookie != "":
		return "your cookie " + r.Cookie + "=" + r.Value + " (also set in the browser)"
	case r.Baggage != "":
		return "your baggage member " + r.String()
	}
	return "your header " + r.Header + ": " + r.Value
}
