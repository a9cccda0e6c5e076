// Command intercept-proxy is the sidecar kubectl-intercept adds to the copy
// of a workload, and a standalone header-routing proxy for benchmarks:
//
//	intercept-proxy --listen :8080 --upstream 127.0.0.1:9000 --route x-dev:alice=127.0.0.1:3000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cores"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/sidecar/proxy"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/version"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

type routeFlags []proxy.StaticRoute

func (r *routeFlags) String() string { return fmt.Sprint(*r) }

// Set parses NAME:VALUE=HOST:PORT, optionally narrowed like an
// intercept's route: ;path-prefix=P, ;methods=M[,M...] and, last (it takes
// the rest), ;path-regex=RE.
func (r *routeFlags) Set(s string) error {
	match, rest, ok := strings.Cut(s, "=")
	addr, narrowing, _ := strings.Cut(rest, ";")
	if !ok || addr == "" {
		return fmt.Errorf("route %q is not NAME:VALUE=HOST:PORT[;path-prefix=P][;methods=M,...][;path-regex=RE]", s)
	}
	name, value, err := route.ParseHeader(match)
	if err != nil {
		return err
	}
	sr := proxy.StaticRoute{Header: name, Value: value, Addr: addr}
	for narrowing != "" {
		var part string
		if strings.HasPrefix(narrowing, "path-regex=") {
			part, narrowing = narrowing, ""
		} else {
			part, narrowing, _ = strings.Cut(narrowing, ";")
		}
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "path-prefix":
			sr.PathPrefix, err = route.ParsePathPrefix(v)
		case "path-regex":
			sr.PathRegex, err = route.ParsePathRegex(v)
		case "methods":
			sr.Methods, err = route.ParseMethods(v)
		default:
			err = fmt.Errorf("route %q: %q is not path-prefix=, path-regex= or methods=", s, part)
		}
		if err != nil {
			return err
		}
	}
	*r = append(*r, sr)
	return nil
}

// alsoFlags are further intercepted ports of the same pod, each with a
// listener, an upstream and a control port of its own:
// listen=:18083,upstream=127.0.0.1:9000,control=127.0.0.1:18084[,peer=:18085][,h2c][,service-addr=IP:PORT]
type alsoFlags []proxy.Config

func (a *alsoFlags) String() string { return fmt.Sprint(len(*a)) }

