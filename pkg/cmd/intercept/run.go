package intercept

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cores"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// runner is an intercept as Complete made it from the flags: the route,
// the ports and forwards parsed; Run resolves the Service and holds the
// intercept.
type runner struct {
	f *factory.Factory
	genericiooptions.IOStreams
	// Flags are as given; read, never changed.
	Flags
	Arg     string
	Command []string

	// Route marks the developer's requests; ports are the intercepted
	// ports, the first first; forwards the --forward flags.
	Route    route.Route
	ports    []portMap
	forwards []local.Forward

	// Namespace and Service are resolved by Run; stateKey names this
	// machine's records of the intercept, record is the one it keeps; side
	// is what the local process gets.
	Namespace string
	Service   string
	stateKey  string
	record    local.Intercept
	side      local.Options
}

// newRunner builds the runner from the flags, parsed.
func newRunner(o *Options) (*runner, error) {
	r := &runner{f: o.f, IOStreams: o.IOStreams, Flags: o.Flags, Arg: o.Arg, Command: o.Command}
	var err error
	if r.Route, err = o.wiretapRoute(); err != nil {
		return nil, err
	}
	if r.ports, err = o.portMaps(); err != nil {
		return nil, err
	}
	if r.forwards, err = parseForwards(o.Forwards); err != nil {
		return nil, err
	}
	return r, nil
}

// localOptions say what the local process gets, once the Service is known.
func (r *runner) localOptions() local.Options {
	return local.Options{Client: r.f.Client, Dynamic: r.f.Dynamic, Namespace: r.Namespace, Service: r.Service,
		RemotePort: r.ports[0].Remote, Container: r.Container, EnvFile: r.EnvFile, EnvJSON: r.EnvJSON, EnvAllow: r.EnvAllow,
		Mount: r.Mount, Forwards: r.forwards, Network: r.Network, Command: r.Command, StateKey: r.stateKey}
}

// frontOptions say what the front on this machine serves.
func (r *runner) frontOptions() local.FrontOptions {
	return local.FrontOptions{LocalPort: r.ports[0].Local, Route: r.Route, Tunnel: r.Tunnel, PublicPreview: r.publicPreview(),
		NgrokAuthtoken: r.NgrokAuthtoken, NgrokConnectURL: r.NgrokConnectURL, Inspect: r.Inspect, InspectShowSecrets: r.InspectShowSecrets,
		Ignore: r.Ignore, Record: r.Record}
}

// previewOptions say where the preview's requests enter the cluster.
func (r *runner) previewOptions() local.PreviewOptions {
	return local.PreviewOptions{Client: r.f.Client, Dial: cmdutil.DialPod(r.f), Namespace: r.Namespace, Service: r.Service,
		Via: r.PreviewVia, Port: r.PreviewPort, Public: r.publicPreview(), Route: r.Route}
}

// publicPreview says the preview goes through ngrok: --preview=ngrok, or
// --preview with --tunnel ngrok.
func (f *Flags) publicPreview() bool {
	return f.Preview == local.TunnelNgrok || (f.Preview != "" && f.Tunnel == local.TunnelNgrok)
}

