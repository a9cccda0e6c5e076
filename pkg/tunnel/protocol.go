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
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/yamux"
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

// Route says which requests go to one developer: those that carry a header
// (Header), a cookie (Cookie) or a W3C baggage member (Baggage) with Value,
// exactly one of the three; or every connection (All). A Route with only
// Header and Value, as CLIs before cookie and baggage routes send, is a
// header match.
type Route struct {
	// Header is matched case-insensitively; Value exactly.
	Header string `json:"header,omitempty"`
	// Cookie names a cookie of the request's Cookie headers; its value,
	// without surrounding double quotes, must be Value.
	Cookie string `json:"cookie,omitempty"`
	// Baggage is the key of a member of the request's baggage headers; its
	// value, percent-decoded, must be Value.
	Baggage string `json:"baggage,omitempty"`
	// Value is what the header, cookie or baggage member must equal; for
	// Baggage it is held percent-decoded.
	Value string `json:"value,omitempty"`
	// All routes every connection of the port, whatever it carries.
	All bool `json:"all,omitempty"`
	// Owner names the developer (user@host) for messages to others.
	Owner string `json:"owner,omitempty"`
	// Client identifies one running CLI. A registration from the same
	// client replaces its earlier one, which a sidecar may not yet have
	// seen drop when the client reconnects.
	Client string `json:"client,omitempty"`
	// Remote, when set, is an HTTPS endpoint (an ngrok URL) that matching
	// requests are sent to instead of this tunnel; the tunnel then only
	// holds the route and its heartbeat.
	Remote string `json:"remote,omitempty"`
	// Secret goes with every request sent to Remote, so the developer's
	// end can refuse strangers who find the URL. It travels only on the
	// control stream and a sidecar never lists it.
	Secret string `json:"secret,omitempty"`
}

// String renders the route the way the CLI's flags take it: name:value
// for -x, "cookie name=value" for --cookie, "baggage key=value" for
// --baggage (the value percent-encoded, as a baggage header carries it).
func (r Route) String() string {
	switch {
	case r.All:
		return "all traffic"
	case r.Cookie != "":
		return "cookie " + r.Cookie + "=" + r.Value
	case r.Baggage != "":
		return "baggage " + r.Baggage + "=" + EscapeBaggage(r.Value)
	}
	return r.Header + ":" + r.Value
}

// Conflicts reports whether two routes would claim the same requests: an
// All route conflicts with every route, others when they match the same
// header (in any case), cookie or baggage key with the same value.
func (r Route) Conflicts(o Route) bool {
	if r.All || o.All {
		return true
	}
	return http.CanonicalHeaderKey(r.Header) == http.CanonicalHeaderKey(o.Header) &&
		r.Cookie == o.Cookie && r.Baggage == o.Baggage && r.Value == o.Value
}

// Validate reports what makes a route one a sidecar cannot match: it must
// be All or name exactly one of a header, a cookie and a baggage key, with
// a value that kind of field can carry.
func (r Route) Validate() error {
	if err := checkRemote(r.Remote, r.Secret); err != nil {
		return err
	}
	if r.All {
		if r.Remote != "" {
			return errors.New("every connection (--all) can't go through a remote endpoint: it carries HTTP requests only")
		}
		return nil
	}
	var err error
	named := 0
	if r.Header != "" {
		named++
		err = checkHeader(r.Header, r.Value)
	}
	if r.Cookie != "" {
		named++
		err = checkCookie(r.Cookie, r.Value)
	}
	if r.Baggage != "" {
		named++
		err = checkBaggage(r.Baggage, r.Value)
	}
	switch {
	case named == 0:
		return errors.New("the route names no header, cookie or baggage key to match (is the CLI newer than this sidecar?)")
	case named > 1:
		return fmt.Errorf("the route names more than one of header %q, cookie %q and baggage key %q; a route matches one", r.Header, r.Cookie, r.Baggage)
	}
	return err
}

// Request is one call on the control stream.
type Request struct {
	// Op is register, unregister, routes or probe; and, for `kubectl
	// intercept doctor`, watch, seen or send (see doctor.go).
	Op    string `json:"op"`
	Route *Route `json:"route,omitempty"`
	// URL is what a probe or a send requests, from inside the cluster.
	URL string `json:"url,omitempty"`
	// Host is the Host header of a send (the Service's DNS name; URL
	// holds its ClusterIP, which needs no cluster DNS).
	Host string `json:"host,omitempty"`
	// Marker is what a watch looks for and what a send carries.
	Marker *Marker `json:"marker,omitempty"`
	// Nonce names the watch whose hits seen returns.
	Nonce string `json:"nonce,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error string `json:"error,omitempty"`
	// Code classifies Error (see errors.go).
	Code   Code    `json:"code,omitempty"`
	Pod    string  `json:"pod,omitempty"`
	Routes []Route `json:"routes,omitempty"`
	// ProbedPod is the pod whose sidecar answered a probe.
	ProbedPod string `json:"probedPod,omitempty"`
	// Hits are the requests a watch recorded, for seen.
	Hits []Hit `json:"hits,omitempty"`
	// Status is the HTTP status that answered a send.
	Status int `json:"status,omitempty"`
}

// fail sets the answer to a failed call: the message and its code.
func (r *Response) fail(err error) {
	r.Error, r.Code = err.Error(), codeOf(err)
}

// err is the error a failed answer carries, nil for a success.
func (r *Response) err() error {
	if r.Error == "" {
		return nil
	}
	code := r.Code
	if _, ok := sentinels[code]; !ok {
		code = CodeFailed
	}
	return &RemoteError{Code: code, Message: r.Error}
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
