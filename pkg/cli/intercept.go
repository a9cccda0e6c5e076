package cli

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

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cores"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/ngrok"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel/portforward"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/workload"
)

// EnvProxyImage overrides the default sidecar image.
const EnvProxyImage = "KUBECTL_INTERCEPT_PROXY_IMAGE"

const interceptExample = `  # Requests with header X-C6O-INTERCEPT: yes to my-service go to localhost:3000
  kubectl intercept svc/my-service -l 3000

  # Port 8080 of a Service in namespace shop, for requests with x-dev: alice
  kubectl intercept svc/my-service -n shop -r 8080 -l 3000 -x x-dev:alice

  # Requests from a browser that holds the cookie dev=alice (the command
  # prints the line to paste in the browser's devtools console)
  kubectl intercept svc/my-service -l 3000 --cookie dev=alice

  # Requests whose OpenTelemetry baggage has dev=alice, however deep
  # my-service is in the call graph
  kubectl intercept svc/my-service -l 3000 --baggage dev=alice

  # Every connection to the port, whatever its headers
  kubectl intercept svc/my-service -l 3000 --all

  # Two ports of the Service at once: its port http to localhost:3000 and
  # its port grpc to localhost:3001, for the same header
  kubectl intercept svc/my-service -p 3000:http -p 3001:grpc

  # Run your service with the pod's environment and the cluster's network
  # (HTTP_PROXY, ALL_PROXY); the intercept ends when it exits
  kubectl intercept svc/my-service -l 3000 -- go run ./cmd/my-service

  # A database the service needs, on localhost:5432, through the pod
  kubectl intercept svc/my-service -l 3000 --forward 5432:postgres.db:5432 -- ./my-service

  # Return at once and keep the intercept in the background until closed
  kubectl intercept svc/my-service -l 3000 --detach
  kubectl intercept close svc/my-service`

// InterceptOptions are the inputs of `kubectl intercept svc/NAME`.
type InterceptOptions struct {
	f *factory.Factory
	genericiooptions.IOStreams

	RemotePort string
	LocalPort  int
	// PortMaps are the -p LOCAL:REMOTE flags, for several ports at once.
	PortMaps []string
	// ports are the ports intercepted, from -p or -l/-r, the first first.
	ports []portMap
	// The local side: the container whose environment the local process
	// gets, the files it is written to, the forwards into the cluster's
	// network, the local proxy without a command, and the command (after --).
	Container string
	EnvFile   string
	EnvJSON   string
	// EnvAllow names variables of the pod taken in although they could run
	// code or change tools on this machine (podenv.Withheld).
	EnvAllow []string
	Forwards []string
	forwards []forwardSpec
	Network  bool
	// PerPod opens a tunnel to every copy pod instead of one to a relay.
	PerPod  bool
	Command []string
	Mount   string
	// local is this machine's record of the intercept.
	local localIntercept
	// Header, Cookie, Baggage and All say which requests are the
	// developer's: one of them, or none for the default header.
	Header     string
	Cookie     string
	Baggage    string
	All        bool
	Clean      bool
	Force      bool
	Quiet      bool
	Wait       bool
	Detach     bool
	DryRun     bool
	ProxyImage string
	Timeout    time.Duration
	// Tunnel is how requests reach this machine: builtin (through the
	// Kubernetes API) or ngrok.
	Tunnel         string
	NgrokAuthtoken string
	// Inspect is the inspector's address, or "false".
	Inspect string
	// InspectShowSecrets shows credential headers on the inspector's page.
	InspectShowSecrets bool
	// Preview is "local" for a preview URL on this machine; PreviewVia an
	// entry point in front of the Service; PreviewPort its local port.
	Preview     string
	PreviewVia  string
	PreviewPort int
	// ngrokConnectURL replaces ngrok's service address (--ngrok-connect-url,
	// hidden: for a stand-in service).
	ngrokConnectURL string
	// detached is set in the background process that holds the tunnels.
	detached bool

	// Arg is the Service argument as given (svc/NAME).
	Arg       string
	Namespace string
	Service   string
	Route     route.Route
	stateKey  string
}

