package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// Client is the developer's end of one tunnel session (one sidecar).
type Client struct {
	sess *yamux.Session
	mu   sync.Mutex // one control call at a time
	ctrl *codec
}

// NewClient starts a tunnel session over conn and opens its control stream.
func NewClient(conn io.ReadWriteCloser) (*Client, error) {
	sess, err := yamux.Client(coalesce(conn), Config())
	if err != nil {
		return nil, fmt.Errorf("starting tunnel session: %w", err)
	}
	st, err := sess.OpenStream()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("opening tunnel control stream: %w", err)
	}
	return &Client{sess: sess, ctrl: newCodec(st)}, nil
}

func (c *Client) call(req Request) (Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var resp Response
	if err := c.ctrl.write(req); err != nil {
		return resp, fmt.Errorf("sending %s to the sidecar: %w", req.Op, err)
	}
	if err := c.ctrl.read(&resp); err != nil {
		return resp, fmt.Errorf("reading the sidecar's answer to %s: %w", req.Op, err)
	}
	resp.printable()
	return resp, resp.err()
}

// Register installs the route in the sidecar for as long as this session
// lives, and returns the sidecar's pod.
// It is tagged (see RegisterTagged) with the owner tag of r.Client, so
// RoutesOf(r.Client) marks it Mine; a CLI that registers a pod key
// derived from its owner key passes that owner key's tag instead.
func (c *Client) Register(r route.Route) (string, error) {
	return c.RegisterTagged(r, OwnerTag(r.Client))
}

// RegisterTagged is Register with the owner tag (OwnerTag) of the key r's
// Client is derived from, by which `routes` marks it Mine. A route
// narrowed by path or method goes as OpRegisterNarrowed, which a sidecar
// too old to narrow refuses whole; a wiretap route as OpRegisterWiretap.
func (c *Client) RegisterTagged(r route.Route, tag string) (string, error) {
	if r.Wiretap {
		resp, err := c.call(Request{Op: OpRegisterWiretap, Route: &r, Tag: tag})
		if errors.Is(err, ErrUnsupported) {
			return resp.Pod, fmt.Errorf("%w: the sidecar in pod %s is older than this kubectl-intercept: it has no wiretap; "+
				"once nobody else intercepts the Service, run `kubectl intercept close` on it and start again so the copy runs the new sidecar", ErrUnsupported, resp.Pod)
		}
		return resp.Pod, err
	}
	if r.Narrowed() {
		resp, err := c.call(Request{Op: OpRegisterNarrowed, Route: &r, Tag: tag})
		if errors.Is(err, ErrUnsupported) {
			return resp.Pod, fmt.Errorf("%w: the sidecar in pod %s is older than this kubectl-intercept: it can't narrow a route by path or method; "+
				"run `kubectl intercept close` and intercept again so the copy runs the new sidecar, or drop --path-prefix, --path-regex and --method", ErrUnsupported, resp.Pod)
		}
		// A sidecar that knows narrowing knows cookies, baggage and
		// remote endpoints too: nothing more to check.
		return resp.Pod, err
	}
	resp, err := c.call(Request{Op: "register", Route: &r, Tag: tag})
	if err != nil || r.All || (r.Header != "" && r.Remote == "") {
		return resp.Pod, err
	}
	// A sidecar older than cookie, baggage and remote routes drops the
	// fields it does not know and installs a route that matches nothing
	// or sends it the wrong way: make sure it holds this one as sent.
	routes, err := c.Routes()
	if err != nil {
		return resp.Pod, err
	}
	for _, got := range routes {
		if got.Cookie == r.Cookie && got.Baggage == r.Baggage && got.Value == r.Value && got.Remote == r.Remote {
			return resp.Pod, nil
		}
	}
	return resp.Pod, fmt.Errorf("%w: the sidecar in pod %s cannot match %s, its image is older than this CLI; "+
		"use -x NAME:VALUE instead, or, once nobody else intercepts the Service, run `kubectl intercept close` on it and intercept again to get a current sidecar", ErrUnsupported, resp.Pod, r)
}

// Unregister removes this session's routes from the sidecar while the
// tunnel stays up, so requests in flight can finish.
func (c *Client) Unregister() error {
	_, err := c.call(Request{Op: "unregister"})
	return err
}

// InFlight is the number of intercepted connections open on the session.
func (c *Client) InFlight() int {
	if n := c.sess.NumStreams() - 1; n > 0 { // minus the control stream
		return n
	}
	return 0
}

// Routes lists the sidecar's live routes.
func (c *Client) Routes() ([]route.Route, error) {
	return c.RoutesOf("")
}

// RoutesOf lists the sidecar's live routes with those of owner key marked
// Mine. The key stays here: the sidecar is asked by its tag (OwnerTag).
func (c *Client) RoutesOf(key string) ([]route.Route, error) {
	resp, err := c.call(Request{Op: "routes", Key: OwnerTag(key)})
	return resp.Routes, err
}

// Probe asks the sidecar to request url from inside the cluster and returns
// the pod whose sidecar answered.
func (c *Client) Probe(url string) (string, error) {
	resp, err := c.call(Request{Op: "probe", URL: url})
	return resp.ProbedPod, err
}

// Serve pipes every connection the sidecar opens to a connection from dial
// (the local port) until the session ends or ctx is done. onErr, if set, is
// told about each connection that could not be dialed.
func (c *Client) Serve(ctx context.Context, dial DialFunc, onErr func(error)) error {
	return c.ServeConns(ctx, func(st net.Conn) {
		local, err := dial(ctx)
		if err != nil {
			st.Close()
			if onErr != nil {
				onErr(err)
			}
			return
		}
		Pipe(st, local)
	})
}

// ServeConns hands every connection the sidecar opens to serve, each on its
// own goroutine, until the session ends or ctx is done.
func (c *Client) ServeConns(ctx context.Context, serve func(net.Conn)) error {
	go func() {
		select {
		case <-ctx.Done():
			c.sess.Close()
		case <-c.sess.CloseChan():
		}
	}()
	for {
		st, err := c.sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tunnel session ended: %w", err)
		}
		go serve(st)
	}
}

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// Close ends the session; the sidecar removes its routes at once.
func (c *Client) Close() error { return c.sess.Close() }

// Pipe copies both ways between a and b until both directions end, passing
// half-closes on where the connection supports them, then closes both.
func Pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyHalf(a, b) }()
	go func() { defer wg.Done(); copyHalf(b, a) }()
	wg.Wait()
	a.Close()
	b.Close()
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil && CloseWrite(dst) {
		return
	}
	// An error, or no way to half-close: end both directions.
	dst.Close()
	src.Close()
}

// CloseWrite passes an end of stream on through c, keeping its other
// direction open, and says whether c could: a TCP connection closes its
// write side; a tunnel stream sends FIN (closing a yamux stream still
// reads).
func CloseWrite(c net.Conn) bool {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return true
	}
	if st, ok := c.(*yamux.Stream); ok {
		st.Close()
		return true
	}
	return false
}