// run resolves the Service and starts the intercept: in the foreground,
// held until interrupted; with --detach, in a background process it hands
// over to once the intercept is active.
func (r *runner) run(ctx context.Context) error {
	if err := r.resolveAndCheck(ctx); err != nil {
		return err
	}
	defer r.side.ReleaseSandbox()
	if r.Clean && !r.Detached {
		if err := r.clean(ctx); err != nil {
			return err
		}
	}
	if r.Detach && !r.Detached && !r.DryRun {
		return local.Detach(r.stateKey, r.Out, r.ErrOut)
	}
	p, ready := cmdutil.NewProgress(r.Out, r.ErrOut, r.Quiet), func() {}
	if r.Detached {
		out, errOut, relayReady, idErr := local.DetachedOutput()
		p, ready = cmdutil.NewProgress(out, errOut, r.Quiet), relayReady
		if idErr != nil {
			p.Warn(idErr.Error())
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fr := &local.Front{}
	if !r.DryRun {
		var err error
		if fr, err = local.OpenFront(ctx, r.frontOptions()); err != nil {
			return err
		}
		defer fr.Close()
		r.Route.Remote, r.Route.Secret = fr.Remote, fr.Secret
	}
	if !r.DryRun {
		r.warnPublicHeader(ctx, p)
		if w := session.PolicyWarning(ctx, r.f.Client, r.Namespace); w != "" {
			p.Warn(w)
		}
		if err := r.side.CheckEnv(ctx); err != nil {
			return err
		}
	}
	st, err := session.Start(ctx, r.f.Client, session.StartOptions{
		Namespace: r.Namespace, Service: r.Service, Ports: r.remotePorts(),
		ProxyImage: r.ProxyImage, ReadyTimeout: r.Timeout, DryRun: r.DryRun, Progress: p, Mode: r.mode(),
		Dynamic: r.f.Dynamic,
		// Narrowed or wiretapped, --all reads each HTTP request: the port
		// must carry them.
		AllTraffic: r.Route.WholeConnections(),
	})
	if err != nil {
		return err
	}
	if r.DryRun {
		return r.dryRun(st)
	}
	if !st.Created && r.Decoy != nil && *r.Decoy != st.Record.IsDecoy() {
		p.Warn(fmt.Sprintf("joined the intercept of service %s that is there, served by %s: --decoy=%t applies to an intercept this command starts",
			r.Service, map[bool]string{true: "decoy", false: "a copy"}[st.Record.IsDecoy()], *r.Decoy))
	}
	r.record = local.Intercept{Context: r.f.Context, Namespace: r.Namespace, Service: r.Service,
		Session: st.Record.ID, PID: os.Getpid(), Started: time.Now().UTC()}
	if err := local.Remember(r.stateKey, r.record); err != nil {
		p.Warn(fmt.Sprintf("%v: `kubectl intercept close` without an argument will not know of this intercept", err))
	}
	for _, pm := range r.ports {
		// -- CMD starts the listener later: nothing listens yet, as expected.
		if len(r.Command) == 0 && !localListening(pm.Local) {
			p.Warn(fmt.Sprintf("nothing listens on localhost:%d yet: intercepted requests fail until your service runs there", pm.Local))
		}
	}
	return r.hold(ctx, p, ready, st, fr)
}

// hold opens the tunnels, verifies the intercept is active, and holds it
// until ctx ends (Ctrl-C), the route is refused, or the intercept is ended
// elsewhere; then the developer leaves.
func (r *runner) hold(ctx context.Context, p *cmdutil.Progress, ready func(), st *session.Started, fr *local.Front) error {
	rec := st.Record
	tunnels, err := r.portTunnels(p, st, fr)
	if err != nil {
		return r.leaveAfter(st, p, err)
	}
	// The tunnels outlive Ctrl-C until Leave has let requests in flight end.
	fctx, stopTunnels := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTunnels()
	ferr := make(chan error, len(tunnels))
	for _, t := range tunnels {
		go func() { ferr <- t.follower.Run(fctx) }()
	}
	waitAll := func() {
		for range tunnels {
			<-ferr
		}
	}
	end := func(cause error) error {
		st.Settle()
		for _, t := range tunnels {
			t.follower.Leave(2 * time.Second)
		}
		stopTunnels()
		waitAll()
		return r.leave(st, p, cause)
	}
	pod, err := r.activate(ctx, p, st, tunnels)
	if err != nil {
		return end(err)
	}
	st.Settle()
	r.takeOver(ctx, p, rec)
	ls, stopLocal, err := r.startLocal(ctx, p, st, tunnels, pod, fr)
	if err != nil {
		return end(err)
	}
	defer stopLocal()
	ready()
	gone := r.watchCopy(fctx, p, rec)
	decoyChanged := r.watchDecoy(fctx, p, rec)
	// With a command, Ctrl-C goes to it first; the intercept ends when it
	// exits.
	var lc *local.Command
	ctxDone, sigs := ctx.Done(), make(chan os.Signal, 2)
	if len(r.Command) > 0 {
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		lc, err = ls.StartCommand(r.Command, os.Environ(), r.In, r.Out, r.ErrOut)
		if err != nil {
			return end(err)
		}
		ctxDone = nil
	}
	var cmdDone <-chan struct{}
	if lc != nil {
		cmdDone = lc.Done()
	}
	for {
		select {
		case <-ctxDone:
			return end(nil)
		case sig := <-sigs:
			lc.Signal(sig)
		case <-cmdDone:
			return end(lc.Result())
		case <-gone:
			// Someone else closed it: nothing of ours is left to restore.
			stopTunnels()
			waitAll()
			local.Forget(r.stateKey)
			err := fmt.Errorf("the intercept of service %s/%s was ended elsewhere (its copy %s is gone, e.g. by `kubectl intercept close --force`); your requests go to the cluster again",
				r.Namespace, r.Service, rec.Copy)
			if lc != nil {
				p.Warn(err.Error() + "; stopping " + r.Command[0])
				lc.Stop()
			}
			return err
		case err := <-decoyChanged:
			// Ended, not carried on: a decoy that is not the one the
			// intercept began with may send every caller to someone else.
			p.Warn(err.Error())
			if lc != nil {
				lc.Stop()
			}
			return end(fmt.Errorf("the intercept of service %s/%s was ended because its decoy, service %s, changed (said above)", r.Namespace, r.Service, rec.Decoy))
		case err := <-ferr:
			ferr <- err
			if lc != nil {
				p.Warn(fmt.Sprintf("%v; stopping %s", err, r.Command[0]))
				lc.Stop()
			}
			return end(err)
		}
	}
}

// takeOver, with --take-over, scales the original to zero while the copy
// serves everyone; a take-over that cannot happen is said, and the
// intercept goes on for new connections.
func (r *runner) takeOver(ctx context.Context, p *cmdutil.Progress, rec *session.Record) {
	if !r.TakeOver {
		return
	}
	if rec.IsDecoy() {
		// A session another developer started by decoy, joined.
		p.Warn(fmt.Sprintf("not taken over: %v", session.ErrTakeOverDecoy))
		return
	}
	err := session.CanTakeOver(rec.Kind)
	if err == nil {
		err = session.TakeOverOriginal(ctx, r.f.Client, rec, session.TakeOverOptions{Namespace: r.Namespace, Timeout: r.Timeout, Progress: p})
	}
	if err != nil {
		p.Warn(fmt.Sprintf("not taken over: %v. New connections reach the copy; connections callers opened before stay on %s's pods until they close", err, rec.WorkloadRef()))
	}
}

// mode is how a new session serves the Service: --decoy as given; a
// take-over needs a copy; otherwise the kind of the workload decides.
func (r *runner) mode() session.Mode {
	switch {
	case r.Decoy != nil && *r.Decoy:
		return session.ModeDecoy
	case r.Decoy != nil, r.TakeOver:
		return session.ModeCopy
	}
	return session.ModeAuto
}

// startLocal serves the preview, says the intercept is active and how to
// use it, and starts what the local process gets; stop ends both.
func (r *runner) startLocal(ctx context.Context, p *cmdutil.Progress, st *session.Started, tunnels []portTunnel, pod string, fr *local.Front) (*local.Setup, func(), error) {
	stopPreview := func() {}
	if r.Preview != "" {
		url, stop, err := local.StartPreview(ctx, r.previewOptions(), st, tunnels[0].follower, fr)
		if err != nil {
			return nil, nil, err
		}
		stopPreview = stop
		fr.PreviewURL = url
		if !r.publicPreview() {
			fr.ShowPreview(url)
		}
	}
	r.printActive(p, st, tunnels, pod, fr)
	ls, err := r.side.Start(ctx, p, st, tunnels[0].follower, pod)
	if err != nil {
		stopPreview()
		return nil, nil, err
	}
	r.printLocal(p, ls)
	if side := ls.Summary(r.Command); side != nil {
		r.record.Local = side
		_ = local.Remember(r.stateKey, r.record)
	}
	return ls, func() { ls.Stop(); stopPreview() }, nil
}

// watchCopy follows the copy while the intercept is held: the cores the
// tunnels run on, a switch back of the Service, the original's replica
// count; the channel closes when the copy is gone (ended elsewhere).
func (r *runner) watchCopy(ctx context.Context, p *cmdutil.Progress, rec *session.Record) <-chan struct{} {
	// The developer's ends of the tunnels cost the least CPU per request
	// on one core at a developer's load; a heavy one gets more.
	go cores.Adapt(ctx, time.Second, slog.New(slog.DiscardHandler))
	go session.WatchSwitch(ctx, r.f.Client, r.Namespace, r.Service, rec, p.Warn)
	go func() {
		if err := session.FollowScale(ctx, r.f.Client, r.f.Dynamic, r.Namespace, rec, p.Infof); err != nil && ctx.Err() == nil {
			p.Warn(fmt.Sprintf("%v: the copy keeps %s's replica count from the start", err, rec.WorkloadRef()))
		}
	}()
	gone := make(chan struct{})
	go func() {
		if session.WaitCopyGone(ctx, r.f.Client, r.Namespace, rec.Copy) {
			close(gone)
		}
	}()
	return gone
}

// watchDecoy follows a decoy intercept's decoy: the channel gets the
// error that ends the intercept when the decoy is deleted, replaced or
// changed (whoever controls it would receive every request that is not
// the developer's).
func (r *runner) watchDecoy(ctx context.Context, p *cmdutil.Progress, rec *session.Record) <-chan error {
	changed := make(chan error, 1)
	if !rec.IsDecoy() {
		return changed
	}
	go func() {
		err := session.WatchDecoy(ctx, r.f.Client, r.Namespace, rec)
		var dc *session.DecoyChangedError
		switch {
		case errors.As(err, &dc):
			changed <- err
		case err != nil && ctx.Err() == nil:
			p.Warn(fmt.Sprintf("cannot watch service %s, the decoy: %v; a change to it would go unnoticed", rec.Decoy, err))
		}
	}()
	return changed
}

// printLocal says what the local process has: the environment, the proxy
// and the forwards.
func (r *runner) printLocal(p *cmdutil.Progress, ls *local.Setup) {
	if ls.EnvFrom != "" {
		p.Infof("Environment: %s.", ls.EnvFrom)
		if len(ls.Withheld) > 0 {
			p.Warn(local.DescribeWithheld(ls.Withheld))
		}
		if r.EnvFile != "" {
			p.Infof("Environment written to %s (docker run --env-file).", r.EnvFile)
		}
		if r.EnvJSON != "" {
			p.Infof("Environment written to %s (JSON).", r.EnvJSON)
		}
	}
	if ls.Proxy != "" {
		p.Infof("Cluster network: SOCKS5 and HTTP proxy at %s (HTTP_PROXY=http://%s ALL_PROXY=socks5h://%s): connections leave from a copy pod.", ls.Proxy, ls.Proxy, ls.Proxy)
	}
	if ls.Files != nil {
		p.Infof("Files: %s.", ls.FilesSummary)
		for _, sk := range ls.Skipped {
			p.Infof("  not copied: %s (volume %s): %s", sk.Mount, sk.Volume, sk.Reason)
		}
	}
	for _, fw := range ls.Forwards {
		p.Infof("Forwarding %s from a copy pod.", fw)
	}
	printSandbox(p, r.Command, ls.Sandbox())
	if len(r.Command) > 0 {
		p.Infof("Running %s; the intercept ends when it exits.", strings.Join(r.Command, " "))
	}
}

// portTunnel is one intercepted port: the session's entry for it, the
// local port its requests go to, and the tunnels to every copy pod.
type portTunnel struct {
	entry    session.PortEntry
	local    int
	follower *portforward.Follower
}

// portTunnels maps the developer's ports onto the session's: one follower
// of the copy's pods for each. The first port's requests go through the
// front (the inspector, ngrok); the others' straight to their local port.
// Only the first follower opens a new pod's readiness gate.
func (r *runner) portTunnels(p *cmdutil.Progress, st *session.Started, fr *local.Front) ([]portTunnel, error) {
	rec := st.Record
	var out []portTunnel
	for i, pm := range r.ports {
		e, err := rec.EntryFor(st.Service, pm.Remote)
		if err != nil {
			return nil, err
		}
		f := &portforward.Follower{
			Config: r.f.RESTConfig, Client: r.f.Client, Namespace: r.Namespace, Record: rec,
			Selector: session.CopySelector(rec),
			Port:     int(e.Plan.ControlPort), Route: r.Route,
			Local:  net.JoinHostPort("127.0.0.1", strconv.Itoa(pm.Local)),
			NoGate: i > 0,
			Log:    func(format string, args ...any) { p.Infof(format, args...) },
		}
		if !r.PerPod {
			f.PeerPort = int(e.Plan.PeerPort)
		}
		if i == 0 {
			f.Conn = fr.Conn
		}
		if len(r.ports) > 1 {
			port := e.Port
			f.Log = func(format string, args ...any) { p.Infof("port "+port+": "+format, args...) }
		}
		out = append(out, portTunnel{entry: e, local: pm.Local, follower: f})
	}
	return out, nil
}

// leaveAfter leaves the session when the tunnels could not even start.
func (r *runner) leaveAfter(st *session.Started, p *cmdutil.Progress, cause error) error {
	st.Settle()
	return r.leave(st, p, cause)
}

// leave ends this developer's part: the tunnels are down (so the route is
// gone); the last developer out restores the Service and deletes the copy.
func (r *runner) leave(st *session.Started, p *cmdutil.Progress, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	left, err := cmdutil.ClusterOf(r.f).Leave(ctx, session.LeaveOptions{Namespace: r.Namespace, Service: r.Service,
		ID: st.Record.ID, Key: r.Route.Client, Progress: p})
	if err == nil {
		local.Forget(r.stateKey)
	}
	switch {
	case err == nil && left.Stayed():
		p.Infof("The Service %s stays switched until the last one ends: %s.", r.Service, cmdutil.WhyStayed(left))
		return cause
	case err == nil && len(left.Closed.Busy) > 0:
		p.Infof("Another kubectl-intercept is joining the intercept of service %s; the Service stays switched for it.", r.Service)
		return cause
	case err != nil:
		err = fmt.Errorf("closing the intercept: %w; run `kubectl intercept close svc/%s -n %s`", err, r.Service, r.Namespace)
		if cause == nil {
			return err
		}
		p.Warn(err.Error())
	case cause == nil || local.CommandExit(cause):
		p.Infof("Service %s/%s is restored.", r.Namespace, r.Service)
	}
	return cause
}

func localListening(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// resolve checks the permissions an intercept needs (all at once, before
// anything changes) and finds the Service.
func (r *runner) resolve(ctx context.Context) error {
	ns, name, err := cmdutil.ResolveServiceName(r.f, r.Arg)
	if err != nil {
		return err
	}
	r.stateKey = local.StateKey(r.f.Context, ns, name)
	if !r.DryRun {
		if err := session.CheckAccess(ctx, r.f.Client, r.f.Namespace, session.NeededPermissions()); err != nil {
			return err
		}
	}
	if r.Namespace, r.Service, err = cmdutil.ResolveService(r.f, r.Arg); err != nil {
		return err
	}
	r.Route.Owner = owner()
	r.Route.Client = clientID()
	r.side = r.localOptions()
	return nil
}

// clientID is this process's owner key for its routes: a secret that only
// it knows, so only it can replace them.
func clientID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// owner names the developer in messages to others: user@host.
func owner() string {
	host, _ := os.Hostname()
	name := os.Getenv("USER")
	if u, err := user.Current(); name == "" && err == nil {
		name = u.Username
	}
	if name == "" {
		name = "someone"
	}
	o := strings.Map(func(c rune) rune {
		if unicode.IsPrint(c) {
			return c
		}
		return -1
	}, strings.TrimSuffix(name+"@"+host, "@"))
	if len(o) > route.MaxOwner {
		o = o[:route.MaxOwner]
	}
	return o
}

// warnPublicHeader warns when the default header, which everyone knows,
// marks the requests of a Service that callers outside the cluster reach.
func (r *runner) warnPublicHeader(ctx context.Context, p *cmdutil.Progress) {
	rt := r.Route
	if rt.Header == "" || !strings.EqualFold(rt.Header, route.DefaultHeaderName) || rt.Value != route.DefaultHeaderValue {
		return
	}
	svc, err := r.f.Client.CoreV1().Services(r.Namespace).Get(ctx, r.Service, metav1.GetOptions{})
	if err != nil {
		return // the start says why it cannot read the Service
	}
	if exposure := session.Exposure(ctx, r.f.Client, r.f.Dynamic, svc); len(exposure) > 0 {
		p.Warn(session.PublicHeaderWarning(svc, exposure))
	}
}

// remotePorts are the Service ports asked for; nil when none was named
// (the Service's only port, or the session's when joining).
func (r *runner) remotePorts() []string {
	var out []string
	for _, pm := range r.ports {
		if pm.Remote != "" {
			out = append(out, pm.Remote)
		}
	}
	return out
}

// wiretapRoute is matchRoute, a read-only copy with --wiretap.
func (o *Options) wiretapRoute() (route.Route, error) {
	r, err := o.matchRoute()
	r.Wiretap = o.Wiretap
	return r, err
}
