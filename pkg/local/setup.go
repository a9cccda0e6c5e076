package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/netproxy"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podfiles"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Setup is what runs on this machine for the local process.
type Setup struct {
	// env is what this machine gets of podEnv; withheld the names left out.
	env      []podenv.Var
	podEnv   []podenv.Var
	Withheld []string
	EnvFrom  string // "12 variables: 5 from configmap/app, ..."
	Proxy    string // the proxy's address, empty when it does not run
	Forwards []string
	// Files is the --mount tree; Skipped the mounts it could not copy.
	Files        *podfiles.Tree
	FilesSummary string
	Skipped      []podfiles.Skipped
	stop         func()
	// privateFiles: Files is the sandbox's own tree, not --mount's;
	// sandbox is the sandbox planned (--sandbox), ctx ends with Stop.
	privateFiles bool
	sandbox      *sandboxPlan
	ctx          context.Context
}

// CommandVars are the command's variables: the pod's, and where its files
// are.
func (ls *Setup) CommandVars() []podenv.Var {
	if ls.Files == nil || ls.privateFiles {
		return ls.env
	}
	return append(append([]podenv.Var(nil), ls.env...), podenv.Var{Name: EnvRoot, Value: ls.Files.Root, From: "--mount"})
}

// Summary is what status shows of the local side; nil when there is none.
func (ls *Setup) Summary(command []string) *Side {
	side := &Side{Environment: ls.EnvFrom, Proxy: ls.Proxy, Forwards: ls.Forwards, Command: strings.Join(command, " ")}
	if ls.Files != nil {
		side.Files = ls.FilesSummary
	}
	side.Sandbox = ls.Sandbox()
	if side.Environment == "" && side.Files == "" && side.Proxy == "" && side.Command == "" && len(side.Forwards) == 0 {
		return nil
	}
	return side
}

// EnvRoot tells the local command where --mount put the volumes' files.
const EnvRoot = "KUBECTL_INTERCEPT_ROOT"

// Start resolves the environment for the copy pod that answered,
// writes the env files, and starts the proxy and the forwards.
func (o *Options) Start(ctx context.Context, log Log, st *session.Started, f *portforward.Follower, podName string) (*Setup, error) {
	ls := &Setup{stop: func() {}}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ls.stop, ls.ctx = cancel, lctx
	if o.WantsEnv() {
		pod, c, err := o.resolveEnv(ctx, st, podName, ls)
		if err != nil {
			cancel()
			return nil, err
		}
		if err := o.writeEnvFiles(log, ls.env); err != nil {
			cancel()
			return nil, err
		}
		if o.Mount != "" || o.Sandbox {
			if err := o.mountFiles(ctx, lctx, log, pod, c, ls); err != nil {
				cancel()
				return nil, err
			}
			tree := ls.Files
			ls.stop = func() {
				cancel()
				if err := tree.Remove(); err != nil {
					log.Warn(fmt.Sprintf("removing %s: %v", tree.Root, err))
					return // the record lets close try again
				}
				forgetMount(o.StateKey)
			}
		}
		if o.Sandbox {
			if err := o.planSandbox(ctx, log, f, pod, c, ls); err != nil {
				ls.Stop()
				return nil, err
			}
		}
	}
	dial := clusterDialer(f)
	if o.WantsNetwork() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			return nil, fmt.Errorf("starting the local proxy into the cluster's network: %w", err)
		}
		ls.Proxy = ln.Addr().String()
		px := &netproxy.Proxy{Dial: dial, Log: func(format string, args ...any) { log.Infof(format, args...) }}
		go func() { _ = px.Serve(lctx, ln) }()
	}
	for _, fw := range o.Forwards {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(fw.Local)))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("--forward %d:%s: %w; pick another local port (--forward LOCAL:%s)", fw.Local, fw.Target, err, fw.Target)
		}
		ls.Forwards = append(ls.Forwards, fmt.Sprintf("localhost:%d -> %s", fw.Local, fw.Target))
		target := fw.Target
		go func() {
			_ = netproxy.Forward(lctx, ln, dial, target, func(err error) {
				log.Warn(fmt.Sprintf("--forward %s: %v", target, err))
			})
		}()
	}
	return ls, nil
}

// StartCommand starts the developer's command with the pod's environment
// over base (this machine's): in the sandbox with --sandbox (no proxy
// variables of ours: it needs none), else here with the local proxy's.
func (ls *Setup) StartCommand(argv, base []string, in io.Reader, out, errOut io.Writer) (*Command, error) {
	if ls.sandbox != nil {
		base, _ = sandboxBaseEnv(base, ls.sandbox.envAllow)
		return ls.startSandboxed(ls.ctx, argv, CommandEnv(base, ls.CommandVars(), ""), in, out, errOut)
	}
	return StartCommand(argv, CommandEnv(base, ls.CommandVars(), ls.Proxy), in, out, errOut)
}

// Stop stops the proxy, the forwards and the files' updates, and removes
// the files.
func (ls *Setup) Stop() { ls.stop() }

// clusterDialer dials through one of the tunnels of the intercept, another
// when a tunnel is gone.
func clusterDialer(f *portforward.Follower) netproxy.Dialer {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var last error
		for attempt := 0; attempt < 3; attempt++ {
			c, err := f.AnyClient()
			if err != nil {
				last = err
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
				continue
			}
			conn, err := c.DialCluster(ctx, addr)
			var de *tunnel.DialError
			if err == nil || errors.As(err, &de) {
				return conn, err
			}
			last = err // the tunnel went: try another
		}
		return nil, last
	}
}
