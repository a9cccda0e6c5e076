package workload

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Speech is what a Service port says it speaks, from its appProtocol or,
// without one, its name (the "<protocol>[-<suffix>]" convention of Istio and
// Linkerd: "grpc", "http2-api", "tcp-db").
type Speech int

const (
	// SpeaksHTTP is HTTP/1.1, or nothing declared: the sidecar reads
	// requests and keeps each in the HTTP version it arrived in only for
	// gRPC.
	SpeaksHTTP Speech = iota
	// SpeaksH2C is HTTP/2 without TLS (h2c, gRPC): HTTP/2 requests stay
	// HTTP/2 on the way to the app and to the developer.
	SpeaksH2C
	// SpeaksTLS is encrypted: no header can be read in between.
	SpeaksTLS
	// SpeaksOther is a protocol that is not HTTP (a database, a queue).
	SpeaksOther
)

func (s Speech) String() string {
	switch s {
	case SpeaksH2C:
		return "HTTP/2 without TLS"
	case SpeaksTLS:
		return "TLS"
	case SpeaksOther:
		return "a protocol other than HTTP"
	}
	return "HTTP"
}

// byProtocol maps the protocol names of appProtocol values and port name
// prefixes to what they mean for the sidecar. Names not listed (and
// implementation-specific appProtocol values such as example.com/proto)
// count as HTTP, which is what an intercept by header assumes anyway.
var byProtocol = map[string]Speech{
	"http": SpeaksHTTP, "http1": SpeaksHTTP, "grpc-web": SpeaksHTTP, "kubernetes.io/ws": SpeaksHTTP,
	"h2c": SpeaksH2C, "http2": SpeaksH2C, "grpc": SpeaksH2C, "kubernetes.io/h2c": SpeaksH2C,
	"https": SpeaksTLS, "tls": SpeaksTLS, "kubernetes.io/wss": SpeaksTLS,
	"tcp": SpeaksOther, "mongo": SpeaksOther, "mysql": SpeaksOther,
	"redis": SpeaksOther, "postgres": SpeaksOther, "postgresql": SpeaksOther,
	"kafka": SpeaksOther, "amqp": SpeaksOther, "mqtt": SpeaksOther, "memcached": SpeaksOther,
	"zookeeper": SpeaksOther, "cassandra": SpeaksOther, "nats": SpeaksOther,
}

// PortSpeaks tells what p declares it speaks and where that comes from
// (for messages): appProtocol wins over the port's name.
func PortSpeaks(p *corev1.ServicePort) (Speech, string) {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		s := byProtocol[strings.ToLower(*p.AppProtocol)]
		return s, fmt.Sprintf("appProtocol %s", *p.AppProtocol)
	}
	name := strings.ToLower(p.Name)
	if s, ok := byProtocol[name]; ok {
		return s, "name " + p.Name
	}
	if prefix, _, ok := strings.Cut(name, "-"); ok {
		if s, ok := byProtocol[prefix]; ok {
			return s, "name " + p.Name
		}
	}
	return SpeaksHTTP, ""
}

// readsRequests names the flags that make even -a read each HTTP request
// (route.Route.WholeConnections): a port that carries none refuses them.
const readsRequests = "--path-prefix, --path-regex, --method or --wiretap (they read HTTP requests, which this port does not carry)"

// HeaderRoutable refuses a port whose declared protocol hides the headers
// an intercept by header (or cookie, or baggage) routes on, and says what
// to do instead.
func HeaderRoutable(svc *corev1.Service, p *corev1.ServicePort) error {
	s, from := PortSpeaks(p)
	switch s {
	case SpeaksTLS:
		return fmt.Errorf("port %s of service %s is TLS (its %s says so): the sidecar cannot read headers inside TLS; intercept every connection instead with -a, without %s, and serve TLS on your local port", portName(p), svc.Name, from, readsRequests)
	case SpeaksOther:
		return fmt.Errorf("port %s of service %s speaks %s (its %s says so): there are no headers to route on; intercept every connection instead with -a, without %s", portName(p), svc.Name, s, from, readsRequests)
	}
	return nil
}
