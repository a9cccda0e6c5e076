package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// startSandboxed starts argv with env in the sandbox ls planned, and joins
// this machine's intercepted ports to the sandbox's loopback.
func (ls *Setup) startSandboxed(ctx context.Context, argv, env []string, in io.Reader, out, errOut io.Writer) (*Command, error) {
	cfg := ls.sandbox.cfg
	cfg.Argv, cfg.Env = argv, env
	cfg.Stdin, cfg.Stdout, cfg.Stderr = in, out, errOut
	sb, err := sandbox.Start(ctx, cfg)
	if err != nil {
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			return nil, &ExitError{Code: coded.ExitCode(), Err: err}
		}
		return nil, &ExitError{Code: 1, Err: err}
	}
	for port, ln := range ls.sandbox.listeners {
		go forwardIntoSandbox(ls.ctx, sb, ln, port)
	}
	lc := &Command{done: make(chan struct{}), interactive: isTerminal(in),
		signal: func(sig os.Signal) error {
			s, ok := sig.(syscall.Signal)
			if !ok {
				return nil
			}
			return sb.Signal(s)
		},
		kill: sb.Kill,
	}
	go func() {
		_ = sb.Wait()
		if code := sb.ExitCode(); code != 0 {
			lc.code = code
		}
		close(lc.done)
	}()
	return lc, nil
}

// forwardIntoSandbox joins each connection ln accepts (the tunnels deliver
// intercepted requests to this machine's 127.0.0.1:port) to the sandbox's
// 127.0.0.1:port, where the command listens, until ctx or the sandbox
// ends. (Sandbox.ForwardLoopback does the joining; this also answers a
// request that finds nothing listening inside, as the front does when
// nothing listens on this machine.)
func forwardIntoSandbox(ctx context.Context, sb *sandbox.Sandbox, ln net.Listener, port int) {
	go func() {
		select {
		case <-ctx.Done():
		case <-sb.Done():
		}
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			t, err := sb.DialLoopback(ctx, port)
			if err != nil {
				refuseNothingListens(c, port, err)
				return
			}
			tunnel.Pipe(c, t)
		}()
	}
}

// refuseNothingListens answers an HTTP request with a 502 that says
// nothing listens on the port inside the sandbox (the caller in the
// cluster and the inspector see why); anything else is closed.
func refuseNothingListens(c net.Conn, port int, err error) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, rerr := http.ReadRequest(bufio.NewReader(c)); rerr != nil {
		return
	}
	msg := fmt.Sprintf("kubectl intercept: nothing answers on 127.0.0.1:%d inside the sandbox on the developer's machine (%v).\n"+
		"Start your service there (it runs in the sandbox: listen on port %d), then send the request again.\n", port, err, port)
	_, _ = fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(msg), msg)
}
