package doctor

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// What `doctor` reads from its flags: where the request enters (--via) and
// which carriers of the marker to test (-x, --cookie, --baggage).

// DoctorEntry is where the doctor's request enters: a URL this machine reaches,
// or a Service a sidecar requests from inside the cluster.
type DoctorEntry struct {
	URL string
	// Service, Namespace (empty: the intercepted Service's), Port (by
	// name or number; empty: the only one) and Path (with the query) of a
	// Service entry.
	Service, Namespace, Port, Path string
	// NoPath says the entry names no path but "/", and no query: "/" is
	// sent, or, for a route narrowed by path or method, a path the route
	// takes.
	NoPath bool
}

// parseEntry reads --via: http(s)://HOST[/PATH], or
// svc/NAME[.NAMESPACE][:PORT][/PATH] (also service/ and services/).
func parseEntry(s string) (DoctorEntry, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DoctorEntry{}, errors.New("say where the request enters with --via: a URL (https://HOST/PATH) or a Service (svc/NAME[:PORT][/PATH])")
	}
	if rest, _, ok := cmdutil.CutServicePrefix(s); ok {
		return parseServiceEntry(s, rest)
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
		return DoctorEntry{URL: s, NoPath: (u.Path == "" || u.Path == "/") && u.RawQuery == "" && !strings.HasSuffix(s, "?")}, nil
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
	return DoctorEntry{Service: name, Namespace: ns, Port: port, Path: path, NoPath: path == "/"}, nil
}

// entryPort picks the Service port an entry names, by name or number, or
// the only one when it names none.
func entryPort(svc *corev1.Service, key string) (int32, error) {
	if key == "" && len(svc.Spec.Ports) > 1 {
		names := make([]string, len(svc.Spec.Ports))
		for i, p := range svc.Spec.Ports {
			names[i] = portLabel(p)
		}
		return 0, fmt.Errorf("service %s has ports %s: say which, as svc/%s:PORT", svc.Name, strings.Join(names, ", "), svc.Name)
	}
	p, err := workload.SelectPort(svc, key)
	if err != nil {
		return 0, err
	}
	return p.Port, nil
}

func portLabel(p corev1.ServicePort) string {
	if p.Name == "" {
		return strconv.Itoa(int(p.Port))
	}
	return fmt.Sprintf("%d (%s)", p.Port, p.Name)
}

// markerNames reads -x, --cookie and --baggage the way intercept takes
// them, keeping the names only, and returns the carriers that must arrive:
// those named, or the header when none is.
func markerNames(header, cookie, baggage string) (tunnel.Marker, []tunnel.Carrier, error) {
	m := tunnel.Marker{Header: route.DefaultHeaderName, Cookie: DefaultDoctorCookie, Baggage: DefaultDoctorBaggage}
	var expect []tunnel.Carrier
	if header != "" {
		name, _, _ := strings.Cut(header, ":")
		if _, _, err := route.ParseHeader(name + ":v"); err != nil {
			return m, nil, err
		}
		m.Header = strings.TrimSpace(name)
		expect = append(expect, tunnel.CarrierHeader)
	}
	if cookie != "" {
		name, _, _ := strings.Cut(cookie, "=")
		if _, _, err := route.ParseCookie(name + "=v"); err != nil {
			return m, nil, err
		}
		m.Cookie = strings.TrimSpace(name)
		expect = append(expect, tunnel.CarrierCookie)
	}
	if baggage != "" {
		key, _, _ := strings.Cut(baggage, "=")
		if _, _, err := route.ParseBaggage(key + "=v"); err != nil {
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
