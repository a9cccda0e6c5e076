// Package intercept is `kubectl intercept svc/NAME`: it starts an intercept
// and holds it until Ctrl-C, the local command's exit, or close.
package intercept

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/completion"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	cmdutil "github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/util"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/ngrok"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/preview"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

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

  # Only your requests under /api/v2 (other paths stay in the cluster, even
  # with your header): a teammate can take /api/v1 with the same header
  kubectl intercept svc/my-service -l 3000 -x x-dev:alice --path-prefix /api/v2

  # Every POST to /webhooks/stripe, with or without a header: the other
  # requests keep going to the cluster
  kubectl intercept svc/my-service -l 3000 --all --path-regex '/webhooks/stripe/?' --method POST

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

// Options are the inputs of `kubectl intercept svc/NAME`: the flags as
// given, the Service argument and the command after --. Complete builds
// the runner from them; Validate checks them; Run hands over to the runner.
type Options struct {
	f *factory.Factory
	genericiooptions.IOStreams
	Flags

	// Arg is the Service argument as given (svc/NAME); Command the local
	// process (after --).
	Arg     string
	Command []string

	runner *runner
}

// Flags are the command's flags, by concern.
type Flags struct {
	PortFlags
	MatchFlags
	LocalFlags
	SandboxFlags
	TunnelFlags
	PreviewFlags
	WiretapFlags
	LifeFlags
}

// PortFlags say which Service ports go to which local ports: -l and -r
// for one, -p LOCAL:REMOTE for each of several.
type PortFlags struct {
	RemotePort string
	LocalPort  int
	PortMaps   []string
}

// LocalFlags are the local side: the container whose environment the
// local process gets, the files it is written to, the volumes' files, the
// forwards into the cluster's network and the local proxy.
type LocalFlags struct {
	Container string
	EnvFile   string
	EnvJSON   string
	// EnvAllow names variables of the pod taken in although they could run
	// code or change tools on this machine (podenv.Withheld).
	EnvAllow []string
	Forwards []string
	Mount    string
	Network  bool
}

// TunnelFlags say how requests reach this machine: builtin (through the
// Kubernetes API, one tunnel to a relay pod or, PerPod, one per pod) or
// ngrok; and the inspector that shows them.
type TunnelFlags struct {
	Tunnel         string
	PerPod         bool
	NgrokAuthtoken string
	// NgrokConnectURL replaces ngrok's service address (--ngrok-connect-url,
	// for a stand-in service: only in a build with the e2ehooks tag).
	NgrokConnectURL string
	// Inspect is the inspector's address, or "false".
	Inspect string
	// InspectShowSecrets shows credential headers on the inspector's page.
	InspectShowSecrets bool
}

// PreviewFlags: Preview is "local" for a preview URL on this machine or
// "ngrok"; PreviewVia an entry point in front of the Service; PreviewPort
// its local port.
type PreviewFlags struct {
	Preview     string
	PreviewVia  string
	PreviewPort int
}

// LifeFlags say how the intercept starts, how long it waits, where it
// runs and how much it says.
type LifeFlags struct {
	Clean  bool
	Force  bool
	Quiet  bool
	Wait   bool
	Detach bool
	DryRun bool
	// TakeOver scales the original to zero once the intercept is active,
	// so connections opened before it reach the copy (see
	// session.TakeOverOriginal).
	TakeOver bool
	// Decoy is --decoy: true, a proxy in front of a decoy Service (the
	// original keeps serving); false, a copy; nil (not given), the decoy
	// for StatefulSets and bare Pods and the copy for the rest.
	Decoy      *bool
	ProxyImage string
	Timeout    time.Duration
	// Detached is set in the background process that holds the tunnels
	// (--detached, hidden).
	Detached bool
}

