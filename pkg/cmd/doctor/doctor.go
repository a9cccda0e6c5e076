// Package doctor is `kubectl intercept doctor`: whether a header, cookie or
// baggage member reaches an intercepted Service from an entry point.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/completion"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/doctor"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// The cookie and baggage member the doctor sends when --cookie and
// --baggage name none.
const (
	DefaultDoctorCookie  = "x-intercept"
	DefaultDoctorBaggage = "x-intercept"
)

const doctorExample = `  # Does my header reach svc/cart when a request enters at the staging site?
  # (svc/cart must be intercepted, e.g. kubectl intercept svc/cart -l 3000 -d)
  kubectl intercept doctor svc/cart --via https://staging.example.com/checkout

  # The same from inside the cluster, entering at port 8080 of svc/frontend
  kubectl intercept doctor svc/cart --via svc/frontend:8080/checkout

  # With the header and cookie names you intercept with (values are replaced)
  kubectl intercept doctor svc/cart --via svc/frontend -x x-dev:alice --cookie dev`

// DoctorOptions are the inputs of `kubectl intercept doctor`.
type DoctorOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	// Via is the entry point: a URL or svc/NAME[.NAMESPACE][:PORT][/PATH].
	Via string
	// Header, Cookie and Baggage name the carriers as intercept's -x,
	// --cookie and --baggage take them; values are ignored (the doctor
	// sends its marker). Empty: the defaults.
	Header  string
	Cookie  string
	Baggage string
	// Wait is how long to look for the marker once the entry answered.
	Wait time.Duration

	Namespace string
	Service   string
	Entry     DoctorEntry
	Marker    tunnel.Marker // names only; Run adds the nonce
	Expect    []tunnel.Carrier
}

