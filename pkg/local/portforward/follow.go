package portforward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Follower puts the developer's route on every running pod of a copy and
// keeps it there: pods that come get it as soon as the watch reports them,
// pods that go lose it. A route lives as long as the tunnel it came by.
//
// With a peer port (PeerPort), the CLI holds one tunnel, to one pod, the
// relay, and the relay carries the route to the other pods over the pod
// network (tunnel.Client.Relay): one API-server connection whatever the
// replica count. The CLI admits itself once on each new pod (a short
// port-forward), so the pod trusts the relay with this developer's route.
//
// A pod is the copy's only by its owner chain (session.CopyChain), never
// by its label: a pod that only carries the label gets nothing, is never
// the relay. What each pod gets is a key derived for it (tunnel.PodKey),
// never the owner key. A route another key holds on one pod is an alarm
// on that pod, not the end of the intercept (see conflicted).
// A pod the relay cannot reach (a NetworkPolicy between the copy's pods)
// gets a tunnel of its own, with a warning; so does every pod of a copy
// without a peer port. When the relay's pod goes, the oldest other pod
// becomes the relay and the routes move to its links.
type Follower struct {
	Config    *rest.Config
	Client    kubernetes.Interface
	Namespace string
	// Record is the session's record: the copy it names is verified, and
	// only pods whose owner chain leads to it are followed. Required.
	Record *session.Record
	// Selector selects the copy's pods (session.CopySelector of Record
	// when empty); Port is the sidecar's control port, PeerPort its peer
	// port (zero: a tunnel to every pod).
	Selector string
	Port     int
	PeerPort int
	Route    route.Route
	// Local is where intercepted connections go, host:port.
	Local string
	// Conn, if set, serves each intercepted connection of a route that is
	// not All (it passes it to Local and may record it); otherwise each
	// connection is piped to Local as it is.
	Conn func(net.Conn)
	// Log receives events for the person at the terminal.
	Log func(format string, args ...any)
	// Dial opens a byte stream to the control port of a pod's sidecar;
	// DialPod through Config when nil.
	Dial func(ctx context.Context, pod string) (io.ReadWriteCloser, error)
	// OpenGate marks a pod as holding every live route (its readiness
	// gate); session.OpenGate through Client when nil. CloseGate shuts it
	// again, on a pod where another key holds this route; a patch of the
	// pod's status through Client when nil.
	OpenGate  func(ctx context.Context, pod, message string) error
	CloseGate func(ctx context.Context, pod, message string) error
	// NoGate leaves new pods' readiness gates to another follower (that
	// of the intercept's first port).
	NoGate bool
	// GateWait is how long a new pod waits for every route before it is
	// let in with what it has; DefaultGateWait when zero.
	GateWait time.Duration

	once       sync.Once
	mu         sync.Mutex
	holders    map[string]holder         // by pod name: what holds the route there
	clients    map[string]*tunnel.Client // the tunnels, by pod name, registered
	pods       map[string]*corev1.Pod    // as the watch last saw them
	active     map[string]context.CancelFunc
	relay      string               // the pod the links go through
	admitted   map[string]bool      // pods this CLI admitted itself on
	refusals   map[string]int       // pods' refusals of the relay, in a row
	relayFails map[string]int       // failed tunnels to the relay, in a row
	avoid      map[string]time.Time // pods not to relay through until then
	direct     map[string]bool      // pods the relay cannot reach
	conflicts  map[string]error     // pods where another key holds the route
	closing    map[string]bool      // pods whose gate is being shut
	gating     map[string]bool      // pods whose gate a check may open
	shutHere   map[string]bool      // pods whose gate this CLI shut for a conflict
	strangers  map[string]bool      // pods with the label, not of the copy: told once
	chain      *session.CopyChain
	warned     bool
	fatal      chan error
	retry      chan struct{} // a tunnel dropped: sync again
	stopped    chan struct{} // closed when Run returns, runErr set
	runErr     error
}

