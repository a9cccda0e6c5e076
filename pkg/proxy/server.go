package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// Config is the sidecar's configuration.
type Config struct {
	// Listen is where callers' traffic arrives (the Service's targetPort).
	Listen string
	// Upstream is the app container, host:port.
	Upstream string
	// Control is the tunnel's listen address; loopback, so only the pod
	// port-forward reaches it. Empty disables tunnels.
	Control string
	// Pod names this pod.
	Pod string
	// H2C: the port speaks HTTP/2 with prior knowledge (appProtocol h2c).
	H2C bool
	// Static routes (standalone mode): header match to a fixed address.
	Static []StaticRoute
	// DrainDelay is how long to keep serving after SIGTERM before closing
	// idle connections, so endpoints have moved away first.
	DrainDelay time.Duration
	// Ready, if set, is called once both listeners are bound.
	Ready func(data, control net.Addr)
}

// StaticRoute sends requests whose Header equals Value to Addr.
type StaticRoute struct {
	Header, Value, Addr string
}

// Run serves until ctx ends, then drains.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	table := &Table{}
	for _, s := range cfg.Static {
		addr := s.Addr
		_, err := table.Add(tunnel.Route{Header: s.Header, Value: s.Value, Owner: "--route " + addr},
			func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			})
		if err != nil {
			return err
		}
	}
	h := NewHandler(table, cfg.Upstream, cfg.Pod, log)
	h.H2C = cfg.H2C

	dataLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening for traffic on %s: %w", cfg.Listen, err)
	}
	var ctrlLn net.Listener
	if cfg.Control != "" {
		ctrlLn, err = net.Listen("tcp", cfg.Control)
		if err != nil {
			dataLn.Close()
			return fmt.Errorf("listening for tunnels on %s: %w", cfg.Control, err)
		}
	}
	if cfg.Ready != nil {
		var ca net.Addr
		if ctrlLn != nil {
			ca = ctrlLn.Addr()
		}
		cfg.Ready(dataLn.Addr(), ca)
	}

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Protocols = &p

	srvCtx, stopTunnels := context.WithCancel(context.Background())
	defer stopTunnels()
	if ctrlLn != nil {
		ts := &tunnel.Server{Pod: cfg.Pod, Routes: table, Probe: probe}
		go ts.Serve(srvCtx, ctrlLn)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(&allListener{Listener: dataLn, table: table, ctx: srvCtx, log: log}) }()
	log.Info("serving", "listen", dataLn.Addr().String(), "upstream", cfg.Upstream, "control", cfg.Control)

	select {
	case err := <-errc:
		return fmt.Errorf("serving traffic: %w", err)
	case <-ctx.Done():
	}
	// Drain: the Service has (or is about to have) moved away; keep
	// answering for a moment, then close idle keep-alive connections and
	// send HTTP/2 GOAWAY, and let requests in flight finish.
	time.Sleep(cfg.DrainDelay)
	shCtx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// probe requests url with the probe header; a sidecar answers it itself.
func probe(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(tunnel.ProbeHeader, "1")
	req.Close = true // a new connection each time: a fresh kube-proxy decision
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("probing %s: %w", url, err)
	}
	resp.Body.Close()
	pod := resp.Header.Get(tunnel.ProbePodHeader)
	if resp.StatusCode != http.StatusNoContent || pod == "" {
		return "", fmt.Errorf("probing %s: answered by something other than a sidecar (status %d)", url, resp.StatusCode)
	}
	return pod, nil
}

// allListener hands connections to an --all route before HTTP sees them.
type allListener struct {
	net.Listener
	table *Table
	ctx   context.Context
	log   *slog.Logger
}

func (l *allListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if r := l.table.all(); r != nil {
			go pipeToRoute(l.ctx, c, r, l.log)
			continue
		}
		return c, nil
	}
}
