// Package tunnel carries intercepted connections from the sidecar back to the
// developer's machine: a multiplexed session (yamux) over one byte stream,
// usually a Kubernetes pod port-forward to the sidecar's loopback-only
// control port. The developer's side opens the first stream, the control
// stream, and registers its route on it; every stream the sidecar opens after
// that is one intercepted connection, to be piped to the local port.
package tunnel

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/net/http/httpguts"
)

// Heartbeat timing. A laptop that sleeps keeps its sockets open, so only a
// missed heartbeat tells the sidecar that the developer is gone: the route is
// dropped at most KeepAliveInterval+KeepAliveTimeout after the last answer.
const (
	KeepAliveInterval = 1 * time.Second
	KeepAliveTimeout  = 3 * time.Second
)

// Config is the yamux configuration both ends use.
func Config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = KeepAliveInterval
	c.ConnectionWriteTimeout = KeepAliveTimeout
	c.StreamOpenTimeout = 10 * time.Second
	c.LogOutput = io.Discard
	return c
}

// DefaultHeader is the header czctl users know: requests carrying
// X-C6O-INTERCEPT: yes are intercepted unless another header is given.
const (
	DefaultHeaderName  = "X-C6O-INTERCEPT"
	DefaultHeaderValue = "yes"
)

// ProbeHeader marks a request a sidecar answers itself (204, naming its pod)
// instead of routing it: it proves that traffic sent to the Service's
// ClusterIP reaches a sidecar.
const (
	ProbeHeader    = "X-Kubectl-Intercept-Probe"
	ProbePodHeader = "X-Kubectl-Intercept-Pod"
)

// Route says which requests go to one developer.
type Route struct {
	// Header is matched case-insensitively; Value exactly.
	Header string `json:"header,omitempty"`
	Value  string `json:"value,omitempty"`
	// All routes every connection of the port, whatever it carries.
	All bool `json:"all,omitempty"`
	// Owner names the developer (user@host) for messages to others.
	Owner string `json:"owner,omitempty"`
	// Client identifies one running CLI. A registration from the same
	// client replaces its earlier one, which a sidecar may not yet have
	// seen drop when the client reconnects.
	Client string `json:"client,omitempty"`
}

// String renders the route the way the CLI's -x flag takes it.
func (r Route) String() string {
	if r.All {
		return "all traffic"
	}
	return r.Header + ":" + r.Value
}

// Conflicts reports whether two routes would claim the same requests.
func (r Route) Conflicts(o Route) bool {
	if r.All || o.All {
		return true
	}
	return http.CanonicalHeaderKey(r.Header) == http.CanonicalHeaderKey(o.Header) && r.Value == o.Value
}

// ParseHeader parses the -x flag's name:value.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" || value == "" {
		return "", "", fmt.Errorf("header %q is not name:value (for example x-dev:alice)", s)
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return "", "", fmt.Errorf("header name %q has a character HTTP does not allow in header names", name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return "", "", fmt.Errorf("header value %q has a control character HTTP does not allow in header values", value)
	}
	return name, value, nil
}

// Request is one call on the control stream.
type Request struct {
	Op    string `json:"op"` // register, routes, probe
	Route *Route `json:"route,omitempty"`
	// URL is what a probe requests, from inside the cluster.
	URL string `json:"url,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error  string  `json:"error,omitempty"`
	Pod    string  `json:"pod,omitempty"`
	Routes []Route `json:"routes,omitempty"`
	// ProbedPod is the pod whose sidecar answered a probe.
	ProbedPod string `json:"probedPod,omitempty"`
}

// codec reads and writes newline-delimited JSON on a stream.
type codec struct {
	r *bufio.Reader
	w io.Writer
}

func newCodec(rw io.ReadWriter) *codec { return &codec{r: bufio.NewReader(rw), w: rw} }

func (c *codec) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.w.Write(append(b, '\n'))
	return err
}

func (c *codec) read(v any) error {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}
