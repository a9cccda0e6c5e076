package portforward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/tunnel"
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
		if f.conflicts[p.Name] != nil && gateOpen(p) && !f.closing[p.Name] {
			f.closing[p.Name] = true
			go f.shutGate(ctx, p.Name)
		}
		// A gate shut again after someone opened it (or seen open in a
		// stale copy when the route came up) is checked again here.
		if h := f.holders[p.Name]; h != nil && f.conflicts[p.Name] == nil && session.Gated(p) {
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

// pickRelay keeps the relay while its pod serves and is not being
// deleted; otherwise the oldest such pod becomes the relay.
func (f *Follower) pickRelay(pods []*corev1.Pod) {
	usable := func(p *corev1.Pod) bool {
		return session.Reachable(p) && !session.Draining(p) && p.DeletionTimestamp == nil && !time.Now().Before(f.avoid[p.Name]) &&
			f.conflicts[p.Name] == nil
	}
	if p, ok := f.pods[f.relay]; ok && usable(p) {
		return
	}
	var best *corev1.Pod
	for _, p := range pods {
		if !usable(p) {
			continue
		}
		if best == nil || p.CreationTimestamp.Before(&best.CreationTimestamp) ||
			(p.CreationTimestamp.Equal(&best.CreationTimestamp) && p.Name < best.Name) {
			best = p
		}
	}
	if best != nil && best.Name != f.relay {
		if f.relay != "" {
			f.logf("pod %s relays the route now (pod %s goes)", best.Name, f.relay)
		}
		f.relay = best.Name
	}
}

// relayFailed counts a failed tunnel to pod; a relay whose tunnel fails
// maxRelayFailures times in a row while its pod looks healthy (a kubelet
// that refuses port-forwards, a sidecar that does not answer) is avoided
// for avoidRelayFor, so another pod relays the route meanwhile.
func (f *Follower) relayFailed(pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pod != f.relay {
		return
	}
	f.relayFails[pod]++
	if f.relayFails[pod] >= maxRelayFailures {
		f.relayFails[pod] = 0
		f.avoid[pod] = time.Now().Add(avoidRelayFor)
		f.logf("the tunnel to pod %s failed %d times in a row; another pod relays the route for %s", pod, maxRelayFailures, avoidRelayFor)
	}
}

// Relay failure bounds (see relayFailed).
const (
	maxRelayFailures = 3
	avoidRelayFor    = 30 * time.Second
)

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
	if errors.Is(err, tunnel.ErrConflict) && !f.conflicted(pod, err) {
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
	if f.Conn != nil && !f.Route.All {
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

// refused ends Run when the sidecar refused the route for good (a kind it
// cannot match); a route another key holds is an alarm on that pod (see
// conflicted); other failures are logged, and retried.
func (f *Follower) refused(err error, format, pod string) {
	if errors.Is(err, tunnel.ErrConflict) {
		if !f.conflicted(pod, err) {
			f.mu.Lock()
			f.direct[pod] = true // its own tunnel contests (see contest)
			f.mu.Unlock()
		}
		return
	}
	if errors.Is(err, tunnel.ErrUnsupported) || errors.Is(err, tunnel.ErrBadRequest) {
		select {
		case f.fatal <- err:
		default:
		}
		return
	}
	f.logf(format, pod, err)
}

// conflicted records that another key holds the route on pod. While some
// pod holds it for this CLI, that is an alarm, not the end: the other pods
// keep the route, this one is retried (it gets the route once the other
// key's drops), is not the relay, and its readiness gate stays shut (sync
// shuts it again if someone opens it), so the Service sends it nothing.
// Only when every serving pod of the copy refuses the route is it taken,
// and Run ends with the sidecar's answer, as when a teammate holds it.
// It reports whether the route is taken.
func (f *Follower) conflicted(pod string, err error) (taken bool) {
	f.mu.Lock()
	first := f.conflicts[pod] == nil
	f.conflicts[pod] = err
	taken = len(f.holders) == 0
	for name, p := range f.pods {
		if session.Reachable(p) && f.conflicts[name] == nil {
			taken = false
		}
	}
	f.mu.Unlock()
	if taken {
		select {
		case f.fatal <- err:
		default:
		}
		return true
	}
	if first {
		f.logf("alarm: route %s held on pod %s by another key (%v). Another kubectl-intercept registered the same route there first; "+
			"the other pods keep your route, pod %s stays out of the Service while it is held, "+
			"and gets your route once it is free", f.Route, pod, err, pod)
	}
	select {
	case f.retry <- struct{}{}: // a relay that was refused moves
	default:
	}
	return false
}

// contestPause is how often a contested pod is asked for the route again.
const contestPause = time.Second

// contest answers a route another key holds on pod while this CLI holds
// it elsewhere: the sidecar suspends the other key's route (its requests
// go to the app, to nobody's laptop) while this tunnel lives, and the
// route is asked for again until the other key lets go. It returns nil
// once the route is registered here, or why not.
func (f *Follower) contest(ctx context.Context, c *tunnel.Client, pod string, r route.Route) error {
	tag := tunnel.OwnerTag(f.Route.Client)
	if err := c.Contest(r); err != nil {
		if !errors.Is(err, tunnel.ErrNotFound) { // not found: the other key just left
			f.logf("pod %s: the sidecar did not suspend the other key's route: %v", pod, err)
		}
	} else {
		f.logf("pod %s: the other key's route is suspended there (its requests go to the app) while this intercept lasts", pod)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(contestPause):
		}
		_, err := c.RegisterTagged(r, tag)
		if !errors.Is(err, tunnel.ErrConflict) {
			return err
		}
	}
}

// freed notes that pod holds the route after all.
func (f *Follower) freed(pod string) {
	f.mu.Lock()
	was := f.conflicts[pod] != nil
	delete(f.conflicts, pod)
	f.mu.Unlock()
	if was {
		f.logf("pod %s is no longer held by another key", pod)
	}
}

// Conflicts returns the pods where another key holds the route.
func (f *Follower) Conflicts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.conflicts))
	for p := range f.conflicts {
		out = append(out, p)
	}
	return out
}

