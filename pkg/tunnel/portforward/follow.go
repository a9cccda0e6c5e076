package portforward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
)

// Follower keeps one tunnel to every running pod of a copy, registering the
// developer's route on each: pods that come get a tunnel as soon as the
// watch reports them, pods that go lose theirs. A route lives as long as its tunnel.
type Follower struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Namespace string
	// Selector selects the copy's pods; Port is the sidecar's control port.
	Selector string
	Port     int
	Route    route.Route
	// Local is where intercepted connections go, host:port.
	Local string
	// HTTP, if set, serves the intercepted requests of a route that is not
	// All (it forwards them to Local and may record them); otherwise each
	// connection is piped to Local as it is.
	HTTP http.Handler
	// Log receives events for the person at the terminal.
	Log func(format string, args ...any)
	// Dial opens a byte stream to the control port of a pod's sidecar;
	// DialPod through Config when nil.
	Dial func(ctx context.Context, pod string) (io.ReadWriteCloser, error)
	// OpenGate marks a pod as holding every live route (its readiness
	// gate); session.OpenGate through Client when nil.
	OpenGate func(ctx context.Context, pod, message string) error
	// NoGate leaves new pods' readiness gates to another follower (that
	// of the intercept's first port).
	NoGate bool
	// GateWait is how long a new pod waits for every route before it is
	// let in with what it has; DefaultGateWait when zero.
	GateWait time.Duration

	once    sync.Once
	mu      sync.Mutex
	clients map[string]*tunnel.Client // by pod name, registered
	pods    map[string]*corev1.Pod    // as the watch last saw them
	active  map[string]context.CancelFunc
	fatal   chan error
	retry   chan struct{} // a tunnel dropped: sync again
	stopped chan struct{} // closed when Run returns, runErr set
	runErr  error
}

func (f *Follower) init() {
	f.once.Do(func() {
		f.clients = map[string]*tunnel.Client{}
		f.pods = map[string]*corev1.Pod{}
		f.active = map[string]context.CancelFunc{}
		f.fatal = make(chan error, 1)
		f.retry = make(chan struct{}, 1)
		f.stopped = make(chan struct{})
	})
}

// Run follows the pods until ctx ends or a route is refused (taken by
// another developer, or a kind the sidecar cannot match), which it returns.
// The pods are watched (port-forward itself never notices a deleted pod):
// while they do not change, nothing is asked of the API server.
func (f *Follower) Run(ctx context.Context) (err error) {
	f.init()
	defer func() {
		f.stopAll()
		f.runErr = err
		close(f.stopped)
	}()
	sel, err := labels.Parse(f.Selector)
	if err != nil {
		return fmt.Errorf("the copy's pod selector %q: %w", f.Selector, err)
	}
	changed := make(chan struct{}, 1)
	pods, err := session.WatchPods(ctx, f.Client, f.Namespace, sel, changed)
	if err != nil {
		return fmt.Errorf("watching the copy's pods: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.fatal:
			return err
		case <-changed:
		case <-f.retry:
		}
		f.sync(ctx, pods.Items())
	}
}

