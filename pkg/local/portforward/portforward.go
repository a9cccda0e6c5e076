package portforward

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go's port-forward dialers still return this package's types
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// DialPod opens one byte stream to port on the pod's loopback through the
// API server's pods/portforward subresource, as kubectl port-forward does:
// WebSocket first (RBAC: get pods/portforward), SPDY as the fallback (RBAC:
// create pods/portforward). Closing the returned stream ends the
// port-forward connection.
func DialPod(ctx context.Context, cfg *rest.Config, namespace, pod string, port int) (io.ReadWriteCloser, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("parsing API server address %q: %w", cfg.Host, err)
	}
	u.Path, err = url.JoinPath(u.Path, "api/v1/namespaces", namespace, "pods", pod, "portforward")
	if err != nil {
		return nil, err
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("preparing port-forward transport: %w", err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	wsDialer, err := newWSDialer(u, cfg)
	if err != nil {
		return nil, fmt.Errorf("preparing port-forward transport: %w", err)
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})

	conn, err := dialWithTimeout(ctx, dialer, DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
	}
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: creating error stream: %w", namespace, pod, err)
	}
	errStream.Close() // we only read from it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("port-forward to pod %s/%s: creating data stream: %w", namespace, pod, err)
	}
	s := &podStream{Stream: data, conn: conn}
	go func() {
		// The kubelet reports a failed dial inside the pod on the error
		// stream; that ends the whole connection.
		msg, _ := io.ReadAll(errStream)
		if len(msg) > 0 {
			s.err.Store(fmt.Errorf("port-forward to pod %s/%s port %d: %s", namespace, pod, port, msg))
			s.Close()
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-conn.CloseChan():
		}
	}()
	return s, nil
}

// DialTimeout bounds the port-forward upgrade: the dialers have no timeout
// of their own, and a dial that hangs would hold a pod's tunnel forever.
const DialTimeout = 10 * time.Second

func dialWithTimeout(ctx context.Context, d httpstream.Dialer, timeout time.Duration) (httpstream.Connection, error) {
	type result struct {
		conn httpstream.Connection
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		c, _, err := d.Dial(portforward.PortForwardProtocolV1Name)
		ch <- result{c, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
	case <-t.C:
	}
	go func() {
		if r := <-ch; r.conn != nil {
			r.conn.Close()
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("no answer within %s", timeout)
}

type podStream struct {
	httpstream.Stream
	conn httpstream.Connection
	err  atomic.Value
}

func (s *podStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil {
		if e, ok := s.err.Load().(error); ok {
			return n, e
		}
	}
	return n, err
}

func (s *podStream) Close() error {
	s.Reset()
	return s.conn.Close()
}