// gateOpen reports whether the pod's routes gate is set.
func gateOpen(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == session.RoutesGate {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// shutGate shuts the readiness gate of a pod where another key holds the
// route.
func (f *Follower) shutGate(ctx context.Context, pod string) {
	defer func() {
		f.mu.Lock()
		delete(f.closing, pod)
		f.mu.Unlock()
	}()
	msg := fmt.Sprintf("held on pod %s by another key: route %s", pod, f.Route)
	var err error
	if f.CloseGate != nil {
		err = f.CloseGate(ctx, pod, msg)
	} else {
		err = closeGate(ctx, f.Client, f.Namespace, pod, msg)
	}
	if err != nil && ctx.Err() == nil {
		f.logf("shutting the readiness gate of pod %s: %v", pod, err)
	} else if err == nil {
		f.logf("pod %s: readiness gate shut again (held on pod %s by another key)", pod, pod)
	}
}

// closeGate sets the pod's routes condition to False.
func closeGate(ctx context.Context, cs kubernetes.Interface, ns, pod, message string) error {
	patch := map[string]any{"status": map[string]any{"conditions": []map[string]any{{
		"type": string(session.RoutesGate), "status": "False", "reason": "HeldByAnotherKey", "message": message,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}}}
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, pod, types.StrategicMergePatchType, b, metav1.PatchOptions{FieldManager: session.FieldManager}, "status"); err != nil {
		return fmt.Errorf("keeping pod %s out of the Service: %w", pod, err)
	}
	return nil
}

// link holds the route on pod through the relay's tunnel, after admitting
// this CLI there once; a pod the relay cannot reach gets a tunnel of its
// own from the next sync.
func (f *Follower) link(ctx context.Context, key, pod, ip, relay, podKey string) {
	var l *tunnel.Link
	defer f.ended(ctx, key, pod, func() bool { return l != nil && f.holders[pod] == holder(l) })
	rc, err := f.relayClient(ctx, relay)
	if err != nil {
		return // the relay changed, or ctx ended: the next sync decides
	}
	if err := f.admit(ctx, pod, podKey); err != nil {
		if errors.Is(err, tunnel.ErrUnsupported) {
			f.goDirect(pod, "its sidecar has no peer port")
			return
		}
		if ctx.Err() == nil {
			f.logf("admitting this CLI on pod %s: %v", pod, err)
		}
		return
	}
	l, err = rc.Relay(ctx, pod, net.JoinHostPort(ip, strconv.Itoa(f.PeerPort)), podKey)
	var de *tunnel.DialError
	switch {
	case errors.As(err, &de) && de.Reason == tunnel.DialNotAllowed:
		// The pod forgot this CLI (it keeps the last MaxAdmissions
		// developers): admit again on the next try. A pod that keeps
		// refusing (its peer port flooded, say) gets a tunnel of its own.
		f.mu.Lock()
		delete(f.admitted, pod)
		f.refusals[pod]++
		again := f.refusals[pod] < maxRefusals
		f.mu.Unlock()
		if !again {
			f.goDirect(pod, fmt.Sprintf("the relay in pod %s was refused %d times: %s", relay, maxRefusals, de.Message))
			return
		}
		f.logf("relaying the route to pod %s: %v; trying again", pod, err)
		return
	case errors.As(err, &de) && de.Reason != tunnel.DialFailed:
		f.goDirect(pod, fmt.Sprintf("the relay in pod %s cannot reach it: %s", relay, de.Message))
		return
	case err != nil:
		if ctx.Err() == nil {
			f.refused(err, "relaying the route to pod %s: %v", pod)
		}
		return
	}
	defer l.Close()
	f.mu.Lock()
	f.holders[pod] = l
	delete(f.refusals, pod)
	f.mu.Unlock()
	f.freed(pod)
	f.logf("route up: pod %s (relayed by pod %s)", pod, relay)
	f.mu.Lock()
	f.startGate(ctx, pod, l)
	f.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-l.Done():
		if ctx.Err() == nil {
			f.logf("relay link to pod %s closed; opening it again while the pod serves", pod)
		}
	}
}

// maxRefusals is how many refusals in a row of the relay by one pod send
// that pod to a tunnel of its own.
const maxRefusals = 3

// relayClient waits until the tunnel to relay holds the route.
func (f *Follower) relayClient(ctx context.Context, relay string) (*tunnel.Client, error) {
	for {
		f.mu.Lock()
		c, cur := f.clients[relay], f.relay
		f.mu.Unlock()
		switch {
		case cur != relay:
			return nil, fmt.Errorf("the relay moved")
		case c != nil:
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// admit hands pod this CLI's pod key for it over a short port-forward,
// once.
func (f *Follower) admit(ctx context.Context, pod, podKey string) error {
	f.mu.Lock()
	done := f.admitted[pod]
	f.mu.Unlock()
	if done {
		return nil
	}
	conn, err := f.dial(ctx, pod)
	if err != nil {
		return err
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Admit(podKey); err != nil {
		return err
	}
	f.mu.Lock()
	f.admitted[pod] = true
	f.mu.Unlock()
	return nil
}

// goDirect gives pod a tunnel of its own from the next sync, and says why.
func (f *Follower) goDirect(pod, why string) {
	f.mu.Lock()
	f.direct[pod] = true
	first := !f.warned
	f.warned = true
	f.mu.Unlock()
	if first {
		f.logf("warning: pod %s gets a tunnel of its own (one more API-server connection), since %s. "+
			"If a NetworkPolicy blocks traffic between the copy's pods, allow its pods to reach each other on port %d", pod, why, f.PeerPort)
	} else {
		f.logf("pod %s gets a tunnel of its own: %s", pod, why)
	}
	select {
	case f.retry <- struct{}{}:
	default:
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

// startGate starts one gate check for pod unless one runs; f.mu is held.
func (f *Follower) startGate(ctx context.Context, pod string, mine holder) {
	if f.NoGate || f.gating[pod] {
		return
	}
	f.gating[pod] = true
	go func() {
		defer func() {
			f.mu.Lock()
			delete(f.gating, pod)
			f.mu.Unlock()
		}()
		f.gate(ctx, pod, mine)
	}()
}

// gate opens a new pod's readiness gate once its sidecar holds every route
// a ready sibling holds: each developer's CLI checks after registering, and
// the last one to register finds the set complete. A pod with no ready
// sibling (a copy that scaled from nothing) holds all there is.
func (f *Follower) gate(ctx context.Context, pod string, mine holder) {
	wait := f.GateWait
	if wait == 0 {
		wait = DefaultGateWait
	}
	deadline := time.Now().Add(wait)
	for {
		f.mu.Lock()
		p := f.pods[pod]
		var sibling holder
		readySiblings := 0
		for name, q := range f.pods {
			if name != pod && session.PodReady(q) && q.DeletionTimestamp == nil {
				readySiblings++
				if c, ok := f.holders[name]; ok && sibling == nil {
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
