package portforward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

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
			if errors.Is(err, tunnel.ErrBadRequest) && f.refusedAgain(pod) {
				// Its admissions are full: the pod gets a tunnel of its
				// own, which registers there directly and so meets any
				// route another key holds there.
				f.goDirect(pod, fmt.Sprintf("pod %s refused the admission %d times: %v", pod, maxRefusals, err))
			}
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

// refusedAgain counts a refusal by pod and says whether it was the last
// one tolerated before the pod goes direct.
func (f *Follower) refusedAgain(pod string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refusals[pod]++
	return f.refusals[pod] >= maxRefusals
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
