package local

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// The sandbox's side of the local process (--sandbox): the command runs
// in namespaces of its own on this machine (pkg/local/sandbox), with the
// pod's resolver, hostname and volume files at their paths, and every TCP
// connection dialed from a copy pod. Here: the preflight before anything
// changes, the -l ports taken on this machine's loopback and joined to the
// sandbox's, and what the sandbox gives, for the messages and status.

// SandboxSide is what status shows of a sandbox.
type SandboxSide struct {
	// Hostname is the command's hostname (the copy pod's).
	Hostname string `json:"hostname,omitempty"`
	// DNS is the resolver inside: nameserver, search path, options.
	DNS string `json:"dns,omitempty"`
	// Network says where the command's connections leave from.
	Network string `json:"network,omitempty"`
	// Mounts are the container's volume mounts at their paths; Skipped
	// says which are left out and why (sandbox.SkippedMount).
	Mounts  []string `json:"mounts,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
	// HiddenEnv are this machine's variables left out of the command's
	// environment (sandboxBaseEnv).
	HiddenEnv []string `json:"hiddenEnv,omitempty"`
	// Local are the --local destinations dialed from this machine.
	Local []string `json:"local,omitempty"`
}

// sandboxPrep is what PrepareSandbox took before the cluster changed:
// this machine's listeners on the intercepted ports.
type sandboxPrep struct {
	listeners map[int]net.Listener
}

// PrepareSandbox, with --sandbox, checks that this machine can run the
// sandbox (the preflight's error names the reason and the remedy) and,
// unless dryRun, takes the intercepted ports on this machine's loopback,
// where the tunnels deliver requests, to join them to the sandbox's.
// Both happen before anything changes in the cluster.
func (o *Options) PrepareSandbox(ports []int, dryRun bool) error {
	if !o.Sandbox {
		return nil
	}
	if err := sandbox.Check(nil); err != nil {
		return err
	}
	if err := checkOutsideTmp(o.Command); err != nil {
		return err
	}
	if err := resolveLocals(o.Locals); err != nil {
		return err
	}
	if dryRun {
		return nil
	}
	prep := &sandboxPrep{listeners: map[int]net.Listener{}}
	for _, port := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			prep.close()
			return fmt.Errorf("--sandbox: listening on localhost:%d, where intercepted requests arrive before they enter the sandbox: %w; "+
				"with --sandbox your command listens inside it, so stop what listens on %d here or pick another -l port. Nothing was changed in the cluster", port, err, port)
		}
		prep.listeners[port] = ln
	}
	o.prep = prep
	return nil
}

// resolveLocals checks that each --local name resolves on this machine
// (the sandbox resolves them again as it starts).
func resolveLocals(locals []sandbox.Local) error {
	for _, l := range locals {
		if l.Host == "" || l.Host == "localhost" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := net.DefaultResolver.LookupNetIP(ctx, "ip", l.Host)
		cancel()
		if err != nil {
			return fmt.Errorf("--local %s: resolving %s on this machine: %w; give a name this machine resolves, or an IP or CIDR. Nothing was changed in the cluster", l, l.Host, err)
		}
	}
	return nil
}

// ReleaseSandbox closes what PrepareSandbox took and a sandbox did not.
func (o *Options) ReleaseSandbox() {
	if o.prep != nil {
		o.prep.close()
	}
}

func (p *sandboxPrep) close() {
	for _, ln := range p.listeners {
		ln.Close()
	}
}

// sandboxPlan is the sandbox Start prepared: its configuration but the
// command, and what it gives.
type sandboxPlan struct {
	cfg       sandbox.Config
	listeners map[int]net.Listener
	side      SandboxSide
	// envAllow are the --env-allow names, which take in this machine's
	// session variables too.
	envAllow []string
}

// planSandbox makes the sandbox's configuration for the copy pod (pod)
// and its container c, whose files the tree holds.
func (o *Options) planSandbox(ctx context.Context, log Log, f *portforward.Follower, pod *corev1.Pod, c *corev1.Container, ls *Setup) error {
	hostname := podHostname(pod)
	if err := sandbox.CheckHostname(hostname); err != nil {
		return fmt.Errorf("--sandbox: %w", err)
	}
	dns, note, err := sandboxDNS(ctx, o, f, pod)
	if err != nil {
		return err
	}
	if note != "" {
		log.Warn("--sandbox: " + note)
	}
	dns, dropped, err := sandbox.SanitizeDNS(dns)
	if err != nil {
		return fmt.Errorf("--sandbox: %w", err)
	}
	if len(dropped) > 0 {
		log.Warn("--sandbox: left out of the pod's DNS configuration, as resolv.conf cannot carry them: " + strings.Join(dropped, ", "))
	}
	plan := &sandboxPlan{cfg: sandbox.Config{
		Hostname: hostname,
		Dial:     clusterDialer(f),
		DNS:      dns,
		Local:    o.Locals,
		Cover:    o.Cover,
		Log:      func(format string, args ...any) { log.Infof(format, args...) },
	}, envAllow: o.EnvAllow}
	if o.prep != nil {
		plan.listeners = o.prep.listeners
	}
	var skipped []sandbox.SkippedMount
	if ls.Files != nil {
		plan.cfg.Mounts, skipped = sandbox.PlanMounts(sandbox.VolumeMounts(ls.Files.Root, c), o.Cover)
	}
	plan.side = describeSandbox(plan.cfg, pod.Name)
	for _, sk := range skipped {
		plan.side.Skipped = append(plan.side.Skipped, sk.String())
	}
	_, plan.side.HiddenEnv = sandboxBaseEnv(os.Environ(), o.EnvAllow)
	ls.sandbox = plan
	return nil
}

// sandboxDNS is the resolver the sandbox gives the command: the copy
// pod's own resolv.conf, asked through the tunnel (the guess from the API
// when the sidecar cannot tell).
func sandboxDNS(ctx context.Context, o *Options, f *portforward.Follower, pod *corev1.Pod) (sandbox.DNS, string, error) {
	ask := func(context.Context) (string, error) {
		c, err := f.AnyClient()
		if err != nil {
			return "", err
		}
		return c.ResolvConf()
	}
	return sandbox.ResolveDNS(ctx, o.Client, pod, ask)
}

// podHostname is the hostname the kubelet gives the pod: spec.hostname,
// else its name (cut to a DNS label's 63 characters).
func podHostname(pod *corev1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// describeSandbox says what the sandbox gives, for the messages and status:
// cfg.Mounts are the mounts PlanMounts kept.
func describeSandbox(cfg sandbox.Config, pod string) SandboxSide {
	side := SandboxSide{Hostname: cfg.Hostname}
	dns := "nameserver " + cfg.DNS.Nameserver.String()
	if len(cfg.DNS.Search) > 0 {
		dns += ", search " + strings.Join(cfg.DNS.Search, " ")
	}
	if len(cfg.DNS.Options) > 0 {
		dns += ", options " + strings.Join(cfg.DNS.Options, " ")
	}
	side.DNS = dns + " (queries answered by the cluster's DNS, asked from pod " + pod + ")"
	side.Network = "every TCP connection leaves from pod " + pod + " (its NetworkPolicies apply); other UDP is refused"
	for _, m := range cfg.Mounts {
		side.Mounts = append(side.Mounts, m.Target)
	}
	for _, l := range cfg.Local {
		side.Local = append(side.Local, l.String())
	}
	return side
}

// MountsLine says where the container's files are in the sandbox.
func (s *SandboxSide) MountsLine() string {
	switch len(s.Mounts) {
	case 0:
		return "none of the container's volumes (no ConfigMap, Secret, downwardAPI or projected volume to show)"
	case 1:
		return "1 mount at its path, read-only and kept up to date: " + s.Mounts[0]
	}
	return fmt.Sprintf("%d mounts at their paths, read-only and kept up to date: %s", len(s.Mounts), strings.Join(s.Mounts, ", "))
}

// HiddenEnvLine says which of this machine's variables the command does
// not get, or "".
func (s *SandboxSide) HiddenEnvLine() string {
	if len(s.HiddenEnv) == 0 {
		return ""
	}
	return "this machine's " + strings.Join(s.HiddenEnv, ", ") + " left out: they lead to this machine's session, its daemons' sockets and its /tmp, which the sandbox hides (take one in with --env-allow NAME)"
}

// LocalLine says which destinations stay on this machine.
func (s *SandboxSide) LocalLine() string {
	if len(s.Local) == 0 {
		return ""
	}
	return strings.Join(s.Local, ", ") + " (dialed from this machine, not the pod)"
}

// Sandbox is what the sandbox gives the command, nil without --sandbox.
func (ls *Setup) Sandbox() *SandboxSide {
	if ls.sandbox == nil {
		return nil
	}
	return &ls.sandbox.side
}

// privateFilesDir is where the sandbox's files go without --mount: a new
// directory only this user may enter, removed at the end (and by close
// after a crash, as --mount's is).
func privateFilesDir() (string, error) {
	dir, err := os.MkdirTemp("", "kubectl-intercept-files-")
	if err != nil {
		return "", fmt.Errorf("--sandbox: a private directory for the container's files: %w (set TMPDIR to a directory of yours)", err)
	}
	return dir, nil
}
