package intercept

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// SandboxFlags run -- CMD in the sandbox (--sandbox), with destinations
// kept on this machine (--local).
type SandboxFlags struct {
	Sandbox bool
	Locals  []string
	// Cover are the mountPaths whose volumes may cover a path of this
	// machine (--sandbox-cover).
	Cover []string
}

const sandboxExample = `

  # Run your service where it sees what the pod sees, as you, without root
  # (Linux): every client reaches the cluster by name with no proxy
  # variable, the pod's files are at their paths; a database on this
  # machine stays here
  kubectl intercept svc/my-service -l 3000 --sandbox --local localhost:5432 -- ./my-service`

// addSandboxFlags registers --sandbox and --local.
func addSandboxFlags(fl *pflag.FlagSet, o *Options) {
	fl.BoolVar(&o.Sandbox, "sandbox", false, "run -- CMD where it sees what the pod sees, as you and without root (Linux, user namespaces): every TCP connection and DNS query leaves from a copy pod "+
		"(cluster names through the pod's search path, ClusterIPs, pod IPs; no proxy variables), the container's volumes at their mountPaths, the pod's hostname; "+
		"intercepted requests reach CMD's listener on the -l port inside")
	fl.StringArrayVar(&o.Locals, "local", nil, "HOST|CIDR[:PORT]: with --sandbox, connect to this destination from this machine instead of the pod "+
		"(a database on your laptop: --local localhost:5432; a LAN: --local 192.168.1.0/24); repeatable")
	fl.StringArrayVar(&o.Cover, "sandbox-cover", nil, "PATH: with --sandbox, mount the pod's volume at PATH although this machine has PATH (or PATH is a new file in one of its directories): "+
		"inside the sandbox it then replaces this machine's for every program the command runs; repeatable")
}

// validateSandbox checks --sandbox and --local without the network.
func (o *Options) validateSandbox() error {
	if len(o.Locals) > 0 && !o.Sandbox {
		return errors.New("--local keeps destinations of the sandbox on this machine: it goes with --sandbox (without it, your command reaches the cluster only through HTTP_PROXY/ALL_PROXY and keeps this machine's network for the rest)")
	}
	if len(o.Cover) > 0 && !o.Sandbox {
		return errors.New("--sandbox-cover lets a volume of the sandbox cover a path of this machine: it goes with --sandbox")
	}
	if !o.Sandbox {
		return nil
	}
	for _, c := range o.Cover {
		if !filepath.IsAbs(c) || filepath.Clean(c) != c || c == "/" {
			return fmt.Errorf("--sandbox-cover %q: give the volume's mountPath as the pod spells it, an absolute path without a trailing slash, . or .. (e.g. --sandbox-cover /etc/app/config.yaml)", c)
		}
	}
	if len(o.Command) == 0 {
		return errors.New("--sandbox runs your command in the sandbox: give it after --, e.g. kubectl intercept svc/my-service -l 3000 --sandbox -- ./my-service")
	}
	ports, err := o.portMaps()
	if err != nil {
		return err
	}
	locals, err := parseLocals(o.Locals)
	if err != nil {
		return err
	}
	for _, l := range locals {
		if isLoopback(l) && l.Port == 0 {
			return fmt.Errorf("--local %s: this machine's loopback needs a port (--local localhost:5432): the sandbox has a loopback of its own, where that port of this machine is shown", l)
		}
		for _, pm := range ports {
			if l.Port != 0 && int(l.Port) == pm.Local && isLoopback(l) {
				return fmt.Errorf("--local %s: port %d is the -l port, where your command listens inside the sandbox; this machine's port %d cannot be shown there too: pick another -l port", l, pm.Local, pm.Local)
			}
		}
	}
	return nil
}

// parseLocals reads every --local.
func parseLocals(specs []string) ([]sandbox.Local, error) {
	var out []sandbox.Local
	for _, s := range specs {
		l, err := sandbox.ParseLocal(s)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// isLoopback says whether l is this machine's loopback, which the sandbox
// shows on its own.
func isLoopback(l sandbox.Local) bool {
	return l.Host == "localhost" || (l.Host == "" && l.Prefix.IsSingleIP() && l.Prefix.Addr().IsLoopback())
}

// resolveAndCheck resolves the Service and, with --sandbox, checks that
// this machine can run the sandbox and takes the intercepted ports here,
// all before anything changes in the cluster.
func (r *runner) resolveAndCheck(ctx context.Context) error {
	if err := r.resolve(ctx); err != nil {
		return err
	}
	if !r.Sandbox {
		return nil
	}
	locals, err := parseLocals(r.Locals)
	if err != nil {
		return err
	}
	r.side.Sandbox, r.side.Locals, r.side.Cover = true, locals, r.Cover
	ports := make([]int, len(r.ports))
	for i, pm := range r.ports {
		ports[i] = pm.Local
	}
	return r.side.PrepareSandbox(ports, r.DryRun)
}

// dryRun prints what the start would do and, with --sandbox, what the
// sandbox would give.
func (r *runner) dryRun(st *session.Started) error {
	if r.Sandbox {
		printSandboxDryRun(r.Out, r.Command, r.Locals)
	}
	return printDryRun(r.Out, st, r.Route)
}

// printSandboxDryRun says what --sandbox would give the command; the
// preflight has passed.
func printSandboxDryRun(out io.Writer, command, locals []string) {
	fmt.Fprintf(out, "# sandbox: this machine can run it; %s would run as you in namespaces of its own, where every TCP connection and DNS query leaves from a copy pod "+
		"(cluster names through the pod's search path), the container's ConfigMap, Secret, downwardAPI and projected volumes are at their mountPaths and the hostname is the copy pod's\n",
		cmdutil.Printable(strings.Join(command, " ")))
	if len(locals) > 0 {
		fmt.Fprintf(out, "# sandbox: dialed from this machine instead: %s\n", cmdutil.Printable(strings.Join(locals, ", ")))
	}
}

// printSandbox says what the sandbox gives the command.
func printSandbox(p *cmdutil.Progress, command []string, sb *local.SandboxSide) {
	if sb == nil {
		return
	}
	p.Infof("Sandbox: %s runs as you in namespaces of its own, hostname %s, no proxy variables needed:", strings.Join(command, " "), sb.Hostname)
	p.Infof("  DNS: %s", sb.DNS)
	p.Infof("  Network: %s", sb.Network)
	p.Infof("  Files: %s", sb.MountsLine())
	for _, s := range sb.Skipped {
		p.Infof("    %s", cmdutil.Printable(s))
	}
	if h := sb.HiddenEnvLine(); h != "" {
		p.Infof("  Environment: %s", h)
	}
	if l := sb.LocalLine(); l != "" {
		p.Infof("  Local: %s", l)
	}
}