// sync holds a tunnel to every pod that serves, and drops those to pods
// that went.
func (f *Follower) sync(ctx context.Context, pods []*corev1.Pod) {
	seen := map[string]bool{}
	f.mu.Lock()
	f.pods = make(map[string]*corev1.Pod, len(pods))
	for _, p := range pods {
		f.pods[p.Name] = p
	}
	f.mu.Unlock()
	for _, p := range pods {
		serving, draining := session.Reachable(p), session.Draining(p)
		if !serving && !draining {
			continue
		}
		// A deleted pod's sidecar keeps serving while it drains, so its
		// tunnel stays until the sidecar ends it; none is opened to it.
		seen[p.Name] = true
		if !serving {
			continue
		}
		f.mu.Lock()
		_, running := f.active[p.Name]
		if !running {
			pctx, cancel := context.WithCancel(ctx)
			f.active[p.Name] = cancel
			go f.hold(pctx, p.Name)
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	for name, cancel := range f.active {
		if !seen[name] {
			cancel() // the pod is gone or no longer serves
			delete(f.active, name)
		}
	}
	f.mu.Unlock()
}

// retryLater asks for a sync after a pause, to reopen a tunnel that failed
// while its pod still serves.
func (f *Follower) retryLater(ctx context.Context) {
	time.AfterFunc(retryPause, func() {
		if ctx.Err() != nil {
			return
		}
		select {
		case f.retry <- struct{}{}:
		default:
		}
	})
}

// retryPause is how long a failed tunnel waits before it is opened again.
const retryPause = time.Second

// hold keeps a tunnel to one pod until ctx ends or the tunnel drops.
func (f *Follower) hold(ctx context.Context, pod string) {
	parent := context.WithoutCancel(ctx)
	defer func() {
		f.mu.Lock()
		delete(f.clients, pod)
		if c, ok := f.active[pod]; ok && ctx.Err() == nil {
			c()
			delete(f.active, pod) // let the next sync reconnect
			f.retryLater(parent)
		}
		f.mu.Unlock()
	}()
	conn, err := f.dial(ctx, pod)
	if err != nil {
		if ctx.Err() == nil {
			f.logf("tunnel to pod %s: %v", pod, err)
		}
		return
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		if ctx.Err() == nil {
			f.logf("tunnel to pod %s: %v", pod, err)
		}
		return
	}
	defer c.Close()
	if _, err := c.Register(f.Route); err != nil {
		if errors.Is(err, tunnel.ErrConflict) || errors.Is(err, tunnel.ErrUnsupported) || errors.Is(err, tunnel.ErrBadRequest) {
			select {
			case f.fatal <- err:
			default:
			}
			return
		}
		f.logf("registering route on pod %s: %v", pod, err)
		return
	}
	f.mu.Lock()
	f.clients[pod] = c
	f.mu.Unlock()
	f.logf("tunnel up: pod %s", pod)
	if !f.NoGate {
		go f.gate(ctx, pod, c)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", f.Local)
	}
	if f.HTTP != nil && !f.Route.All {
		err = c.ServeHTTP(ctx, f.HTTP)
	} else {
		err = c.Serve(ctx, dial, func(err error) {
			f.logf("intercepted connection from pod %s: local port %s: %v", pod, f.Local, err)
		})
	}
	if ctx.Err() == nil {
		f.logf("tunnel to pod %s closed (%v); reconnecting while the pod serves", pod, err)
	}
}

// Readiness gate timing: a new pod is checked every gatePause until it
// holds the routes a ready sibling holds; after DefaultGateWait (longer
// than a dead developer's route takes to drop) it is let in with what it
// has.
const (
	gatePause       = 250 * time.Millisecond
	DefaultGateWait = 10 * time.Second
)

// gate opens a new pod's readiness gate once its sidecar holds every route
// a ready sibling holds: each developer's CLI checks after registering, and
// the last one to register finds the set complete. A pod with no ready
// sibling (a copy that scaled from nothing) holds all there is.
func (f *Follower) gate(ctx context.Context, pod string, mine *tunnel.Client) {
	wait := f.GateWait
	if wait == 0 {
		wait = DefaultGateWait
	}
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		p := f.pods[pod]
		var sibling *tunnel.Client
		readySiblings := 0
		for name, q := range f.pods {
			if name != pod && session.PodReady(q) && q.DeletionTimestamp == nil {
				readySiblings++
				if c, ok := f.clients[name]; ok && sibling == nil {
					sibling = c
				}
			}
		}
		f.mu.Unlock()
		if p == nil || !session.Gated(p) {
			return
		}
		var missing []route.Route
		switch {
		case readySiblings > 0 && sibling == nil:
			missing = []route.Route{{}} // no tunnel to a ready sibling yet: ask again
		case sibling != nil:
			want, err := sibling.Routes()
			have, err2 := mine.Routes()
			if err != nil || err2 != nil {
				missing = []route.Route{{}} // ask again
			} else {
				missing = session.MissingRoutes(have, want)
			}
		}
		late := time.Now().After(deadline)
		if len(missing) == 0 || late {
			msg := "holds every live route"
			if late {
				msg = fmt.Sprintf("let in after %s without %d route(s) a sibling holds", wait, len(missing))
				f.logf("pod %s of the copy becomes ready without %d route(s) its siblings hold (their developers did not reach it within %s)", pod, len(missing), wait)
			}
			if err := f.openGate(ctx, pod, msg); err != nil && ctx.Err() == nil {
				f.logf("pod %s: %v", pod, err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gatePause):
		}
	}
}

func (f *Follower) openGate(ctx context.Context, pod, msg string) error {
	if f.OpenGate != nil {
		return f.OpenGate(ctx, pod, msg)
	}
	return session.OpenGate(ctx, f.Client, f.Namespace, pod, msg)
}

func (f *Follower) dial(ctx context.Context, pod string) (io.ReadWriteCloser, error) {
	if f.Dial != nil {
		return f.Dial(ctx, pod)
	}
	return DialPod(ctx, f.Config, f.Namespace, pod, f.Port)
}

// Leave unregisters the route from every sidecar, then waits (at most
// timeout) for the intercepted connections in flight to finish, so a
// developer who ends an intercept fails none of their own requests.
func (f *Follower) Leave(timeout time.Duration) {
	f.mu.Lock()
	clients := make([]*tunnel.Client, 0, len(f.clients))
	for _, c := range f.clients {
		clients = append(clients, c)
	}
	f.mu.Unlock()
	for _, c := range clients {
		_ = c.Unregister()
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		busy := 0
		for _, c := range clients {
			busy += c.InFlight()
		}
		if busy == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Registered returns the pods whose sidecar holds the route now.
func (f *Follower) Registered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.clients))
	for p := range f.clients {
		out = append(out, p)
	}
	return out
}

// AnyClient returns one live tunnel, for control calls.
func (f *Follower) AnyClient() (*tunnel.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		return c, nil
	}
	return nil, fmt.Errorf("no tunnel to a pod of the copy is up")
}

// WaitRegistered waits until n pods hold the route, or Run ends (a refused
// route), returning Run's error.
func (f *Follower) WaitRegistered(ctx context.Context, n int) error {
	f.init()
	for {
		if len(f.Registered()) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for tunnels: %d of %d pods reached: %w", len(f.Registered()), n, ctx.Err())
		case <-f.stopped:
			if f.runErr != nil {
				return f.runErr
			}
			return fmt.Errorf("the tunnels stopped")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *Follower) stopAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.active {
		cancel()
	}
	f.active = map[string]context.CancelFunc{}
}

func (f *Follower) logf(format string, args ...any) {
	if f.Log != nil {
		f.Log(format, args...)
	}
}