func (a *alsoFlags) Set(s string) error {
	var c proxy.Config
	for _, f := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "listen":
			c.Listen = v
		case "upstream":
			c.Upstream = v
		case "control":
			c.Control = v
		case "peer":
			c.Peer = v
		case "service-addr":
			c.ServiceAddr = v
		case "h2c":
			c.H2C = true
		default:
			return fmt.Errorf("--also %q: unknown field %q (want listen=,upstream=,control=[,peer=][,h2c][,service-addr=])", s, k)
		}
	}
	if c.Listen == "" || c.Upstream == "" {
		return fmt.Errorf("--also %q: listen= and upstream= are required", s)
	}
	*a = append(*a, c)
	return nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(health(os.Args[2:]))
	}
	var cfg proxy.Config
	var routes routeFlags
	var also alsoFlags
	var verbose, showVersion bool
	var cpus int
	var memLimit string
	flag.StringVar(&cfg.Listen, "listen", ":18080", "address callers' traffic arrives on")
	flag.StringVar(&cfg.Upstream, "upstream", "127.0.0.1:8080", "the app: where requests without a matching route go")
	flag.StringVar(&cfg.Control, "control", "", "tunnel control address, on loopback (empty: no tunnels)")
	flag.StringVar(&cfg.Peer, "peer", "", "where relays reach this sidecar over the pod network, :PORT (empty: no relays)")
	flag.StringVar(&cfg.Pod, "pod", os.Getenv("POD_NAME"), "this pod's name")
	flag.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "keep serving this long after SIGTERM before draining")
	flag.StringVar(&cfg.ServiceAddr, "service-addr", "", "the intercepted Service's ClusterIP:PORT, the only address a probe may request")
	flag.IntVar(&cfg.MaxConns, "max-conns", 0, "callers' connections open at once, all ports together (0: from the memory limit); beyond it the one waiting longest for its caller is closed, or a new one refused")
	flag.StringVar(&memLimit, "memory-limit", os.Getenv("MEMORY_LIMIT"), "the container's memory limit in bytes ($MEMORY_LIMIT; empty: 256 MiB), from which the budget of connections follows")
	flag.DurationVar(&cfg.HeaderTimeout, "header-timeout", 30*time.Second, "how long a caller may take to send a request's head")
	flag.DurationVar(&cfg.IdleTimeout, "idle-timeout", 30*time.Second, "close a kept-alive connection idle this long")
	flag.BoolVar(&cfg.H2C, "h2c", false, "the app speaks HTTP/2 without TLS: keep HTTP/2 requests HTTP/2 on the way")
	flag.BoolVar(&cfg.NoFastPath, "no-fast-path", false, "serve every request through net/http, even those for the app (for comparison)")
	flag.Var(&also, "also", "another port: listen=:PORT,upstream=HOST:PORT,control=HOST:PORT[,h2c][,service-addr=IP:PORT] (repeatable)")
	flag.Func("wiretap", "HOST:PORT: a copy of every HTTP request and its answer goes there as a tap stream (repeatable; for benchmarks)", func(addr string) error {
		routes = append(routes, proxy.StaticRoute{All: true, Wiretap: true, Addr: addr})
		return nil
	})
	flag.Var(&routes, "route", "NAME:VALUE=HOST:PORT[;path-prefix=P][;methods=M,...][;path-regex=RE]: requests with header NAME equal to VALUE (and a path and method that match) go to HOST:PORT (repeatable)")
	flag.IntVar(&cpus, "cpus", 0, "cores to run on at once (GOMAXPROCS); 0: one while one is enough, up to every core the container may use under load (unless $GOMAXPROCS is set)")
	flag.BoolVar(&verbose, "v", false, "log every proxy error and tunnel event")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if showVersion {
		fmt.Println(version.Version)
		return
	}
	cfg.Static = routes
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch {
	case cpus < 0:
		log.Error("intercept-proxy: --cpus must be 0 (follow the load) or a number of cores", "cpus", cpus)
		os.Exit(2)
	case cpus > 0:
		runtime.GOMAXPROCS(cpus)
	default:
		go cores.Adapt(ctx, time.Second, log)
	}
	budget, err := budgetFor(memLimit, cfg.MaxConns)
	if err != nil {
		log.Error("intercept-proxy: " + err.Error() + "; give --memory-limit in bytes, or leave it empty")
		os.Exit(2)
	}
	cfg.Budget = budget
	log.Info("budget", "memory-limit", memLimit, "allows", budget.String())
	if err := runAll(ctx, cfg, also, log); err != nil {
		log.Error("intercept-proxy stopped", "err", err)
		os.Exit(1)
	}
}

// runAll serves the first port and every --also port, each with its own
// listener, routes and tunnels, until ctx ends; all drain together. One
// that fails stops them all.
func runAll(ctx context.Context, first proxy.Config, also []proxy.Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfgs := []proxy.Config{first}
	for _, a := range also {
		c := first
		c.Static, c.Ready = nil, nil
		c.Listen, c.Upstream, c.Control, c.Peer, c.H2C, c.ServiceAddr = a.Listen, a.Upstream, a.Control, a.Peer, a.H2C, a.ServiceAddr
		cfgs = append(cfgs, c)
	}
	errc := make(chan error, len(cfgs))
	for _, c := range cfgs {
		go func() {
			err := proxy.Run(ctx, c, log.With("listen", c.Listen))
			if err != nil {
				err = fmt.Errorf("port %s: %w", c.Listen, err)
				cancel()
			}
			errc <- err
		}()
	}
	var failed error
	for range cfgs {
		if err := <-errc; err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// budgetFor is the one budget of every port, from the memory limit (the
// downward API's limits.memory; empty: proxy.DefaultMemoryLimit), with
// --max-conns over the connections it gives. The garbage collector is told
// to keep the heap within half of the limit, so what the budget lets
// callers hold is collected before the container nears its limit.
func budgetFor(limit string, maxConns int) (*proxy.Budget, error) {
	n, err := proxy.MemoryLimit(limit)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > 1<<40 {
		// Unknown, or a node's whole memory (no limit on the container).
		n = proxy.DefaultMemoryLimit
	}
	b := proxy.BudgetFor(n)
	if maxConns > 0 {
		b.Conns = maxConns
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n / 2)
	}
	return &b, nil
}

// health checks that the proxy accepts connections: `intercept-proxy health ADDR`.
func health(args []string) int {
	addr := "127.0.0.1:18080"
	if len(args) > 0 {
		addr = args[0]
	}
	c := &http.Client{Timeout: 2 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set(wire.ProbeHeader, "1")
	resp, err := c.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		fmt.Fprintln(os.Stderr, errors.New(resp.Status))
		return 1
	}
	return 0
}
