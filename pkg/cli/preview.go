package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/preview"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/relay"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/ngrok"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/portforward"
)

// previewLocal is --preview's value for a preview URL on this machine.
const previewLocal = "local"

func (o *InterceptOptions) validatePreview() error {
	switch o.Preview {
	case "", previewLocal:
	case tunnelNgrok:
		if o.NgrokAuthtoken == "" && !o.DryRun {
			return errors.New("--preview=ngrok needs your ngrok authtoken: set " + ngrok.EnvAuthtoken + " (or pass --ngrok-authtoken)")
		}
	default:
		return fmt.Errorf("--preview %q: use --preview (a URL on this machine) or --preview=ngrok (a public URL)", o.Preview)
	}
	if o.Preview == "" && (o.PreviewVia != "" || o.PreviewPort != 0) {
		return errors.New("--preview-via and --preview-port go with --preview")
	}
	if o.PreviewPort < 0 || o.PreviewPort > 65535 {
		return errors.New("--preview-port must be 0-65535")
	}
	if o.PreviewVia != "" {
		if _, err := preview.ParseVia(o.PreviewVia); err != nil {
			return err
		}
	}
	return nil
}

// startPreview serves the preview URL: requests go to the entry point of
// --preview-via, or straight to a sidecar of the copy that holds the route.
func (o *InterceptOptions) startPreview(ctx context.Context, st *session.Started, f *portforward.Follower, fr *front) (string, func(), error) {
	dial := dialPod(o.f)
	var target preview.Target
	switch via, _ := preview.ParseVia(o.PreviewVia); {
	case o.PreviewVia == "":
		host := o.Service + "." + o.Namespace + ".svc"
		if port := servicePort(st.Service, st.Record.Port); port != "80" {
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
		if target, err = preview.IngressTarget(ctx, o.f.Client, dial, ns, via.Name); err != nil {
			return "", nil, err
		}
	default:
		target = preview.ServiceTarget(o.f.Client, dial, cmp.Or(via.Namespace, o.Namespace), via.Name, via.Port, "")
	}
	// Pages of other sites may not send requests through it.
	h := preview.SameOrigin(preview.Handler(o.Route, target))
	var ln net.Listener
	var url string
	if o.publicPreview() {
		ep, err := fr.agent.Listen(ctx, "kubectl-intercept preview")
		if err != nil {
			return "", nil, fmt.Errorf("opening the public preview: %w", err)
		}
		user, password := "preview", relay.NewSecret()[:24]
		h = preview.Protect(user, password, h)
		ln, url = ep, ep.URL()+"/ (user "+user+", password "+password+")"
	} else {
		var err error
		if ln, err = preview.Listen(o.PreviewPort); err != nil {
			return "", nil, err
		}
		url = preview.URL(ln)
		// Only this machine's loopback names: a rebound name is refused.
		h = preview.LocalOnly(ln.Addr().(*net.TCPAddr).Port, h)
	}
	srv := relay.NewHTTPServer(h)
	srv.ReadHeaderTimeout = 30 * time.Second
	go func() { _ = srv.Serve(ln) }()
	return url, func() { _ = srv.Close() }, nil
}

// publicPreview says the preview goes through ngrok: --preview=ngrok, or
// --preview with --tunnel ngrok.
func (o *InterceptOptions) publicPreview() bool {
	return o.Preview == tunnelNgrok || (o.Preview != "" && o.Tunnel == tunnelNgrok)
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