func (f *Follower) init() {
	f.once.Do(func() {
		f.clients = map[string]*tunnel.Client{}
		f.holders = map[string]holder{}
		f.admitted = map[string]bool{}
		f.refusals = map[string]int{}
		f.relayFails = map[string]int{}
		f.avoid = map[string]time.Time{}
		f.direct = map[string]bool{}
		f.conflicts = map[string]error{}
		f.closing = map[string]bool{}
		f.gating = map[string]bool{}
		f.shutHere = map[string]bool{}
		f.strangers = map[string]bool{}
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
	if f.Record == nil {
		return fmt.Errorf("following the copy's pods: no intercept record to tell them by")
	}
	f.chain, err = session.NewCopyChain(ctx, f.Client, f.Namespace, f.Record)
	if err != nil {
		return fmt.Errorf("following the pods of copy %s: %w", f.Record.Copy, err)
	}
	selector := f.Selector
	if selector == "" {
		selector = session.CopySelector(f.Record)
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return fmt.Errorf("the copy's pod selector %q: %w", selector, err)
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
		f.sync(ctx, f.owned(ctx, pods.Items()))
	}
}

// owned keeps the pods whose owner chain leads to the copy; a pod that
// only carries the copy's label is named once, and left alone.
func (f *Follower) owned(ctx context.Context, pods []*corev1.Pod) []*corev1.Pod {
	out := pods[:0:0]
	for _, p := range pods {
		if f.chain.Owns(ctx, p) {
			out = append(out, p)
			continue
		}
		f.mu.Lock()
		told := f.strangers[p.Name]
		f.strangers[p.Name] = true
		f.mu.Unlock()
		if !told {
			f.logf("warning: pod %s carries this intercept's label but is not a pod of copy %s (its owner chain leads elsewhere): "+
				"it gets nothing of your route and is never its relay; see who created it with kubectl get pod %s -n %s -o yaml",
				p.Name, f.Record.Copy, p.Name, f.Namespace)
		}
	}
	return out
}

// holder is what holds the route on one pod: a tunnel to it, or a relay's
// link.
type holder interface {
	Routes() ([]route.Route, error)
	Unregister() error
	InFlight() int
}

// sync holds the route on every pod that serves, and lets go of pods that
// went. Each pod gets a tunnel (keyed "tunnel/POD") or a link through the
// relay ("link/POD/RELAY"); a link through a former relay stays until that
// relay's sidecar ends it, so requests in flight through it finish.
func (f *Follower) sync(ctx context.Context, pods []*corev1.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = make(map[string]*corev1.Pod, len(pods))
	for _, p := range pods {
		f.pods[p.Name] = p
	}
	if f.PeerPort != 0 {
		f.pickRelay(pods)
	}
	seen := map[string]bool{} // pods that serve or drain
	want := map[string]bool{} // keys to run
	for _, p := range pods {
		serving, draining := session.Reachable(p), session.Draining(p)
		if !serving && !draining {
			continue
		}
		// A deleted pod's sidecar keeps serving while it drains, so what
		// holds the route there stays until the sidecar ends it; nothing
		// new is opened to it.
		seen[p.Name] = true
		if !serving {
			continue
		}
		key := "tunnel/" + p.Name
		if f.PeerPort != 0 && p.Name != f.relay && !f.direct[p.Name] && p.Status.PodIP != "" {
			key = "link/" + p.Name + "/" + f.relay
		}
		want[key] = true
		if _, running := f.active[key]; running {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		f.active[key] = cancel
		podKey := tunnel.PodKey(f.Route.Client, string(p.UID), f.Port)
		if strings.HasPrefix(key, "tunnel/") {
			go f.hold(pctx, key, p.Name, podKey)
		} else {
			go f.link(pctx, key, p.Name, p.Status.PodIP, f.relay, podKey)
		}
	}
	for _, p := range pods {
		if f.conflicts[p.Name] != nil && session.GateIsOpen(p) && !f.closing[p.Name] {
			f.closing[p.Name] = true
			go f.shutGate(ctx, p.Name)
		}
		// A gate shut again after someone opened it (or seen open in a
		// stale copy when the route came up) is checked again here.
		// A gate another CLI shut for a conflict is that CLI's to open:
		// a bystander's route there says nothing about the contested one.
		if h := f.holders[p.Name]; h != nil && f.conflicts[p.Name] == nil && session.Gated(p) &&
			(!session.ShutForAConflict(p) || f.shutHere[p.Name]) {
			f.startGate(ctx, p.Name, h)
		}
	}
	for key, cancel := range f.active {
		kind, pod, relay := splitKey(key)
		keep := want[key] || (seen[pod] && kind == "tunnel") || (seen[pod] && seen[relay])
		if !keep {
			cancel() // the pod is gone or no longer serves
			delete(f.active, key)
		}
	}
}

func splitKey(key string) (kind, pod, relay string) {
	parts := strings.SplitN(key, "/", 3)
	kind, pod = parts[0], parts[1]
	if len(parts) == 3 {
		relay = parts[2]
	}
	return kind, pod, relay
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
func (f *Follower) hold(ctx context.Context, key, pod, podKey string) {
	var c *tunnel.Client
	defer f.ended(ctx, key, pod, func() bool { return c != nil && f.clients[pod] == c })
	conn, err := f.dial(ctx, pod)
	if err != nil {
		if ctx.Err() == nil {
			f.logf("tunnel to pod %s: %v", pod, err)
			f.relayFailed(pod)
		}
		return
	}
	c, err = tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		if ctx.Err() == nil {
			f.logf("tunnel to pod %s: %v", pod, err)
			f.relayFailed(pod)
		}
		return
	}
	defer c.Close()
	r := f.Route
	r.Client = podKey
	_, err = c.RegisterTagged(r, tunnel.OwnerTag(f.Route.Client))
	if errors.Is(err, tunnel.ErrConflict) && !f.conflicted(pod, err) && f.holdsElsewhere(pod) {
		err = f.contest(ctx, c, pod, r)
	}
	if err != nil {
		if ctx.Err() == nil {
			f.refused(err, "registering route on pod %s: %v", pod)
			f.relayFailed(pod)
		}
		c = nil
		return
	}
	f.mu.Lock()
	delete(f.relayFails, pod)
	f.clients[pod] = c
	f.holders[pod] = c
	f.mu.Unlock()
	f.freed(pod)
	f.logf("route up: pod %s (its own tunnel)", pod)
	f.mu.Lock()
	f.startGate(ctx, pod, c)
	f.mu.Unlock()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", f.Local)
	}
	if f.Conn != nil && !f.Route.WholeConnections() { // raw connections go straight to the local port
		err = c.ServeConns(ctx, f.Conn)
	} else {
		err = c.Serve(ctx, dial, func(err error) {
			f.logf("intercepted connection from pod %s: local port %s: %v", pod, f.Local, err)
		})
	}
	if ctx.Err() == nil {
		f.logf("tunnel to pod %s closed (%v); reconnecting while the pod serves", pod, err)
	}
}

// ended forgets what held the route on pod (when mine says it is still
// this goroutine's) and, unless ctx ended on purpose, asks for another
// sync after a pause.
func (f *Follower) ended(ctx context.Context, key, pod string, mine func() bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if mine() {
		delete(f.clients, pod)
		delete(f.holders, pod)
	}
	if c, ok := f.active[key]; ok && ctx.Err() == nil {
		c()
		delete(f.active, key) // let the next sync reconnect
		f.retryLater(context.WithoutCancel(ctx))
	}
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
	clients := make([]holder, 0, len(f.holders))
	for _, c := range f.holders {
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
	out := make([]string, 0, len(f.holders))
	for p := range f.holders {
		out = append(out, p)
	}
	return out
}

// AnyClient returns one live tunnel (the relay's when there is one), for
// control calls.
func (f *Follower) AnyClient() (*tunnel.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[f.relay]; ok {
		return c, nil
	}
	for _, c := range f.clients {
		return c, nil
	}
	return nil, fmt.Errorf("no tunnel to a pod of the copy is up")
}

// WaitRegistered waits until n pods hold the route, or hold another key's
// (an alarm already told), or Run ends (a refused route), returning Run's
// error.
func (f *Follower) WaitRegistered(ctx context.Context, n int) error {
	f.init()
	for {
		if got := len(f.Registered()); got > 0 && got+len(f.Conflicts()) >= n {
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
