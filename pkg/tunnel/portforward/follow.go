package portforward

import (
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"

	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
	Route    tunnel.Route
	// Local is where intercepted connections go, host:port.
	Local string
	// HTTP, if set, serves the intercepted requests of a route that is not
	// All (it forwards them to Local and may record them); otherwise each
	// connection is piped to Local as it is.
	HTTP http.Handler
	// Log receives events for the person at the terminal.
	Log func(format string, args ...any)

	once    sync.Once
	mu      sync.Mutex
	clients map[string]*tunnel.Client // by pod name, registered
	active  map[string]context.CancelFunc
	fatal   chan error
	stopped chan struct{} // closed when Run returns, runErr set
	runErr  error
}

func (f *Follower) init() {
	f.once.Do(func() {
		f.clients = map[string]*tunnel.Client{}
		f.active = map[string]context.CancelFunc{}
		f.fatal = make(chan error, 1)
		f.stopped = make(chan struct{})
	})
}

// Run follows the pods until ctx ends or a route is refused (taken by
// another developer, or a kind the sidecar cannot match), which it returns.
func (f *Follower) Run(ctx context.Context) (err error) {
	f.init()
	defer func() {
		f.stopAll()
		f.runErr = err
		close(f.stopped)
	}()
	// A watch makes pods that come or go known at once (port-forward itself
	// never notices a deleted pod); the ticker resyncs and retries tunnels
	// that failed.
	changed := make(chan struct{}, 1)
	go f.watchPods(ctx, changed)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		f.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case err := <-f.fatal:
			return err
		case <-changed:
		case <-tick.C:
		}
	}
}

// watchPods signals changed on every event of the copy's pods, re-watching
// when the watch ends.
func (f *Follower) watchPods(ctx context.Context, changed chan<- struct{}) {
	for ctx.Err() == nil {
		w, err := f.Client.CoreV1().Pods(f.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: f.Selector})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for range w.ResultChan() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
		w.Stop()
	}
}

func (f *Follower) sync(ctx context.Context) {
	pods, err := f.Client.CoreV1().Pods(f.Namespace).List(ctx, metav1.ListOptions{LabelSelector: f.Selector})
	if err != nil {
		if ctx.Err() == nil {
			f.logf("listing the copy's pods: %v", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		serving, draining := podServes(&p), podDraining(&p)
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
			cancel() // the pod is gone or no longer ready
			delete(f.active, name)
		}
	}
	f.mu.Unlock()
}

// hold keeps a tunnel to one pod until ctx ends or the tunnel drops.
func (f *Follower) hold(ctx context.Context, pod string) {
	defer func() {
		f.mu.Lock()
		delete(f.clients, pod)
		if c, ok := f.active[pod]; ok && ctx.Err() == nil {
			c()
			delete(f.active, pod) // let the next sync reconnect
		}
		f.mu.Unlock()
	}()
	conn, err := DialPod(ctx, f.Config, f.Namespace, pod, f.Port)
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

// podServes reports whether a pod's sidecar may receive traffic: running
// and not leaving. Readiness is not required: a pod that fails a probe for a
// moment still serves the connections it has, and its tunnel must stay.
func podServes(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && sidecarRunning(p)
}

// podDraining reports whether a pod is being deleted while its sidecar
// still runs: it finishes the requests it has and those kube-proxy still
// sends it, the developer's among them.
func podDraining(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && sidecarRunning(p)
}

func sidecarRunning(p *corev1.Pod) bool {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == "intercept-proxy" {
			return c.State.Running != nil
		}
	}
	return false
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
