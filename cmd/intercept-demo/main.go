// Command intercept-demo is the demo workload used by kubectl-intercept's
// end-to-end tests. It serves HTTP/1.1, h2c, WebSocket, Server-Sent Events and
// gRPC on one port (--listen) and a raw TCP line echo on another
// (--tcp-listen); every answer names the pod that produced it. See package
// github.com/kubectl-intercept/kubectl-intercept/pkg/demo for the endpoints.
//
// With --tunnel-listen ADDR it is also a client inside the cluster: a
// connection to ADDR that starts with CONNECT HOST:PORT is joined to a new
// connection from this pod to HOST:PORT (the end-to-end tests send their
// traffic this way, over a port-forward; keep ADDR on loopback).
//
// With --dial HOST:PORT it serves nothing: it opens one TCP connection, says
// whether it could, and exits 0 if so, 1 if not (a reachability check run as
// a pod in the tests).
//
// Environment: POD_NAME (default: the hostname), MESSAGE, and PORT, which
// sets the HTTP port when --listen is not given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/demo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "intercept-demo:", err)
		os.Exit(1)
	}
}

func run() error {
	defaultPod := os.Getenv("POD_NAME")
	if defaultPod == "" {
		defaultPod, _ = os.Hostname()
	}
	var (
		listen    = flag.String("listen", ":8080", "HTTP/1.1 + h2c + gRPC listen address (PORT env overrides the default)")
		tcpListen = flag.String("tcp-listen", ":9090", "raw TCP line-echo listen address; empty disables it")
		rawListen = flag.String("raw-listen", ":9191", "HTTP/1.1 listen address answering each request with its head as received; empty disables it")
		pod       = flag.String("pod", defaultPod, "pod name reported in answers (default $POD_NAME or the hostname)")
		message   = flag.String("message", os.Getenv("MESSAGE"), "message reported by the JSON echo (default $MESSAGE)")
		grace     = flag.Duration("shutdown-timeout", 10*time.Second, "how long to wait for requests to finish on SIGTERM")
		dial      = flag.String("dial", "", "only check that HOST:PORT accepts a TCP connection, then exit")
		tunnel    = flag.String("tunnel-listen", "", "listen address (keep it on loopback) where CONNECT HOST:PORT opens a connection from this pod to HOST:PORT; empty disables it")
	)
	flag.Parse()
	if *dial != "" {
		c, err := net.DialTimeout("tcp", *dial, 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s is not reachable: %w", *dial, err)
		}
		c.Close()
		fmt.Printf("%s accepts connections\n", *dial)
		return nil
	}
	listenSet := false
	flag.Visit(func(f *flag.Flag) { listenSet = listenSet || f.Name == "listen" })
	if port := os.Getenv("PORT"); port != "" && !listenSet {
		*listen = ":" + port
	}

	logger := log.New(os.Stdout, "", log.LstdFlags|log.LUTC)
	srv := demo.NewServer(demo.Config{Pod: *pod, Message: *message, Log: os.Stdout})
	httpSrv := srv.HTTPServer(*listen)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 4)
	go func() { errc <- httpSrv.Serve(ln) }()
	logger.Printf("pod=%s serving http/1.1, h2c and grpc on %s", *pod, ln.Addr())

	// Extra listeners: the TCP line echo and the raw head echo.
	var extra []net.Listener
	closeExtra := func() {
		for _, l := range extra {
			_ = l.Close()
		}
	}
	for _, x := range []struct {
		addr, what string
		serve      func(net.Listener) error
	}{
		{*tcpListen, "tcp line echo", srv.ServeLineEcho},
		{*rawListen, "raw http/1.1 head echo", srv.ServeRawHead},
		{*tunnel, "CONNECT tunnel", srv.ServeTunnel},
	} {
		if x.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", x.addr)
		if err != nil {
			_ = httpSrv.Close()
			closeExtra()
			return err
		}
		extra = append(extra, l)
		go func() { errc <- x.serve(l) }()
		logger.Printf("pod=%s serving %s on %s", *pod, x.what, l.Addr())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case <-ctx.Done():
		logger.Printf("pod=%s shutting down", *pod)
	case err := <-errc:
		// A listener failed unexpectedly; shut the rest down and report it.
		_ = httpSrv.Close()
		closeExtra()
		srv.Drain()
		if err == nil || errors.Is(err, http.ErrServerClosed) {
			err = errors.New("listener stopped unexpectedly")
		}
		return err
	}

	closeExtra()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Printf("pod=%s graceful shutdown incomplete: %v", *pod, err)
		_ = httpSrv.Close()
	}
	logger.Printf("pod=%s stopped", *pod)
	return nil
}