// NewCmdIntercept builds the root command, which starts an intercept.
func NewCmdIntercept(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InterceptOptions{f: f, IOStreams: streams, Timeout: 2 * time.Minute}
	cmd := &cobra.Command{
		Use:         "kubectl-intercept [svc/]NAME (-l LOCAL_PORT [-r REMOTE_PORT] | -p LOCAL:REMOTE...) [-x name:value | --cookie name=value | --baggage key=value | -a] [-- CMD [ARGS...]]",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl intercept"},
		Short:       "Send a Service's requests that carry your header to a port on your machine",
		Long: `Intercept a Service: requests that carry your header (or cookie, or baggage
member) go to LOCAL_PORT on this machine, every other request keeps going to
the workload in the cluster.

kubectl-intercept copies the workload behind the Service with a proxy sidecar,
points the Service at the copy once it is ready, and tunnels matching requests
back over the Kubernetes API (pods/portforward): no agent, no privileges, no
account. Ctrl-C (or 'kubectl intercept close') ends it; the last developer out
puts back what the intercept changed in the Service (its selector and
targetPort) and keeps any change someone else made meanwhile.

czctl's flag names work too: --remotePort, --localPort, -k for --kubeconfig.`,
		Example: interceptExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				args = args[:dash]
			}
			return cobra.MaximumNArgs(1)(cmd, args)
		},
		ValidArgsFunction: serviceArgCompletion(f, false),
		SilenceUsage:      true,
		SilenceErrors:     true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				o.Command = args[dash:]
				args = args[:dash]
			}
			if len(args) == 0 {
				return cmd.Help()
			}
			// Complete reads only the flags and the environment here, and
			// Validate needs what it read.
			return runSteps(cmd.Context(), func() error { return o.Complete(cmd, args) }, o.Validate, o.Run)
		},
	}
	cmd.SetContext(context.Background())
	fl := cmd.Flags()
	fl.StringVarP(&o.RemotePort, "remote-port", "r", "", "Service port to intercept, by name or number (optional when the Service has one port; czctl: --remotePort)")
	fl.IntVarP(&o.LocalPort, "local-port", "l", 0, "local port intercepted requests go to (czctl: --localPort)")
	fl.StringVar(&o.Container, "container", "", "the container whose environment the local process gets (default: the one serving the intercepted port)")
	fl.StringVar(&o.EnvFile, "env-file", "", "write the container's environment to this file, as `docker run --env-file` reads it")
	fl.StringVar(&o.EnvJSON, "env-json", "", "write the container's environment to this file as a JSON object")
	fl.StringArrayVar(&o.EnvAllow, "env-allow", nil, "NAME: take in the pod's variable NAME although it could run code or change tools on this machine (NODE_OPTIONS, LD_*, GIT_*, PATH...; see docs/security.md); repeatable")
	fl.StringArrayVar(&o.Forwards, "forward", nil, "[LOCAL_PORT:]HOST:PORT: listen on 127.0.0.1:LOCAL_PORT and connect to HOST:PORT from a copy pod (cluster DNS names work); repeatable")
	fl.StringVar(&o.Mount, "mount", "", "write the container's ConfigMap, Secret, downwardAPI and projected volumes under this new or empty directory at their mountPaths, kept up to date and removed at the end (the command gets KUBECTL_INTERCEPT_ROOT)")
	fl.BoolVar(&o.PerPod, "tunnel-per-pod", false, "open a tunnel (an API-server port-forward) to every pod of the copy, instead of one to a pod that relays the route to the others over the pod network")
	fl.BoolVar(&o.Network, "network", false, "serve a SOCKS5 and HTTP proxy on 127.0.0.1 into the cluster's network, through a copy pod (always on with -- CMD)")
	fl.StringArrayVarP(&o.PortMaps, "port", "p", nil, "LOCAL:REMOTE: intercept Service port REMOTE (name or number) to local port LOCAL, as kubectl port-forward spells it; repeat for several ports (instead of -l and -r)")
	fl.StringVarP(&o.Header, "header", "x", route.DefaultHeaderName+":"+route.DefaultHeaderValue, "name:value of the header that marks your requests (name case-insensitive); used unless --cookie, --baggage or --all is given")
	fl.StringVar(&o.Cookie, "cookie", "", "name=value of a cookie that marks your requests, for a browser, which cannot add a header")
	fl.StringVar(&o.Baggage, "baggage", "", "key=value of a W3C baggage member that marks your requests (value percent-encoded); OpenTelemetry carries it across services")
	fl.BoolVarP(&o.All, "all", "a", false, "intercept every connection to the port, whatever its headers")
	fl.BoolVarP(&o.Clean, "clean", "c", false, "first end this machine's earlier intercept of the Service and clean up what crashed intercepts left (others' live routes stay unless --force)")
	fl.BoolVar(&o.Force, "force", false, "with -c: end other developers' live intercepts of the Service too")
	fl.BoolVarP(&o.Quiet, "quiet", "q", false, "print only errors")
	fl.BoolVarP(&o.Wait, "wait", "w", false, "stay in the foreground until Ctrl-C or SIGTERM, then close; what happens without --detach anyway (czctl's flag)")
	fl.BoolVarP(&o.Detach, "detach", "d", false, "return once the intercept is active and hold it in a background process until 'kubectl intercept close'")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the copy and the Service change as YAML; change nothing")
	fl.StringVar(&o.ProxyImage, "proxy-image", "", "sidecar image (default: $"+EnvProxyImage+", else "+version.ProxyImage()+")")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the copy's pods and the tunnels")
	fl.StringVar(&o.Tunnel, "tunnel", tunnelBuiltin, "how intercepted requests reach this machine: builtin (through the Kubernetes API, no account) or ngrok (an HTTPS endpoint of your ngrok account)")
	fl.StringVar(&o.NgrokAuthtoken, "ngrok-authtoken", "", "ngrok authtoken for --tunnel ngrok (default: $"+ngrok.EnvAuthtoken+", which keeps it out of the process list)")
	fl.StringVar(&o.Preview, "preview", "", "serve a preview URL that sends every request into the cluster carrying your header, cookie or baggage: --preview alone: on this machine (http://127.0.0.1:PORT/); --preview=ngrok: a public URL behind a password (also --preview with --tunnel ngrok)")
	fl.Lookup("preview").NoOptDefVal = previewLocal
	fl.StringVar(&o.PreviewVia, "preview-via", "", "where preview requests enter the cluster: svc/NAME[.NAMESPACE][:PORT] or ingress/NAME (default: the intercepted Service)")
	fl.IntVar(&o.PreviewPort, "preview-port", 0, "local port of the preview URL (default: any free port)")
	fl.StringVar(&o.ngrokConnectURL, "ngrok-connect-url", "", "")
	_ = fl.MarkHidden("ngrok-connect-url")
	fl.BoolVar(&o.InspectShowSecrets, "inspect-show-secrets", false, "show Authorization, Cookie, Set-Cookie and Proxy-Authorization values on the inspector's page (redacted by default)")
	fl.StringVar(&o.Inspect, "inspect", "127.0.0.1:4040", "address of the local web page that shows the intercepted requests (the next free port if taken); --inspect=false turns it off")
	fl.BoolVar(&o.detached, "detached", false, "")
	_ = fl.MarkHidden("detached")
	_ = cmd.RegisterFlagCompletionFunc("remote-port", remotePortCompletion(f))
	_ = cmd.RegisterFlagCompletionFunc("tunnel", cobra.FixedCompletions([]string{tunnelBuiltin, tunnelNgrok}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"local-port", "header", "cookie", "baggage", "proxy-image", "timeout", "ngrok-authtoken", "inspect"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// Complete reads the flags, the kubeconfig and the environment; it makes
// no network call.
func (o *InterceptOptions) Complete(cmd *cobra.Command, args []string) error {
	if !cmd.Flags().Changed("header") {
		o.Header = "" // the default applies only when nothing else is given
	}
	if err := o.f.Complete(); err != nil {
		return err
	}
	o.Arg = args[0]
	if o.ProxyImage == "" {
		o.ProxyImage = os.Getenv(EnvProxyImage)
	}
	if o.ProxyImage == "" {
		o.ProxyImage = version.ProxyImage()
	}
	if o.NgrokAuthtoken == "" {
		o.NgrokAuthtoken = os.Getenv(ngrok.EnvAuthtoken)
	}
	return nil
}

// matchRoute builds the route from -x, --cookie, --baggage or --all, which
// may not be combined; with none of them, the default header.
func (o *InterceptOptions) matchRoute() (route.Route, error) {
	given := 0
	for _, set := range []bool{o.Header != "", o.Cookie != "", o.Baggage != "", o.All} {
		if set {
			given++
		}
	}
	if given > 1 {
		return route.Route{}, errors.New("-x, --cookie, --baggage and --all each say which requests are yours; give only one of them")
	}
	switch {
	case o.All:
		return route.Route{All: true}, nil
	case o.Cookie != "":
		name, value, err := route.ParseCookie(o.Cookie)
		return route.Route{Cookie: name, Value: value}, err
	case o.Baggage != "":
		key, value, err := route.ParseBaggage(o.Baggage)
		return route.Route{Baggage: key, Value: value}, err
	case o.Header == "":
		return route.Route{Header: route.DefaultHeaderName, Value: route.DefaultHeaderValue}, nil
	}
	name, value, err := route.ParseHeader(o.Header)
	return route.Route{Header: name, Value: value}, err
}

// Validate checks the flags without the network, so a mistake is reported
// at once.
func (o *InterceptOptions) Validate() error {
	var err error
	if o.Route, err = o.matchRoute(); err != nil {
		return err
	}
	if len(o.PortMaps) > 0 {
		if err := o.validatePortMaps(); err != nil {
			return err
		}
	} else {
		if o.LocalPort < 1 || o.LocalPort > 65535 {
			if o.DryRun && o.LocalPort == 0 {
				return nil
			}
			return errors.New("say where intercepted requests go with -l LOCAL_PORT (1-65535), or -p LOCAL:REMOTE for each port")
		}
		o.ports = []portMap{{Local: o.LocalPort, Remote: o.RemotePort}}
	}
	if err := o.validatePreview(); err != nil {
		return err
	}
	if err := o.validateLocal(); err != nil {
		return err
	}
	if o.Force && !o.Clean {
		return errors.New("--force goes with -c (end others' live intercepts while cleaning up); to end an intercept use kubectl intercept close --force")
	}
	if o.Wait && o.Detach {
		return errors.New("-w (stay in the foreground) and --detach contradict each other; pick one")
	}
	if o.Timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	switch o.Tunnel {
	case tunnelBuiltin, "":
	case tunnelNgrok:
		if o.All {
			return errors.New("--all sends raw connections, which need the built-in tunnel: leave out --tunnel ngrok")
		}
		if o.NgrokAuthtoken == "" && !o.DryRun {
			return errors.New("--tunnel ngrok needs your ngrok authtoken: set " + ngrok.EnvAuthtoken +
				" (or pass --ngrok-authtoken); it is on https://dashboard.ngrok.com/get-started/your-authtoken")
		}
	default:
		return fmt.Errorf("--tunnel %q: use builtin or ngrok", o.Tunnel)
	}
	return nil
}

// Run starts the intercept and, like kubectl port-forward, holds the
// tunnels in the foreground until interrupted, then closes. With --detach a
// background process holds them and Run returns once the intercept is active.
func (o *InterceptOptions) Run(ctx context.Context) error {
	if err := o.resolve(ctx); err != nil {
		return err
	}
	if o.Clean && !o.detached {
		if err := o.clean(ctx); err != nil {
			return err
		}
	}
	if o.Detach && !o.detached && !o.DryRun {
		return detach(o.stateKey, o.Out, o.ErrOut)
	}
	p, ready := newProgress(o.Out, o.ErrOut, o.Quiet), func() {}
	if o.detached {
		p, ready = detachedProgress(o.Quiet)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fr := &front{}
	if !o.DryRun {
		var err error
		if fr, err = o.openFront(ctx); err != nil {
			return err
		}
		defer fr.close()
		o.Route.Remote, o.Route.Secret = fr.remote, fr.secret
	}
	if !o.DryRun {
		o.warnPublicHeader(ctx, p)
		if w := session.PolicyWarning(ctx, o.f.Client, o.Namespace); w != "" {
			p.Warn(w)
		}
		if err := o.checkEnv(ctx); err != nil {
			return err
		}
	}
	st, err := session.Start(ctx, o.f.Client, session.StartOptions{
		Namespace: o.Namespace, Service: o.Service, Ports: o.remotePorts(),
		ProxyImage: o.ProxyImage, ReadyTimeout: o.Timeout, DryRun: o.DryRun, Progress: p,
		Dynamic:    o.f.Dynamic,
		AllTraffic: o.Route.All,
	})
	if err != nil {
		return err
	}
	if o.DryRun {
		return printDryRun(o.Out, st)
	}
	o.local = localIntercept{Context: o.f.Context, Namespace: o.Namespace, Service: o.Service,
		Session: st.Record.ID, PID: os.Getpid(), Started: time.Now().UTC()}
	if err := rememberLocal(o.stateKey, o.local); err != nil {
		p.Warn(fmt.Sprintf("%v: `kubectl intercept close` without an argument will not know of this intercept", err))
	}
	for _, pm := range o.ports {
		if !localListening(pm.Local) {
			p.Warn(fmt.Sprintf("nothing listens on localhost:%d yet: intercepted requests fail until your service runs there", pm.Local))
		}
	}
	return o.hold(ctx, p, ready, st, fr)
}

// hold opens the tunnels, verifies the intercept is active, and holds it
// until ctx ends (Ctrl-C), the route is refused, or the intercept is ended
// elsewhere; then the developer leaves.
func (o *InterceptOptions) hold(ctx context.Context, p *progress, ready func(), st *session.Started, fr *front) error {
	rec := st.Record
	tunnels, err := o.portTunnels(p, st, fr)
	if err != nil {
		return o.leaveAfter(st, p, err)
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
		return o.leave(st, p, cause)
	}
	pod, err := o.activate(ctx, p, st, tunnels)
	if err != nil {
		return end(err)
	}
	st.Settle()
	if o.Preview != "" {
		url, stopPreview, err := o.startPreview(ctx, st, tunnels[0].follower, fr)
		if err != nil {
			return end(err)
		}
		defer stopPreview()
		fr.previewURL = url
		if !o.publicPreview() {
			fr.previewLink.Store(url)
		}
	}
	o.printActive(p, st, tunnels, pod, fr)
	ls, err := o.startLocal(ctx, p, st, tunnels[0].follower, pod)
	if err != nil {
		return end(err)
	}
	defer ls.stop()
	o.printLocal(p, ls)
	if side := ls.summary(o.Command); side != nil {
		o.local.Local = side
		_ = rememberLocal(o.stateKey, o.local)
	}
	ready()
	// The developer's ends of the tunnels cost the least CPU per request
	// on one core at a developer's load; a heavy one gets more.
	go cores.Adapt(fctx, time.Second, slog.New(slog.DiscardHandler))
	go session.WatchSwitch(fctx, o.f.Client, o.Namespace, o.Service, rec, p.Warn)
	go func() {
		if err := session.FollowScale(fctx, o.f.Client, o.f.Dynamic, o.Namespace, rec, p.Infof); err != nil && fctx.Err() == nil {
			p.Warn(fmt.Sprintf("%v: the copy keeps %s's replica count from the start", err, rec.WorkloadRef()))
		}
	}()
	gone := make(chan struct{})
	go func() {
		if session.WaitCopyGone(fctx, o.f.Client, o.Namespace, rec.Copy) {
			close(gone)
		}
	}()
	// With a command, Ctrl-C goes to it first; the intercept ends when it
	// exits.
	var lc *localCommand
	ctxDone, sigs := ctx.Done(), make(chan os.Signal, 2)
	if len(o.Command) > 0 {
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		lc, err = startCommand(o.Command, commandEnv(os.Environ(), ls.commandVars(), ls.proxy), o.In, o.Out, o.ErrOut)
		if err != nil {
			return end(err)
		}
		ctxDone = nil
	}
	var cmdDone <-chan struct{}
	if lc != nil {
		cmdDone = lc.done
	}
	for {
		select {
		case <-ctxDone:
			return end(nil)
		case sig := <-sigs:
			lc.signal(sig)
		case <-cmdDone:
			return end(lc.result())
		case <-gone:
			// Someone else closed it: nothing of ours is left to restore.
			stopTunnels()
			waitAll()
			forgetLocal(o.stateKey)
			err := fmt.Errorf("the intercept of service %s/%s was ended elsewhere (its copy %s is gone, e.g. by `kubectl intercept close --force`); your requests go to the cluster again",
				o.Namespace, o.Service, rec.Copy)
			if lc != nil {
				p.Warn(err.Error() + "; stopping " + o.Command[0])
				lc.stop()
			}
			return err
		case err := <-ferr:
			ferr <- err
			if lc != nil {
				p.Warn(fmt.Sprintf("%v; stopping %s", err, o.Command[0]))
				lc.stop()
			}
			return end(err)
		}
	}
}

// printLocal says what the local process has: the environment, the proxy
// and the forwards.
func (o *InterceptOptions) printLocal(p *progress, ls *localSide) {
	if ls.envFrom != "" {
		p.Infof("Environment: %s.", ls.envFrom)
		if len(ls.withheld) > 0 {
			p.Warn(describeWithheld(ls.withheld))
		}
		if o.EnvFile != "" {
			p.Infof("Environment written to %s (docker run --env-file).", o.EnvFile)
		}
		if o.EnvJSON != "" {
			p.Infof("Environment written to %s (JSON).", o.EnvJSON)
		}
	}
	if ls.proxy != "" {
		p.Infof("Cluster network: SOCKS5 and HTTP proxy at %s (HTTP_PROXY=http://%s ALL_PROXY=socks5h://%s): connections leave from a copy pod.", ls.proxy, ls.proxy, ls.proxy)
	}
	if ls.files != nil {
		p.Infof("Files: %s.", ls.filesSummary)
		for _, sk := range ls.skipped {
			p.Infof("  not copied: %s (volume %s): %s", sk.Mount, sk.Volume, sk.Reason)
		}
	}
	for _, fw := range ls.forwards {
		p.Infof("Forwarding %s from a copy pod.", fw)
	}
	if len(o.Command) > 0 {
		p.Infof("Running %s; the intercept ends when it exits.", strings.Join(o.Command, " "))
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
func (o *InterceptOptions) portTunnels(p *progress, st *session.Started, fr *front) ([]portTunnel, error) {
	rec := st.Record
	var out []portTunnel
	for i, pm := range o.ports {
		e, err := rec.EntryFor(st.Service, pm.Remote)
		if err != nil {
			return nil, err
		}
		f := &portforward.Follower{
			Config: o.f.RESTConfig, Client: o.f.Client, Namespace: o.Namespace, Record: rec,
			Selector: session.CopySelector(rec),
			Port:     int(e.Plan.ControlPort), Route: o.Route,
			Local:  net.JoinHostPort("127.0.0.1", strconv.Itoa(pm.Local)),
			NoGate: i > 0,
			Log:    func(format string, args ...any) { p.Infof(format, args...) },
		}
		if !o.PerPod {
			f.PeerPort = int(e.Plan.PeerPort)
		}
		if i == 0 {
			f.Conn = fr.conn
		}
		if len(o.ports) > 1 {
			port := e.Port
			f.Log = func(format string, args ...any) { p.Infof("port "+port+": "+format, args...) }
		}
		out = append(out, portTunnel{entry: e, local: pm.Local, follower: f})
	}
	return out, nil
}

// leaveAfter leaves the session when the tunnels could not even start.
func (o *InterceptOptions) leaveAfter(st *session.Started, p *progress, cause error) error {
	st.Settle()
	return o.leave(st, p, cause)
}

// activate waits until every ready pod of the copy holds the route on each
// port (or some of the developer's requests would miss the laptop), the
// Service's endpoints are the copy's, and requests to each port's ClusterIP
// reach sidecars; it returns the pod whose sidecar answered the last probe.
func (o *InterceptOptions) activate(ctx context.Context, p *progress, st *session.Started, tunnels []portTunnel) (string, error) {
	rec := st.Record
	want := 1
	if d, err := o.f.Client.AppsV1().Deployments(o.Namespace).Get(ctx, rec.Copy, metav1.GetOptions{}); err == nil && d.Status.ReadyReplicas > 1 {
		want = int(d.Status.ReadyReplicas)
	}
	done := p.Step(fmt.Sprintf("putting the route on the copy's %d pod(s)", want))
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	var err error
	for _, t := range tunnels {
		if err = t.follower.WaitRegistered(wctx, want); err != nil {
			break
		}
	}
	cancel()
	done(err)
	if err != nil {
		return "", err
	}
	done = p.Step("checking that service " + o.Service + " reaches the sidecars only")
	err = session.WaitEndpointsOnCopy(ctx, o.f.Client, o.Namespace, o.Service, rec, o.Timeout)
	var pod string
	for _, t := range tunnels {
		if err != nil {
			break
		}
		pod, err = verifyActive(ctx, t.follower, st.Service, t.entry.Port, o.Timeout)
	}
	done(err)
	return pod, err
}

func (o *InterceptOptions) printActive(p *progress, st *session.Started, tunnels []portTunnel, pod string, fr *front) {
	r := o.Route
	what := "requests with " + r.String()
	switch {
	case r.All:
		what = "every connection"
	case r.Header != "":
		what = "requests with header " + r.String()
	}
	if len(tunnels) == 1 {
		p.Infof("Intercepting service %s/%s port %s: %s go to localhost:%d (verified through pod %s).", o.Namespace, o.Service, tunnels[0].entry.Port, what, tunnels[0].local, pod)
	} else {
		var ports []string
		for _, t := range tunnels {
			ports = append(ports, fmt.Sprintf("port %s to localhost:%d", t.entry.Port, t.local))
		}
		p.Infof("Intercepting service %s/%s, %s on %s (verified through pod %s).", o.Namespace, o.Service, what, strings.Join(ports, ", "), pod)
	}
	url := fmt.Sprintf("http://%s.%s:%s/", o.Service, o.Namespace, servicePort(st.Service, tunnels[0].entry.Port))
	if !r.All {
		p.Infof("Try it from inside the cluster: curl -H %s %s", shellQuote(headerLine(r)), url)
	}
	switch {
	case r.Cookie != "":
		p.Infof("From a browser, open your frontend, paste in its devtools console and reload: document.cookie = \"%s=%s; path=/\"", r.Cookie, r.Value)
	case r.Baggage != "":
		p.Infof("OpenTelemetry SDKs pass baggage on with every call a service makes: requests that start with it come here however deep %s is in the call graph.", o.Service)
	}
	if fr.remote != "" {
		p.Infof("Requests reach this machine through ngrok endpoint %s; it refuses requests that lack this intercept's secret.", fr.remote)
	}
	if fr.inspectURL != "" {
		p.Infof("See each intercepted request at %s", fr.inspectURL)
	}
	if fr.inspectWarning != "" {
		p.Warn(fr.inspectWarning)
	}
	if fr.previewURL != "" {
		p.Infof("Preview: %s sends every request into the cluster with %s: open it in a browser to click through the system with your version of %s.", fr.previewURL, describeMarker(r), o.Service)
	}
	if !o.detached {
		p.Infof("Press Ctrl-C to end the intercept.")
	} else {
		p.Infof("End it with: kubectl intercept close svc/%s -n %s", o.Service, o.Namespace)
	}
}

// leave ends this developer's part: the tunnels are down (so the route is
// gone); the last developer out restores the Service and deletes the copy.
func (o *InterceptOptions) leave(st *session.Started, p *progress, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	left, err := clusterOf(o.f).Leave(ctx, session.LeaveOptions{Namespace: o.Namespace, Service: o.Service,
		ID: st.Record.ID, Key: o.Route.Client, Progress: p})
	if err == nil {
		forgetLocal(o.stateKey)
	}
	switch {
	case err == nil && left.Stayed():
		p.Infof("The Service %s stays switched until the last one ends: %s.", o.Service, whyStayed(left))
		return cause
	case err == nil && len(left.Closed.Busy) > 0:
		p.Infof("Another kubectl-intercept is joining the intercept of service %s; the Service stays switched for it.", o.Service)
		return cause
	case err != nil:
		err = fmt.Errorf("closing the intercept: %w; run `kubectl intercept close svc/%s -n %s`", err, o.Service, o.Namespace)
		if cause == nil {
			return err
		}
		p.Warn(err.Error())
	case cause == nil || commandExit(cause):
		p.Infof("Service %s/%s is restored.", o.Namespace, o.Service)
	}
	return cause
}

// activeProbes is how many probes in a row must reach sidecars. Each is a
// new connection that kube-proxy balances at random over the endpoints it
// has programmed; while half of them were still the original's, ten in a
// row would reach sidecars by chance once in a thousand.
const activeProbes = 10

// verifyActive asks a sidecar to request the Service's ClusterIP with the
// probe header until sidecars answer activeProbes times in a row: kube-proxy
// then sends new connections to the copy.
func verifyActive(ctx context.Context, f *portforward.Follower, svc *corev1.Service, port string, timeout time.Duration) (string, error) {
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, servicePort(svc, port)) + "/"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	streak := 0
	for {
		c, err := f.AnyClient()
		if err == nil {
			var pod string
			if pod, err = c.Probe(url); err == nil {
				if streak++; streak == activeProbes {
					return pod, nil
				}
				continue
			}
		}
		streak = 0
		last = err
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("requests to service %s (%s) did not reach a sidecar within %s: %w", svc.Name, url, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// headerLine is the header field that a request carries to match r (not
// an --all route).
func headerLine(r route.Route) string {
	switch {
	case r.Cookie != "":
		return "Cookie: " + r.Cookie + "=" + r.Value
	case r.Baggage != "":
		return "baggage: " + r.Baggage + "=" + route.EscapeBaggage(r.Value)
	}
	return r.Header + ": " + r.Value
}

// shellQuote quotes s for a POSIX shell, for commands printed to paste.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// servicePort is the number of the Service port key names (by name or
// number), or key itself when the Service has no such port.
func servicePort(svc *corev1.Service, key string) string {
	if i := workload.PortIndex(svc, key); i >= 0 {
		return strconv.Itoa(int(svc.Spec.Ports[i].Port))
	}
	return key
}

func localListening(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func printDryRun(out interface{ Write([]byte) (int, error) }, st *session.Started) error {
	if st.Copy == nil {
		fmt.Fprintf(out, "# service %s is intercepted already (deployment %s): this intercept would join it with a route of its own; nothing would be created or switched\n",
			st.Service.Name, printable(st.Record.Copy))
		return nil
	}
	svc := st.Switched.DeepCopy()
	svc.APIVersion, svc.Kind = "v1", "Service"
	svc.ManagedFields = nil
	for _, obj := range []any{st.Copy, svc} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "---\n%s", b)
	}
	return nil
}

// resolve checks the permissions an intercept needs (all at once, before
// anything changes) and finds the Service.
func (o *InterceptOptions) resolve(ctx context.Context) error {
	ns, name, err := resolveServiceName(o.f, o.Arg)
	if err != nil {
		return err
	}
	o.stateKey = stateKey(o.f.Context, ns, name)
	if !o.DryRun {
		if err := session.CheckAccess(ctx, o.f.Client, o.f.Namespace, session.NeededPermissions()); err != nil {
			return err
		}
	}
	if o.Namespace, o.Service, err = resolveService(o.f, o.Arg); err != nil {
		return err
	}
	o.Route.Owner = owner()
	o.Route.Client = clientID()
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
func (o *InterceptOptions) warnPublicHeader(ctx context.Context, p *progress) {
	r := o.Route
	if r.Header == "" || !strings.EqualFold(r.Header, route.DefaultHeaderName) || r.Value != route.DefaultHeaderValue {
		return
	}
	svc, err := o.f.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return // the start says why it cannot read the Service
	}
	if exposure := session.Exposure(ctx, o.f.Client, o.f.Dynamic, svc); len(exposure) > 0 {
		p.Warn(session.PublicHeaderWarning(svc, exposure))
	}
}

// portMap is one intercepted port: Service port Remote (a name or a
// number; empty: the Service's only port) to local port Local.
type portMap struct {
	Local  int
	Remote string
}

// parsePortMap reads -p LOCAL:REMOTE, or PORT for the same number on both
// sides, as kubectl port-forward does.
func parsePortMap(s string) (portMap, error) {
	local, remote, ok := strings.Cut(s, ":")
	if !ok {
		remote = local
	}
	n, err := strconv.Atoi(local)
	if err != nil || n < 1 || n > 65535 {
		return portMap{}, fmt.Errorf("-p %q: LOCAL must be a port number (1-65535); the form is LOCAL:REMOTE, e.g. -p 3000:http", s)
	}
	if remote == "" || strings.ContainsAny(remote, ": ") {
		return portMap{}, fmt.Errorf("-p %q: REMOTE must name a Service port by name or number; the form is LOCAL:REMOTE, e.g. -p 3000:http", s)
	}
	if !ok {
		if _, err := strconv.Atoi(remote); err != nil {
			return portMap{}, fmt.Errorf("-p %q: the form is LOCAL:REMOTE, e.g. -p 3000:http", s)
		}
	}
	return portMap{Local: n, Remote: remote}, nil
}

// validatePortMaps reads every -p, which replace -l and -r.
func (o *InterceptOptions) validatePortMaps() error {
	if o.LocalPort != 0 || o.RemotePort != "" {
		return errors.New("-p gives both the local and the Service port: use -p LOCAL:REMOTE for every port, or -l and -r for one, not both")
	}
	locals, remotes := map[int]bool{}, map[string]bool{}
	o.ports = nil
	for _, s := range o.PortMaps {
		pm, err := parsePortMap(s)
		if err != nil {
			return err
		}
		if locals[pm.Local] {
			return fmt.Errorf("-p: local port %d is given twice; each Service port needs a local port of its own", pm.Local)
		}
		if remotes[pm.Remote] {
			return fmt.Errorf("-p: Service port %s is given twice", pm.Remote)
		}
		locals[pm.Local], remotes[pm.Remote] = true, true
		o.ports = append(o.ports, pm)
	}
	if len(o.ports) > 1 && (o.Tunnel == tunnelNgrok || o.Preview != "") {
		return errors.New("--tunnel ngrok and --preview take one port: intercept it alone (-l/-r or a single -p)")
	}
	o.LocalPort, o.RemotePort = o.ports[0].Local, o.ports[0].Remote
	return nil
}

// remotePorts are the Service ports asked for; nil when none was named
// (the Service's only port, or the session's when joining).
func (o *InterceptOptions) remotePorts() []string {
	var out []string
	for _, pm := range o.ports {
		if pm.Remote != "" {
			out = append(out, pm.Remote)
		}
	}
	return out
}