// NewCmdDoctor builds `kubectl intercept doctor`.
func NewCmdDoctor(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{f: f, IOStreams: streams, Wait: 5 * time.Second}
	cmd := &cobra.Command{
		Use:   "doctor [svc/]NAME --via (URL | svc/OTHER[:PORT][/PATH])",
		Short: "Check that your header, cookie or baggage reaches an intercepted Service from an entry point",
		Long: `Check whether the services between an entry point and an intercepted Service
pass your marker on: an intercept catches only requests that still carry it
when they reach the Service.

The Service must be intercepted (kubectl intercept svc/NAME -l PORT, in another
terminal or with --detach): the doctor watches through its sidecars. It sends
one GET to the entry, from this machine for a URL, from a sidecar for
svc/OTHER, carrying a fresh marker (doctor-<random>) in a header, a cookie and a
W3C baggage member, and reports which of the three reached the Service.

-x, --cookie and --baggage take the same NAME:VALUE / NAME=VALUE as intercept,
or a name alone: the value is replaced by the marker. The command fails when
the carrier you name (the header when you name none) does not arrive.

When the intercept is narrowed by path or method (--path-prefix, --path-regex,
--method) and --via names no path, the request goes to a path the route takes,
from this machine with a method it takes.`,
		Example:           doctorExample,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completion.ServiceArg(f, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmdutil.RunSteps(cmd.Context(), func() error { return o.Complete(args) }, o.Validate, o.Run)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Via, "via", "", "where the request enters: a URL this machine reaches, or svc/OTHER[:PORT][/PATH] requested from inside the cluster")
	fl.StringVarP(&o.Header, "header", "x", "", "header to test, NAME or NAME:VALUE as for intercept (the value is replaced by the marker; default "+route.DefaultHeaderName+")")
	fl.StringVar(&o.Cookie, "cookie", "", "cookie to test, NAME or NAME=VALUE (default "+DefaultDoctorCookie+")")
	fl.StringVar(&o.Baggage, "baggage", "", "baggage member to test, KEY or KEY=VALUE (default "+DefaultDoctorBaggage+")")
	fl.DurationVar(&o.Wait, "wait", o.Wait, "how long to look for the marker at the Service after the entry answered")
	for _, name := range []string{"via", "header", "cookie", "baggage", "wait"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// Complete parses the flags and resolves the namespace, the clients and the
// Service argument, without asking the cluster.
func (o *DoctorOptions) Complete(args []string) error {
	if err := o.parse(); err != nil {
		return err
	}
	if err := o.f.Complete(); err != nil {
		return err
	}
	if len(args) == 0 {
		return nil // Validate says what is missing
	}
	var err error
	if o.Namespace, o.Service, err = cmdutil.ResolveServiceName(o.f, args[0]); err != nil {
		return err
	}
	if o.Entry.Service != "" && o.Entry.Namespace == "" {
		o.Entry.Namespace = o.Namespace
	}
	return nil
}

// parse turns --via, -x, --cookie and --baggage into the entry, the
// marker's carriers and the carriers that must arrive.
func (o *DoctorOptions) parse() error {
	var err error
	if o.Entry, err = parseEntry(o.Via); err != nil {
		return err
	}
	o.Marker, o.Expect, err = markerNames(o.Header, o.Cookie, o.Baggage)
	return err
}

// Validate checks the flags without the network.
func (o *DoctorOptions) Validate() error {
	if _, err := parseEntry(o.Via); err != nil {
		return err
	}
	if _, _, err := markerNames(o.Header, o.Cookie, o.Baggage); err != nil {
		return err
	}
	if o.Wait <= 0 {
		return errors.New("--wait must be positive")
	}
	if o.Service == "" {
		return errors.New("name the intercepted Service: kubectl intercept doctor svc/NAME --via ENTRY")
	}
	return nil
}

// Run watches through the sidecars, sends the marked request, collects
// what arrived and reports it. It fails, after the report, when an
// expected carrier did not arrive.
func (o *DoctorOptions) Run(ctx context.Context) error {
	p := cmdutil.NewProgress(o.Out, o.ErrOut, false)
	if w := session.PolicyWarning(ctx, o.f.Client, o.Namespace); w != "" {
		p.Warn(w)
	}
	pods, port, err := o.sidecars(ctx)
	if err != nil {
		return err
	}
	var target, host string // of a Service entry
	if o.Entry.Service != "" {
		if target, host, err = o.serviceTarget(ctx); err != nil {
			return err
		}
	}
	marker := tunnel.NewMarker(o.Marker.Header, o.Marker.Cookie, o.Marker.Baggage)
	obs, err := doctor.WatchSidecars(ctx, doctor.Sidecars{Dial: cmdutil.DialPod(o.f), Namespace: o.Namespace, Port: port, Pods: pods}, marker)
	if errors.Is(err, tunnel.ErrUnsupported) {
		return fmt.Errorf("%w; end the intercept of svc/%s (Ctrl-C where it runs, or `kubectl intercept close svc/%s -n %s`) and start it again to get a current sidecar",
			err, o.Service, o.Service, o.Namespace)
	}
	if err != nil {
		return fmt.Errorf("watching for the marker through the sidecars of svc/%s: %w", o.Service, err)
	}
	defer obs.Close()
	for _, pod := range sortedKeys(obs.Missed) {
		p.Warn(fmt.Sprintf("pod %s of the intercept cannot watch (%s): a marker that reaches it goes unseen", cmdutil.Printable(pod), cmdutil.Printable(fmt.Sprint(obs.Missed[pod]))))
	}
	rep := doctorReport{Service: o.Service, Entry: strings.TrimSpace(o.Via), Marker: marker, Expect: o.Expect, Waited: o.Wait, Method: http.MethodGet}
	if routes, err := obs.Routes(); err == nil {
		for _, r := range routes {
			if r.All && !r.Narrowed() {
				p.Warn(fmt.Sprintf("an intercept of every connection (--all) is live on svc/%s: its sidecars hand connections to it without reading them, so the marker cannot be seen", o.Service))
				break
			}
		}
		if r, ok := doctor.RouteFor(routes, marker, o.Expect); ok && r.Narrowed() {
			rep.Route = &r
		}
	}
	path := ""
	if rep.Route != nil && o.Entry.NoPath {
		var ok bool
		if path, rep.Method, ok = doctor.Target(*rep.Route, "/"); !ok {
			p.Warn(fmt.Sprintf("no path route %s takes could be made up from its regex: the doctor sends GET /", cmdutil.Printable(rep.Route.String())))
		}
		rep.RoutePath = true
	}
	if o.Entry.URL != "" {
		rep.Sent = o.Entry.URL
		if path != "" {
			rep.Sent = strings.TrimSuffix(o.Entry.URL, "/") + path
		}
		rep.Status, rep.SendErr = doctor.SendMarked(ctx, rep.Method, rep.Sent, "", marker)
	} else {
		if path != "" {
			target = strings.TrimSuffix(target, "/") + path
		}
		// The sidecar sends the route's method too (one older than that
		// sends GET, which the hits then show).
		rep.Sent, rep.From = target, obs.Pods()[0]
		rep.Status, rep.SendErr = obs.Send(rep.Method, target, host)
	}
	wait := o.Wait
	if rep.SendErr != nil {
		wait = 0 // look once: what got through before the failure
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	rep.Hits, err = obs.Collect(wctx, 200*time.Millisecond, func(h []tunnel.Hit) bool { return len(missing(marker.Carriers(), h)) == 0 })
	if err != nil {
		return fmt.Errorf("asking the sidecars of svc/%s what reached them: %w", o.Service, err)
	}
	renderDoctor(o.Out, rep)
	if len(missing(o.Expect, rep.Hits)) > 0 {
		return local.ErrAlreadyReported
	}
	return nil
}

// sidecars returns the pods of the Service's intercept whose sidecars can
// watch, and the sidecars' control port, or says why the doctor cannot watch.
func (o *DoctorOptions) sidecars(ctx context.Context) ([]string, int, error) {
	rec, pods, err := session.AskableSidecars(ctx, o.f.Client, o.Namespace, o.Service)
	var reverted *session.RevertedError
	switch {
	case errors.Is(err, session.ErrNotIntercepted):
		return nil, 0, fmt.Errorf("service %s/%s is not intercepted: the doctor watches for its marker through an intercept's sidecars. "+
			"Start one in another terminal first (kubectl intercept svc/%s -n %s -l PORT, or add --detach), then run the doctor again",
			o.Namespace, o.Service, o.Service, o.Namespace)
	case errors.As(err, &reverted):
		return nil, 0, fmt.Errorf("%s; the doctor cannot see requests that do not reach the sidecars", reverted.Message)
	case err != nil:
		return nil, 0, err
	case len(pods) == 0:
		return nil, 0, fmt.Errorf("the intercept of service %s has no running pod to watch through; see kubectl get pods -n %s -l %s", o.Service, o.Namespace, session.CopySelector(rec))
	}
	return pods, int(rec.Plan.ControlPort), nil
}

// serviceTarget turns a svc/OTHER entry into the URL a sidecar requests
// (the ClusterIP, which needs no cluster DNS) and the Host header a caller
// inside the cluster would send (OTHER.NAMESPACE.svc).
func (o *DoctorOptions) serviceTarget(ctx context.Context) (target, host string, err error) {
	e := o.Entry
	svc, err := o.f.Client.CoreV1().Services(e.Namespace).Get(ctx, e.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", fmt.Errorf("the entry --via %s: service %s not found in namespace %s", o.Via, e.Service, e.Namespace)
	}
	if err != nil {
		return "", "", fmt.Errorf("reading the entry's service %s/%s: %w", e.Namespace, e.Service, err)
	}
	port, err := entryPort(svc, e.Port)
	if err != nil {
		return "", "", fmt.Errorf("the entry --via %s: %w", o.Via, err)
	}
	host = e.Service + "." + e.Namespace + ".svc"
	if port != 80 {
		host = net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	addr := svc.Spec.ClusterIP
	if addr == "" || addr == corev1.ClusterIPNone {
		addr = e.Service + "." + e.Namespace + ".svc" // headless or ExternalName: DNS it is
	}
	return "http://" + net.JoinHostPort(addr, strconv.Itoa(int(port))) + e.Path, host, nil
}
