package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/portforward"
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
	configFlags *genericclioptions.ConfigFlags
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

	Namespace  string
	Service    string
	Entry      DoctorEntry
	Marker     tunnel.Marker // names only; Run adds the nonce
	Expect     []tunnel.Carrier
	Client     kubernetes.Interface
	RESTConfig *rest.Config
}

// NewCmdDoctor builds `kubectl intercept doctor`.
func NewCmdDoctor(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{configFlags: flags, IOStreams: streams, Wait: 5 * time.Second}
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
the carrier you name (the header when you name none) does not arrive.`,
		Example:           doctorExample,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: serviceArgCompletion(flags, true),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Via, "via", "", "where the request enters: a URL this machine reaches, or svc/OTHER[:PORT][/PATH] requested from inside the cluster")
	f.StringVarP(&o.Header, "header", "x", "", "header to test, NAME or NAME:VALUE as for intercept (the value is replaced by the marker; default "+tunnel.DefaultHeaderName+")")
	f.StringVar(&o.Cookie, "cookie", "", "cookie to test, NAME or NAME=VALUE (default "+DefaultDoctorCookie+")")
	f.StringVar(&o.Baggage, "baggage", "", "baggage member to test, KEY or KEY=VALUE (default "+DefaultDoctorBaggage+")")
	f.DurationVar(&o.Wait, "wait", o.Wait, "how long to look for the marker at the Service after the entry answered")
	for _, name := range []string{"via", "header", "cookie", "baggage", "wait"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// Complete parses the flags, then resolves the namespace, the clients and
// the Service argument.
func (o *DoctorOptions) Complete(args []string) error {
	if len(args) != 1 {
		return errors.New("name the intercepted Service: kubectl intercept doctor svc/NAME --via ENTRY")
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if err := o.parse(); err != nil {
		return err
	}
	var err error
	if o.RESTConfig, o.Client, err = clients(o.configFlags); err != nil {
		return err
	}
	if o.Namespace, o.Service, err = resolveService(o.configFlags, args[0]); err != nil {
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

// Validate checks the flags without the network (Complete has too,
// before it reaches the cluster).
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
	return nil
}

// Run watches through the sidecars, sends the marked request, collects
// what arrived and reports it. It fails, after the report, when an
// expected carrier did not arrive.
func (o *DoctorOptions) Run(ctx context.Context) error {
	p := newProgress(o.Out, o.ErrOut, false)
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
	dial := func(ctx context.Context, pod string) (io.ReadWriteCloser, error) {
		return portforward.DialPod(ctx, o.RESTConfig, o.Namespace, pod, port)
	}
	obs, err := tunnel.WatchSidecars(ctx, pods, dial, marker)
	if errors.Is(err, tunnel.ErrUnsupported) {
		return fmt.Errorf("%w; end the intercept of svc/%s (Ctrl-C where it runs, or `kubectl intercept close svc/%s -n %s`) and start it again to get a current sidecar",
			err, o.Service, o.Service, o.Namespace)
	}
	if err != nil {
		return fmt.Errorf("watching for the marker through the sidecars of svc/%s: %w", o.Service, err)
	}
	defer obs.Close()
	for _, pod := range sortedKeys(obs.Missed) {
		p.Warn(fmt.Sprintf("pod %s of the intercept cannot watch (%v): a marker that reaches it goes unseen", pod, obs.Missed[pod]))
	}
	if routes, err := obs.Routes(); err == nil {
		for _, r := range routes {
			if r.All {
				p.Warn(fmt.Sprintf("an intercept of every connection (--all) is live on svc/%s: its sidecars hand connections to it without reading them, so the marker cannot be seen", o.Service))
				break
			}
		}
	}

	rep := doctorReport{Service: o.Service, Entry: strings.TrimSpace(o.Via), Marker: marker, Expect: o.Expect, Waited: o.Wait}
	if o.Entry.URL != "" {
		rep.Sent = o.Entry.URL
		rep.Status, rep.SendErr = tunnel.SendMarked(ctx, o.Entry.URL, "", marker)
	} else {
		rep.Sent, rep.From = target, obs.Pods()[0]
		rep.Status, rep.SendErr = obs.Send(target, host)
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
		return errAlreadyReported
	}
	return nil
}

// sidecars returns the ready pods of the Service's intercept and the
// sidecars' control port, or says why the doctor cannot watch.
func (o *DoctorOptions) sidecars(ctx context.Context) ([]string, int, error) {
	svc, err := o.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("reading service %s/%s: %w", o.Namespace, o.Service, err)
	}
	raw, ok := svc.Annotations[session.AnnotationRecord]
	if !ok {
		return nil, 0, fmt.Errorf("service %s/%s is not intercepted: the doctor watches for its marker through an intercept's sidecars. "+
			"Start one in another terminal first (kubectl intercept svc/%s -n %s -l PORT, or add --detach), then run the doctor again",
			o.Namespace, o.Service, o.Service, o.Namespace)
	}
	rec, err := session.DecodeRecord(raw)
	if err != nil {
		return nil, 0, err
	}
	if !maps.Equal(svc.Spec.Selector, rec.SessionSelector()) {
		return nil, 0, fmt.Errorf("%s; the doctor cannot see requests that do not reach the sidecars", session.RevertMessage(svc))
	}
	sel := labels.SelectorFromSet(rec.SessionSelector()).String()
	list, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, 0, fmt.Errorf("listing the pods of the intercept's copy %s: %w", rec.Copy, err)
	}
	pods := watchablePods(list.Items)
	if len(pods) == 0 {
		return nil, 0, fmt.Errorf("the intercept of service %s has no ready pod to watch through; see kubectl get pods -n %s -l %s", o.Service, o.Namespace, sel)
	}
	return pods, int(rec.Plan.ControlPort), nil
}

// watchablePods names the pods whose sidecar serves the Service: ready,
// not being deleted, the sidecar running.
func watchablePods(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !podReady(&p) {
			continue
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == "intercept-proxy" && c.State.Running != nil {
				out = append(out, p.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// serviceTarget turns a svc/OTHER entry into the URL a sidecar requests
// (the ClusterIP, which needs no cluster DNS) and the Host header a caller
// inside the cluster would send (OTHER.NAMESPACE.svc).
func (o *DoctorOptions) serviceTarget(ctx context.Context) (target, host string, err error) {
	e := o.Entry
	svc, err := o.Client.CoreV1().Services(e.Namespace).Get(ctx, e.Service, metav1.GetOptions{})
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

// entryPort picks the Service port an entry names, by name or number, or
// the only one when it names none.
func entryPort(svc *corev1.Service, key string) (int32, error) {
	var names []string
	for _, p := range svc.Spec.Ports {
		if key == "" && len(svc.Spec.Ports) == 1 || p.Name == key || strconv.Itoa(int(p.Port)) == key {
			return p.Port, nil
		}
		names = append(names, portLabel(p))
	}
	if key == "" {
		return 0, fmt.Errorf("service %s has ports %s: say which, as svc/%s:PORT", svc.Name, strings.Join(names, ", "), svc.Name)
	}
	return 0, fmt.Errorf("service %s has no port %s (it has %s)", svc.Name, key, strings.Join(names, ", "))
}

func portLabel(p corev1.ServicePort) string {
	if p.Name == "" {
		return strconv.Itoa(int(p.Port))
	}
	return fmt.Sprintf("%d (%s)", p.Port, p.Name)
}

// DoctorEntry is where the doctor's request enters: a URL this machine reaches,
// or a Service a sidecar requests from inside the cluster.
type DoctorEntry struct {
	URL string
	// Service, Namespace (empty: the intercepted Service's), Port (by
	// name or number; empty: the only one) and Path (with the query) of a
	// Service entry.
	Service, Namespace, Port, Path string
}

// parseEntry reads --via: http(s)://HOST[/PATH], or
// svc/NAME[.NAMESPACE][:PORT][/PATH] (also service/ and services/).
func parseEntry(s string) (DoctorEntry, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DoctorEntry{}, errors.New("say where the request enters with --via: a URL (https://HOST/PATH) or a Service (svc/NAME[:PORT][/PATH])")
	}
	for _, prefix := range []string{"svc/", "service/", "services/"} {
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			return parseServiceEntry(s, rest)
		}
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		u, err := url.Parse(s)
		switch {
		case scheme != "http" && scheme != "https":
			return DoctorEntry{}, fmt.Errorf("--via %s: the doctor sends HTTP; give an http:// or https:// URL", s)
		case err != nil:
			return DoctorEntry{}, fmt.Errorf("--via %s is not a URL: %w", s, err)
		case u.Host == "":
			return DoctorEntry{}, fmt.Errorf("--via %s names no host", s)
		}
		return DoctorEntry{URL: s}, nil
	}
	return DoctorEntry{}, fmt.Errorf("--via %s is neither a URL (http:// or https://) nor a Service (svc/NAME[:PORT][/PATH])", s)
}

func parseServiceEntry(s, rest string) (DoctorEntry, error) {
	target, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		target, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	target, port, hasPort := strings.Cut(target, ":")
	name, ns, _ := strings.Cut(target, ".")
	var e DoctorEntry
	switch {
	case name == "":
		return e, fmt.Errorf("--via %s names no Service: give svc/NAME[:PORT][/PATH]", s)
	case len(validation.IsDNS1035Label(name)) > 0:
		return e, fmt.Errorf("--via %s: %q is not a Service name", s, name)
	case ns != "" && len(validation.IsDNS1123Label(ns)) > 0:
		return e, fmt.Errorf("--via %s: %q is not a namespace name", s, ns)
	case hasPort && port == "":
		return e, fmt.Errorf("--via %s: nothing after the colon; give a port name or number, or leave the colon out", s)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err == nil {
			if n < 1 || n > 65535 {
				return e, fmt.Errorf("--via %s: port %d is not in 1-65535", s, n)
			}
		} else if len(validation.IsValidPortName(port)) > 0 {
			return e, fmt.Errorf("--via %s: %q is neither a port number nor a port name", s, port)
		}
	}
	if _, err := url.ParseRequestURI(path); err != nil {
		return e, fmt.Errorf("--via %s: %q is not a path: %w", s, path, err)
	}
	return DoctorEntry{Service: name, Namespace: ns, Port: port, Path: path}, nil
}

// markerNames reads -x, --cookie and --baggage the way intercept takes
// them, keeping the names only, and returns the carriers that must arrive:
// those named, or the header when none is.
func markerNames(header, cookie, baggage string) (tunnel.Marker, []tunnel.Carrier, error) {
	m := tunnel.Marker{Header: tunnel.DefaultHeaderName, Cookie: DefaultDoctorCookie, Baggage: DefaultDoctorBaggage}
	var expect []tunnel.Carrier
	if header != "" {
		name, _, _ := strings.Cut(header, ":")
		if _, _, err := tunnel.ParseHeader(name + ":v"); err != nil {
			return m, nil, err
		}
		m.Header = strings.TrimSpace(name)
		expect = append(expect, tunnel.CarrierHeader)
	}
	if cookie != "" {
		name, _, _ := strings.Cut(cookie, "=")
		if _, _, err := tunnel.ParseCookie(name + "=v"); err != nil {
			return m, nil, err
		}
		m.Cookie = strings.TrimSpace(name)
		expect = append(expect, tunnel.CarrierCookie)
	}
	if baggage != "" {
		key, _, _ := strings.Cut(baggage, "=")
		if _, _, err := tunnel.ParseBaggage(key + "=v"); err != nil {
			return m, nil, err
		}
		m.Baggage = strings.TrimSpace(key)
		expect = append(expect, tunnel.CarrierBaggage)
	}
	if len(expect) == 0 {
		expect = []tunnel.Carrier{tunnel.CarrierHeader}
	}
	return m, expect, nil
}

// missing returns the carriers of want that no hit has.
func missing(want []tunnel.Carrier, hits []tunnel.Hit) []tunnel.Carrier {
	var out []tunnel.Carrier
	for _, c := range want {
		if len(hitsOf(hits, c)) == 0 {
			out = append(out, c)
		}
	}
	return out
}

func hitsOf(hits []tunnel.Hit, c tunnel.Carrier) []tunnel.Hit {
	var out []tunnel.Hit
	for _, h := range hits {
		if h.Carrier == c {
			out = append(out, h)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// doctorReport is what a doctor run found.
type doctorReport struct {
	Service string
	// Entry is --via as given; Sent the URL requested; From the pod whose
	// sidecar requested it (empty: this machine, Sent is the entry).
	Entry, Sent, From string
	Marker            tunnel.Marker
	Expect            []tunnel.Carrier
	// Status answered the request, unless SendErr.
	Status  int
	SendErr error
	Hits    []tunnel.Hit
	// Waited is how long the doctor looked for the marker.
	Waited time.Duration
}

// renderDoctor writes the report for the person at the terminal: what was
// sent, which carrier reached the Service, and what to do about those that
// did not. Plain text, no color.
func renderDoctor(w io.Writer, r doctorReport) {
	svc := "svc/" + r.Service
	sent := r.Sent
	if r.From != "" {
		// A Service entry: the form given, and the address requested.
		if u, err := url.Parse(r.Sent); err == nil && r.Entry != "" {
			sent = r.Entry + " (" + u.Host + ")"
		}
		sent += " from the sidecar in pod " + r.From
	}
	var carriers []string
	for _, c := range r.Marker.Carriers() {
		carriers = append(carriers, string(c)+" "+r.Marker.Name(c))
	}
	fmt.Fprintf(w, "Sent GET %s with %s (marker %s)\n", sent, strings.Join(carriers, ", "), r.Marker.Value())
	if r.SendErr != nil {
		fmt.Fprintf(w, "The request failed: %v\n", r.SendErr)
	} else {
		fmt.Fprintf(w, "The entry answered %s\n", statusLine(r.Status))
	}
	for _, c := range r.Marker.Carriers() {
		hs := hitsOf(r.Hits, c)
		if len(hs) == 0 {
			fmt.Fprintf(w, "✗ %s %s did not reach %s\n", c, r.Marker.Name(c), svc)
			continue
		}
		fmt.Fprintf(w, "✓ %s %s reached %s (pod %s) as %s %s%s\n", c, r.Marker.Name(c), svc, hs[0].Pod, hs[0].Method, hs[0].Path, andMore(len(hs)-1))
	}
	others := hitsOf(r.Hits, tunnel.CarrierOther)
	renamed := map[string]tunnel.Hit{}
	for _, h := range others {
		if _, ok := renamed[h.Name]; !ok {
			renamed[h.Name] = h
		}
	}
	for _, name := range sortedKeys(renamed) {
		h := renamed[name]
		fmt.Fprintf(w, "! the marker reached %s in header %s (pod %s, %s %s): a service on the way moved it there\n", svc, name, h.Pod, h.Method, h.Path)
	}

	advice := doctorAdvice(r)
	if len(advice) > 0 {
		fmt.Fprintln(w)
		for _, a := range advice {
			fmt.Fprintln(w, a)
		}
	}
}

// doctorAdvice says what the report means and what to fix.
func doctorAdvice(r doctorReport) []string {
	svc := "svc/" + r.Service
	entry := r.Entry
	if entry == "" {
		entry = r.Sent
	}
	if len(r.Hits) == 0 {
		switch {
		case r.SendErr != nil:
			from := "this machine"
			if r.From != "" {
				from = "the cluster"
			}
			return []string{fmt.Sprintf("Nothing reached %s: the request to %s failed before it was answered. Check that %s reaches it.", svc, entry, from)}
		case r.Status >= 400:
			return []string{fmt.Sprintf("Nothing reached %s, and %s answered %s: the request may have failed before it got that far. "+
				"Fix what makes the entry fail, or give --via a path that succeeds.", svc, entry, statusLine(r.Status))}
		case r.Status >= 300:
			return []string{fmt.Sprintf("Nothing reached %s: %s answered %s, a redirect, which the doctor does not follow. Give --via the URL it redirects to.", svc, entry, statusLine(r.Status))}
		}
		return []string{fmt.Sprintf("Nothing reached %s although %s answered %s: the entry may not call %s for this path, may answer from a cache, "+
			"or may call it later than the doctor waited (%s). Try a path that calls it, or a longer --wait.", svc, entry, statusLine(r.Status), svc, r.Waited)}
	}
	var out []string
	for _, c := range missing(r.Marker.Carriers(), r.Hits) {
		name := r.Marker.Name(c)
		switch c {
		case tunnel.CarrierHeader:
			or := " Or propagate baggage with OpenTelemetry and intercept with --baggage."
			if len(hitsOf(r.Hits, tunnel.CarrierBaggage)) > 0 {
				or = ""
			}
			out = append(out, fmt.Sprintf("Header %s is dropped between %s and %s: each service in between must copy it onto its outgoing requests.%s",
				name, entry, svc, or))
		case tunnel.CarrierCookie:
			out = append(out, fmt.Sprintf("Cookie %s is dropped between %s and %s: services seldom pass a caller's cookies on. "+
				"--cookie suits a browser's requests that reach %s directly (through an ingress); deeper in, use a header or baggage.", name, entry, svc, svc))
		case tunnel.CarrierBaggage:
			out = append(out, fmt.Sprintf("Baggage %s is dropped between %s and %s: a service in between does not propagate W3C baggage. "+
				"OpenTelemetry SDKs do, with the baggage propagator (OTEL_PROPAGATORS=tracecontext,baggage), once every service on the way has one.", name, entry, svc))
		}
	}
	if miss := missing(r.Expect, r.Hits); len(miss) == 0 {
		out = append(out, fmt.Sprintf("Your %s gets through: an intercept of %s with %s catches the requests that enter at %s.",
			describeCarriers(r.Marker, r.Expect), svc, flagsFor(r.Marker, r.Expect), entry))
	} else if arrived := arrivedCarriers(r.Marker, r.Hits); len(arrived) > 0 {
		out = append(out, fmt.Sprintf("Your %s does not get through, the %s does: intercept %s with %s to catch the requests that enter at %s.",
			describeCarriers(r.Marker, miss), describeCarriers(r.Marker, arrived), svc, flagsFor(r.Marker, arrived[:1]), entry))
	}
	return out
}

func arrivedCarriers(m tunnel.Marker, hits []tunnel.Hit) []tunnel.Carrier {
	var out []tunnel.Carrier
	for _, c := range m.Carriers() {
		if len(hitsOf(hits, c)) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// describeCarriers renders carriers as "header X and cookie y".
func describeCarriers(m tunnel.Marker, cs []tunnel.Carrier) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = string(c) + " " + m.Name(c)
	}
	return strings.Join(parts, " and ")
}

// flagsFor renders the intercept flags that match on carriers.
func flagsFor(m tunnel.Marker, cs []tunnel.Carrier) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		switch c {
		case tunnel.CarrierHeader:
			parts[i] = "-x " + m.Header + ":VALUE"
		case tunnel.CarrierCookie:
			parts[i] = "--cookie " + m.Cookie + "=VALUE"
		case tunnel.CarrierBaggage:
			parts[i] = "--baggage " + m.Baggage + "=VALUE"
		}
	}
	return strings.Join(parts, " or ")
}

func andMore(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return ", and 1 more request"
	}
	return fmt.Sprintf(", and %d more requests", n)
}

func statusLine(code int) string {
	return strings.TrimSpace(fmt.Sprintf("%d %s", code, http.StatusText(code)))
}
