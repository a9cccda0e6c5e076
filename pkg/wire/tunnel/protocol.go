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
	"time"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
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

// Request is one call on the control stream.
type Request struct {
	// Op is register (or OpRegisterNarrowed), unregister, contest (see
	// contest.go), routes or probe; and, for `kubectl intercept doctor`,
	// watch, seen or send (see doctor.go).
	Op    string       `json:"op"`
	Route *route.Route `json:"route,omitempty"`
	// URL is what a probe or a send requests, from inside the cluster.
	URL string `json:"url,omitempty"`
	// Host is the Host header of a send (the Service's DNS name; URL
	// holds its ClusterIP, which needs no cluster DNS).
	Host string `json:"host,omitempty"`
	// Method is a send's method: GET when empty (a sidecar older than it
	// sends GET whatever it says).
	Method string `json:"method,omitempty"`
	// Marker is what a watch looks for and what a send carries.
	Marker *Marker `json:"marker,omitempty"`
	// Key is the asking CLI's owner tag (OwnerTag of its owner key), for
	// routes: its own routes are marked Mine in the answer; and, for
	// admit, the pod key (PodKey) a relay must prove on this pod. The
	// owner key itself never leaves the CLI.
	Key string `json:"key,omitempty"`
	// Tag is the registering CLI's owner tag: it names the owner across
	// pods for routes' Mine and proves nothing (see keys.go).
	Tag string `json:"tag,omitempty"`
	// Nonce names the watch whose hits seen returns.
	Nonce string `json:"nonce,omitempty"`
}

// OpRegisterNarrowed is register for a route narrowed by path or method
// (route.Route.Narrowed). A sidecar older than narrowing would drop the
// fields it does not know and install the route whole (an --all route
// with a path would take every connection); it does not know this
// operation either, so it installs nothing and answers CodeUnsupported.
const OpRegisterNarrowed = "registerNarrowed"

// OpRegisterWiretap is register for a wiretap route (route.Route.Wiretap):
// a sidecar older than the wiretap would install it as an intercept and
// take the developer's requests from the app; it does not know this
// operation either, so it installs nothing and answers CodeUnsupported.
const OpRegisterWiretap = "registerWiretap"

// Response answers a Request.
type Response struct {
	Error string `json:"error,omitempty"`
	// Code classifies Error (see errors.go).
	Code   Code          `json:"code,omitempty"`
	Pod    string        `json:"pod,omitempty"`
	Routes []route.Route `json:"routes,omitempty"`
	// ProbedPod is the pod whose sidecar answered a probe.
	ProbedPod string `json:"probedPod,omitempty"`
	// Hits are the requests a watch recorded, for seen.
	Hits []Hit `json:"hits,omitempty"`
	// Status is the HTTP status that answered a send.
	Status int `json:"status,omitempty"`
	// ResolvConf is the pod's /etc/resolv.conf, for OpResolvConf.
	ResolvConf string `json:"resolvConf,omitempty"`
}

// printable makes the names a sidecar answers with safe to print, at the
// source: a pod's name or a probed pod that is not printable comes back
// quoted (and so matches no pod of the copy), as do the method, path and
// names of the requests a doctor's watch recorded.
func (r *Response) printable() {
	r.Pod, r.ProbedPod = Printable(r.Pod), Printable(r.ProbedPod)
	for i := range r.Hits { // what a caller sent, recorded for the doctor
		h := &r.Hits[i]
		h.Name, h.Method, h.Path, h.Pod = Printable(h.Name), Printable(h.Method), Printable(h.Path), Printable(h.Pod)
	}
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
	line, err := readLine(c.r, MaxControlLine)
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// MaxControlLine bounds one line of a control stream, a relay link or a
// dial request: a longer one ends the stream. Anyone with pods/portforward
// reaches the control port, so a line without a newline must not grow
// without end (a 640 MB sidecar before this bound).
const MaxControlLine = 64 << 10

// ErrLineTooLong is a control line past MaxControlLine.
var ErrLineTooLong = fmt.Errorf("a control line longer than %d bytes", MaxControlLine)

// readLine reads one newline-terminated line of at most max bytes.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			return nil, ErrLineTooLong
		}
		switch {
		case err == nil && line == nil:
			return chunk, nil // the usual case: the whole line in the buffer
		case err == nil:
			return append(line, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		default:
			return nil, err
		}
	}
}