// NewCmdIntercept builds the root command, which starts an intercept.
func NewCmdIntercept(f *factory.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{f: f, IOStreams: streams, Flags: Flags{LifeFlags: LifeFlags{Timeout: 2 * time.Minute}}}
	cmd := &cobra.Command{
		Use:         "kubectl-intercept [svc/]NAME (-l LOCAL_PORT [-r REMOTE_PORT] | -p LOCAL:REMOTE...) [-x name:value | --cookie name=value | --baggage key=value | -a] [--path-prefix P] [--path-regex RE] [--method M,...] [-- CMD [ARGS...]]",
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl intercept"},
		Short:       "Send a Service's requests that carry your header to a port on your machine",
		Long: `Intercept a Service: requests that carry your header (or cookie, or baggage
member) go to LOCAL_PORT on this machine, every other request keeps going to
the workload in the cluster. --path-prefix, --path-regex and --method narrow
that to some paths and methods: two developers may share a header on
different paths; with --all they take every HTTP request that matches them,
header or not.

kubectl-intercept copies the workload behind the Service with a proxy sidecar,
points the Service at the copy once it is ready, and tunnels matching requests
back over the Kubernetes API (pods/portforward): no agent, no privileges, no
account. Ctrl-C (or 'kubectl intercept close') ends it; the last developer out
puts back what the intercept changed in the Service (its selector and
targetPort) and keeps any change someone else made meanwhile.

czctl's flag names work too: --remotePort, --localPort, -k for --kubeconfig.`,
		Example: interceptExample + sandboxExample,
		Args: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				args = args[:dash]
			}
			return cobra.MaximumNArgs(1)(cmd, args)
		},
		ValidArgsFunction: completion.ServiceArg(f, false),
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
			return cmdutil.RunSteps(cmd.Context(), func() error { return o.Complete(cmd, args) }, o.Validate, o.Run)
		},
	}
	cmd.SetContext(context.Background())
	fl := cmd.Flags()
	fl.StringVarP(&o.RemotePort, "remote-port", "r", "", "Service port to intercept, by name or number (optional when the Service has one port; czctl: --remotePort)")
	fl.IntVarP(&o.LocalPort, "local-port", "l", 0, "local port intercepted requests go to (czctl: --localPort)")
	fl.StringVar(&o.Container, "container", "", "the container whose environment the local process gets (default: the one serving the intercepted port)")
	fl.StringVar(&o.EnvFile, "env-file", "", "write the container's environment to this file, in the format docker run --env-file reads")
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
	fl.BoolVarP(&o.All, "all", "a", false, "intercept every connection to the port, whatever its headers; with --path-prefix, --path-regex or --method, every HTTP request that matches them")
	fl.StringVar(&o.PathPrefix, "path-prefix", "", "only requests whose path starts with this (/api/v2): other paths go to the cluster's app even with your marker")
	fl.StringVar(&o.PathRegex, "path-regex", "", "only requests whose whole path matches this RE2 expression (/users/[0-9]+/orders), without the query")
	fl.StringArrayVar(&o.Methods, "method", nil, "only requests with this HTTP method; repeatable or a comma list (GET,HEAD)")
	fl.BoolVar(&o.Wiretap, "wiretap", false, "take nothing: callers keep getting the cluster's answers, and a copy of each request your route matches comes here with the cluster's answer, which the inspector compares with your local port's; any number of developers may wiretap one marker")
	fl.StringVar(&o.Record, "record", "", "with --wiretap: append each request, the cluster's answer and yours to this file, one JSON object a line ('kubectl intercept replay FILE --against URL' sends them again)")
	fl.StringArrayVar(&o.Ignore, "ignore", nil, "with --wiretap: leave out of the comparison a JSONPath in JSON bodies ($.a.b, $.items[*].id, $..timestamp) or a response header (header:NAME); repeatable")
	fl.BoolVarP(&o.Clean, "clean", "c", false, "first end this machine's earlier intercept of the Service and clean up what crashed intercepts left (others' live routes stay unless --force)")
	fl.BoolVar(&o.Force, "force", false, "with -c: end other developers' live intercepts of the Service too")
	fl.BoolVarP(&o.Quiet, "quiet", "q", false, "print only errors")
	fl.BoolVarP(&o.Wait, "wait", "w", false, "stay in the foreground until Ctrl-C or SIGTERM, then close; what happens without --detach anyway (czctl's flag)")
	fl.BoolVarP(&o.Detach, "detach", "d", false, "return once the intercept is active and hold it in a background process until 'kubectl intercept close'")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the copy and the Service change as YAML; change nothing")
	fl.BoolVar(&o.TakeOver, "take-over", false, "once active, scale the original to zero while the intercept lasts, so connections callers keep open (a frontend's pool, a gRPC channel) reconnect to the copy and your marked requests on them reach you; close scales it back")
	fl.Bool("decoy", false, "keep the original serving what is not yours: the Service goes to a Deployment of the sidecar alone, which sends the rest through a decoy Service to the original's pods, with their data and identities "+
		"(the default for StatefulSets and bare Pods; --decoy=false copies them as a Deployment)")
	fl.StringVar(&o.ProxyImage, "proxy-image", "", "sidecar image (default: $"+cmdutil.EnvProxyImage+", else "+version.ProxyImage()+")")
	fl.DurationVar(&o.Timeout, "timeout", o.Timeout, "how long to wait for the copy's pods and the tunnels")
	fl.StringVar(&o.Tunnel, "tunnel", local.TunnelBuiltin, "how intercepted requests reach this machine: builtin (through the Kubernetes API, no account) or ngrok (an HTTPS endpoint of your ngrok account)")
	fl.StringVar(&o.NgrokAuthtoken, "ngrok-authtoken", "", "ngrok authtoken for --tunnel ngrok (default: $"+ngrok.EnvAuthtoken+", which keeps it out of the process list)")
	fl.StringVar(&o.Preview, "preview", "", "serve a preview URL that sends every request into the cluster carrying your header, cookie or baggage: --preview alone: on this machine (http://127.0.0.1:PORT/); --preview=ngrok: a public URL behind a password (also --preview with --tunnel ngrok)")
	fl.Lookup("preview").NoOptDefVal = previewLocal
	fl.StringVar(&o.PreviewVia, "preview-via", "", "where preview requests enter the cluster: svc/NAME[.NAMESPACE][:PORT] or ingress/NAME (default: the intercepted Service)")
	fl.IntVar(&o.PreviewPort, "preview-port", 0, "local port of the preview URL (default: any free port)")
	addHookFlags(fl, o)
	addSandboxFlags(fl, o)
	fl.BoolVar(&o.InspectShowSecrets, "inspect-show-secrets", false, "show Authorization, Cookie, Set-Cookie and Proxy-Authorization values on the inspector's page (redacted by default)")
	fl.StringVar(&o.Inspect, "inspect", "127.0.0.1:4040", "address of the local web page that shows the intercepted requests (the next free port if taken); --inspect=false turns it off")
	fl.BoolVar(&o.Detached, "detached", false, "")
	_ = fl.MarkHidden("detached")
	_ = cmd.RegisterFlagCompletionFunc("remote-port", completion.RemotePort(f))
	_ = cmd.RegisterFlagCompletionFunc("tunnel", cobra.FixedCompletions([]string{local.TunnelBuiltin, local.TunnelNgrok}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("method", cobra.FixedCompletions([]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, cobra.ShellCompDirectiveNoFileComp))
	for _, name := range []string{"local-port", "header", "cookie", "baggage", "path-prefix", "path-regex", "proxy-image", "timeout", "ngrok-authtoken", "inspect"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
	return cmd
}

// Complete reads the flags, the kubeconfig and the environment, and builds
// the runner from them; it makes no network call.
func (o *Options) Complete(cmd *cobra.Command, args []string) error {
	if !cmd.Flags().Changed("header") {
		o.Header = "" // the default applies only when nothing else is given
	}
	for name, example := range map[string]string{"path-prefix": "/api", "path-regex": "/users/[0-9]+"} {
		if fl := cmd.Flags().Lookup(name); fl.Changed && fl.Value.String() == "" {
			return fmt.Errorf("--%s is empty: give it a path (--%s %s), or leave it out", name, name, example)
		}
	}
	if err := o.f.Complete(); err != nil {
		return err
	}
	if o.Record != "" {
		// The background process of --detach runs elsewhere.
		abs, err := filepath.Abs(o.Record)
		if err != nil {
			return fmt.Errorf("--record %s: %w", o.Record, err)
		}
		o.Record = abs
	}
	o.Arg = args[0]
	if fl := cmd.Flags(); fl.Changed("decoy") {
		decoy, err := fl.GetBool("decoy")
		if err != nil {
			return err
		}
		o.Decoy = &decoy
	}
	o.ProxyImage = cmdutil.ProxyImage(o.ProxyImage)
	if o.NgrokAuthtoken == "" {
		o.NgrokAuthtoken = os.Getenv(ngrok.EnvAuthtoken)
	}
	var err error
	o.runner, err = newRunner(o)
	return err
}

// portMaps reads the ports from -p, or from -l and -r; --dry-run needs no
// local port.
func (o *Options) portMaps() ([]portMap, error) {
	if len(o.PortMaps) == 0 {
		dryRunAnyPort := o.DryRun && o.LocalPort == 0 // --dry-run changes nothing, so nothing listens
		if (o.LocalPort < 1 || o.LocalPort > 65535) && !dryRunAnyPort {
			return nil, errors.New("say where intercepted requests go with -l LOCAL_PORT (1-65535), or -p LOCAL:REMOTE for each port")
		}
		return []portMap{{Local: o.LocalPort, Remote: o.RemotePort}}, nil
	}
	if o.LocalPort != 0 || o.RemotePort != "" {
		return nil, errors.New("-p gives both the local and the Service port: use -p LOCAL:REMOTE for every port, or -l and -r for one, not both")
	}
	locals, remotes := map[int]bool{}, map[string]bool{}
	var ports []portMap
	for _, s := range o.PortMaps {
		pm, err := parsePortMap(s)
		if err != nil {
			return nil, err
		}
		if locals[pm.Local] {
			return nil, fmt.Errorf("-p: local port %d is given twice; each Service port needs a local port of its own", pm.Local)
		}
		if remotes[pm.Remote] {
			return nil, fmt.Errorf("-p: Service port %s is given twice", pm.Remote)
		}
		locals[pm.Local], remotes[pm.Remote] = true, true
		ports = append(ports, pm)
	}
	return ports, nil
}

// parseForwards reads every --forward.
func parseForwards(specs []string) ([]local.Forward, error) {
	var out []local.Forward
	for _, s := range specs {
		fw, err := local.ParseForward(s)
		if err != nil {
			return nil, err
		}
		out = append(out, fw)
	}
	return out, nil
}

// Validate checks the flags without the network and without changing
// them, every one of them: a mistake is reported at once.
func (o *Options) Validate() error {
	if _, err := o.matchRoute(); err != nil {
		return err
	}
	if err := o.validateWiretap(); err != nil {
		return err
	}
	ports, err := o.portMaps()
	if err != nil {
		return err
	}
	if len(ports) > 1 && (o.Tunnel == local.TunnelNgrok || o.Preview != "") {
		return errors.New("--tunnel ngrok and --preview take one port: intercept it alone (-l/-r or a single -p)")
	}
	if len(ports) > 1 && o.Wiretap {
		return errors.New("--wiretap takes one port: wiretap it alone (-l/-r or a single -p)")
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
	if o.TakeOver && o.Decoy != nil && *o.Decoy {
		return errors.New("--take-over and --decoy contradict each other: --take-over scales the original to zero, and the decoy sends every request that is not yours to the original; " +
			"pick --decoy to keep the original serving, or --take-over to move callers' open connections to a copy")
	}
	switch o.Tunnel {
	case local.TunnelBuiltin, "":
	case local.TunnelNgrok:
		if o.All && !o.narrowed() {
			return errors.New("--all sends raw connections, which need the built-in tunnel: leave out --tunnel ngrok (or narrow --all to HTTP requests with --path-prefix, --path-regex or --method)")
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

// validateLocal checks the local side's flags without the network.
func (o *Options) validateLocal() error {
	if _, err := parseForwards(o.Forwards); err != nil {
		return err
	}
	if o.Mount != "" {
		if err := local.CheckMountDir(o.Mount); err != nil {
			return err
		}
	}
	if len(o.Command) > 0 {
		if o.Detach || o.Detached {
			return errors.New("-- CMD runs your command in the foreground and ends the intercept when it exits: leave out --detach")
		}
		if o.DryRun && !o.Sandbox {
			return errors.New("--dry-run changes nothing and runs nothing: leave out -- CMD")
		}
		if err := local.LookCommand(o.Command); err != nil {
			return err
		}
	}
	return o.validateSandbox()
}

// previewLocal is --preview's value for a preview URL on this machine.
const previewLocal = "local"

// validatePreview checks the preview's flags.
func (o *Options) validatePreview() error {
	switch o.Preview {
	case "", previewLocal:
	case local.TunnelNgrok:
		if o.NgrokAuthtoken == "" && !o.DryRun {
			return errors.New("--preview=ngrok needs your ngrok authtoken: set " + ngrok.EnvAuthtoken + " (or pass --ngrok-authtoken)")
		}
	default:
		return fmt.Errorf("--preview %q: use --preview (a URL on this machine) or --preview=ngrok (a public URL)", o.Preview)
	}
	if o.Preview == "" && (o.PreviewVia != "" || o.PreviewPort != 0) {
		return errors.New("--preview-via and --preview-port go with --preview")
	}
	if o.PreviewPort < 0 || o.PreviewPort > 65535 {
		return errors.New("--preview-port must be 0-65535")
	}
	if o.PreviewVia != "" {
		if _, err := preview.ParseVia(o.PreviewVia); err != nil {
			return err
		}
	}
	return nil
}

// Run starts the intercept and, like kubectl port-forward, holds the
// tunnels in the foreground until interrupted, then closes. With --detach a
// background process holds them and Run returns once the intercept is active.
func (o *Options) Run(ctx context.Context) error {
	return o.runner.run(ctx)
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
