package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/hashicorp/yamux"
)

// DialFunc opens one connection toward a developer.
type DialFunc func(ctx context.Context) (net.Conn, error)

// RouteTable is what the sidecar's data plane exposes to the tunnel server.
type RouteTable interface {
	// Add installs a route that sends matching traffic through dial. It fails
	// when the route conflicts with a live one. remove uninstalls it.
	Add(r Route, dial DialFunc) (remove func(), err error)
	// List returns the live routes.
	List() []Route
}

// Server is the sidecar's end of the tunnel.
type Server struct {
	// Pod names the pod the sidecar runs in, for answers.
	Pod    string
	Routes RouteTable
	// Probe requests url from inside the cluster and returns the pod of the
	// sidecar that answered.
	Probe func(ctx context.Context, url string) (string, error)
}

// Serve accepts tunnel connections on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting tunnel connections: %w", err)
		}
		go s.serveConn(ctx, conn)
	}
}

// ServeConn runs one tunnel session over an established byte stream.
func (s *Server) ServeConn(ctx context.Context, conn io.ReadWriteCloser) {
	s.serveConn(ctx, conn)
}

func (s *Server) serveConn(ctx context.Context, conn io.ReadWriteCloser) {
	sess, err := yamux.Server(conn, Config())
	if err != nil {
		conn.Close()
		return
	}
	defer sess.Close()
	go func() {
		select {
		case <-ctx.Done():
			sess.Close()
		case <-sess.CloseChan():
		}
	}()
	ctrl, err := sess.AcceptStream()
	if err != nil {
		return
	}
	defer ctrl.Close()
	dial := func(ctx context.Context) (net.Conn, error) {
		st, err := sess.OpenStream()
		if err != nil {
			return nil, fmt.Errorf("tunnel to the developer's machine is gone: %w", err)
		}
		return st, nil
	}
	var removes []func()
	defer func() {
		for _, rm := range removes {
			rm()
		}
	}()
	c := newCodec(ctrl)
	for {
		var req Request
		if err := c.read(&req); err != nil {
			// The developer left (or their heartbeat stopped): every route
			// of this session is removed by the deferred calls.
			return
		}
		resp := Response{Pod: s.Pod}
		switch req.Op {
		case "register":
			if req.Route == nil {
				resp.Error = "register without a route"
				break
			}
			rm, err := s.Routes.Add(*req.Route, dial)
			if err != nil {
				resp.Error = err.Error()
				break
			}
			removes = append(removes, rm)
		case "unregister":
			// A developer leaving on purpose: no new request is routed to
			// them; the tunnel stays up for the requests in flight.
			for _, rm := range removes {
				rm()
			}
			removes = nil
		case "routes":
			resp.Routes = s.Routes.List()
		case "probe":
			if s.Probe == nil {
				resp.Error = "this sidecar cannot probe"
				break
			}
			pod, err := s.Probe(ctx, req.URL)
			if err != nil {
				resp.Error = err.Error()
			}
			resp.ProbedPod = pod
		default:
			resp.Error = fmt.Sprintf("unknown operation %q", req.Op)
		}
		if err := c.write(resp); err != nil {
			return
		}
	}
}

// ErrConflict is returned by RouteTable.Add for a route already taken.
var ErrConflict = errors.New("route already taken")

// ErrUnsupported is returned by Client.Register when the sidecar cannot
// match the kind of route given.
var ErrUnsupported = errors.New("route not supported")
