package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/preview"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// PreviewOptions say where the preview's requests enter the cluster and
// where it listens.
type PreviewOptions struct {
	Client kubernetes.Interface
	// Dial reaches a port on a pod's loopback.
	Dial session.PodDialer
	// Namespace and Service are the intercepted Service's.
	Namespace, Service string
	// Via is --preview-via (empty: the intercepted Service); Port the
	// local port (0: any free one).
	Via  string
	Port int
	// Public serves it through ngrok, behind a password.
	Public bool
	Route  route.Route
}

// StartPreview serves the preview URL: requests go to the entry point of
// --preview-via, or straight to a sidecar of the copy that holds the route.
func StartPreview(ctx context.Context, o PreviewOptions, st *session.Started, f *portforward.Follower, fr *Front) (string, func(), error) {
	dial := o.Dial
	var target preview.Target
	switch via, _ := preview.ParseVia(o.Via); {
	case o.Via == "":
		host := o.Service + "." + o.Namespace + ".svc"
		if port := ServicePort(st.Service, st.Record.Port); port != "80" {
			host = net.JoinHostPort(host, port)
		}
		target = preview.Target{Host: host, Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
			pods := f.Registered()
			if len(pods) == 0 {
				return nil, errors.New("no tunnel to a pod of the copy is up")
			}
			slices.Sort(pods)
			return dial(ctx, o.Namespace, pods[0], int(st.Record.Plan.SidecarPort))
		}}
	case via.Kind == "ingress":
		ns := cmp.Or(via.Namespace, o.Namespace)
		var err error
		if target, err = preview.IngressTarget(ctx, o.Client, dial, ns, via.Name); err != nil {
			return "", nil, err
		}
	default:
		target = preview.ServiceTarget(o.Client, dial, cmp.Or(via.Namespace, o.Namespace), via.Name, via.Port, "")
	}
	// Pages of other sites may not send requests through it.
	h := preview.SameOrigin(preview.Handler(o.Route, target))
	var ln net.Listener
	var url string
	if o.Public {
		ep, err := fr.agent.Listen(ctx, "kubectl-intercept preview")
		if err != nil {
			return "", nil, fmt.Errorf("opening the public preview: %w", err)
		}
		user, password := "preview", httpwire.NewSecret()[:24]
		h = preview.Protect(user, password, h)
		ln, url = ep, ep.URL()+"/ (user "+user+", password "+password+")"
	} else {
		var err error
		if ln, err = preview.Listen(o.Port); err != nil {
			return "", nil, err
		}
		url = preview.URL(ln)
		// Only this machine's loopback names: a rebound name is refused.
		h = preview.LocalOnly(ln.Addr().(*net.TCPAddr).Port, h)
	}
	srv := httpwire.NewHTTPServer(h)
	srv.ReadHeaderTimeout = 30 * time.Second
	go func() { _ = srv.Serve(ln) }()
	return url, func() { _ = srv.Close() }, nil
}

// ServicePort is the number of the Service port key names (by name or
// number), or key itself when the Service has no such port.
func ServicePort(svc *corev1.Service, key string) string {
	if i := workload.PortIndex(svc, key); i >= 0 {
		return strconv.Itoa(int(svc.Spec.Ports[i].Port))
	}
	return key
}
