package doctor

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/doctor"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// What `doctor` found, rendered for the person at the terminal.

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
	// Method is the request's method (GET unless set).
	Method string
	// Route is the live route narrowed by path or method whose marker the
	// doctor tests, nil when none; RoutePath says the request went to a
	// path (and, from this machine, with a method) the route takes, the
	// entry naming none.
	Route     *route.Route
	RoutePath bool
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
			if r.RoutePath {
				sent = r.Entry + " (" + u.Host + u.RequestURI() + ")" // the route's path, not the entry's
			}
		}
		sent += " from the sidecar in pod " + cmdutil.Printable(r.From)
	}
	var carriers []string
	for _, c := range r.Marker.Carriers() {
		carriers = append(carriers, string(c)+" "+r.Marker.Name(c))
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	fmt.Fprintf(w, "Sent %s %s with %s (marker %s)\n", method, sent, strings.Join(carriers, ", "), r.Marker.Value())
	if r.Route != nil && r.RoutePath {
		fmt.Fprintf(w, "to a path of route %s (by %s), which takes only some paths or methods\n", cmdutil.Printable(r.Route.String()), cmdutil.OrNone(cmdutil.Printable(r.Route.Owner)))
	}
	if r.SendErr != nil {
		fmt.Fprintf(w, "The request failed: %s\n", cmdutil.Printable(r.SendErr.Error()))
	} else {
		fmt.Fprintf(w, "The entry answered %s\n", statusLine(r.Status))
	}
	for _, c := range r.Marker.Carriers() {
		hs := hitsOf(r.Hits, c)
		if len(hs) == 0 {
			fmt.Fprintf(w, "✗ %s %s did not reach %s\n", c, r.Marker.Name(c), svc)
			continue
		}
		fmt.Fprintf(w, "✓ %s %s reached %s (pod %s) as %s %s%s\n", c, r.Marker.Name(c), svc, cmdutil.Printable(hs[0].Pod), cmdutil.Printable(hs[0].Method), cmdutil.Printable(hs[0].Path), andMore(len(hs)-1))
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
		fmt.Fprintf(w, "! the marker reached %s in header %s (pod %s, %s %s): a service on the way moved it there\n", svc, cmdutil.Printable(name), cmdutil.Printable(h.Pod), cmdutil.Printable(h.Method), cmdutil.Printable(h.Path))
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
			"or may call it later than the doctor waited (%s). Try a path that calls it, or a longer --wait.", svc, entry, statusLine(r.Status), svc, r.Waited),
			fmt.Sprintf("Or the entry calls %s on connections it opened before the intercept (a kept-alive pool, a gRPC channel): those stay on the original's pods, "+
				"where the intercept does not see them. Intercept with --take-over to move them, or restart the entry's pods.", svc)}
	}
	out := untaken(r)
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

// untaken says when the marked request reached the Service as a request
// the narrowed route does not take (another path or method): such
// requests go to the app in the cluster, marker or not.
func untaken(r doctorReport) []string {
	if r.Route == nil {
		return nil
	}
	for _, h := range r.Hits {
		if h.Carrier == tunnel.CarrierOther || doctor.Takes(*r.Route, h.Method, h.Path) {
			continue
		}
		what := fmt.Sprintf("The marked request reached svc/%s as %s %s, which route %s does not take: requests like it go to the app in the cluster, marker or not.",
			r.Service, cmdutil.Printable(h.Method), cmdutil.Printable(h.Path), cmdutil.Printable(r.Route.String()))
		switch {
		case !r.RoutePath:
			what += " Give --via a path that reaches the Service on a path the route takes."
		case r.From != "" && !r.Route.MethodAllowed(h.Method):
			what += fmt.Sprintf(" The sidecar in pod %s sent %s, not %s: its image is older than this CLI; close and intercept again to run the current sidecar, or give --via a URL this machine reaches to have the doctor send %s.",
				cmdutil.Printable(r.From), cmdutil.Printable(h.Method), r.Method, route.SampleMethod(*r.Route))
		}
		return []string{what}
	}
	return nil
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
