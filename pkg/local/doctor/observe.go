// Package doctor is the CLI's side of `kubectl intercept doctor`: it has
// every sidecar of an intercept watch for a marker, sends a request that
// carries it, and collects what reached the Service.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// Sidecars names the sidecars of a copy to watch: the pods, their
// namespace, the control port and how to reach it (cmdutil.DialPod, in the
// CLI).
type Sidecars struct {
	Dial      session.PodDialer
	Namespace string
	Port      int
	Pods      []string
}

// Observer holds a doctor's watch for one marker on every sidecar of a
// copy: a marked request may reach any of them.
type Observer struct {
	Marker tunnel.Marker
	// Missed names the pods whose sidecar could not be asked to watch,
	// and why; a marker that reached them goes unseen.
	Missed map[string]error

	watching []watching // in the order of the pods given
}

type watching struct {
	pod string
	c   *tunnel.Client
}

// WatchSidecars opens a tunnel session to each pod's sidecar and registers
// a watch for m on it. It fails when no sidecar watches, or when one is too
// old to (tunnel.ErrUnsupported, naming the pod): a sidecar that cannot watch may be
// the one the marker reaches.
func WatchSidecars(ctx context.Context, sc Sidecars, m tunnel.Marker) (*Observer, error) {
	pods := sc.Pods
	if len(pods) == 0 {
		return nil, errors.New("no sidecar to watch")
	}
	type result struct {
		c   *tunnel.Client
		err error
	}
	results := make([]result, len(pods))
	var wg sync.WaitGroup
	for i, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := watchOne(ctx, sc, pod, m)
			results[i] = result{c, err}
		}()
	}
	wg.Wait()
	o := &Observer{Marker: m, Missed: map[string]error{}}
	var unsupported error
	for i, r := range results {
		switch {
		case r.err == nil:
			o.watching = append(o.watching, watching{pod: pods[i], c: r.c})
		case errors.Is(r.err, tunnel.ErrUnsupported):
			unsupported = r.err
		default:
			o.Missed[pods[i]] = r.err
		}
	}
	if unsupported != nil || len(o.watching) == 0 {
		o.Close()
		if unsupported != nil {
			return nil, unsupported
		}
		errs := make([]error, 0, len(o.Missed))
		for _, pod := range pods {
			errs = append(errs, o.Missed[pod])
		}
		return nil, fmt.Errorf("no sidecar could watch for the marker: %w", errors.Join(errs...))
	}
	return o, nil
}

func watchOne(ctx context.Context, sc Sidecars, pod string, m tunnel.Marker) (*tunnel.Client, error) {
	conn, err := sc.Dial(ctx, sc.Namespace, pod, sc.Port)
	if err != nil {
		return nil, err
	}
	c, err := tunnel.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tunnel to pod %s: %w", pod, err)
	}
	if _, err := c.Watch(m); err != nil {
		c.Close()
		if errors.Is(err, tunnel.ErrUnsupported) {
			return nil, err
		}
		return nil, fmt.Errorf("asking the sidecar in pod %s to watch: %w", pod, err)
	}
	return c, nil
}

// Pods lists the pods whose sidecar watches.
func (o *Observer) Pods() []string {
	out := make([]string, len(o.watching))
	for i, w := range o.watching {
		out[i] = w.pod
	}
	return out
}

// Send has a watching sidecar request url with method (Host host) and the
// marker from inside the cluster, and returns the answer's status.
func (o *Observer) Send(method, url, host string) (int, error) {
	w := o.watching[0]
	status, err := w.c.Send(method, url, host, o.Marker)
	if err != nil {
		return status, fmt.Errorf("from the sidecar in pod %s: %w", w.pod, err)
	}
	return status, nil
}

// Routes returns the live routes, as one sidecar holds them.
func (o *Observer) Routes() ([]route.Route, error) {
	return o.watching[0].c.Routes()
}

// Seen returns the requests every sidecar recorded, oldest first. Sidecars
// that do not answer are left out; it fails only when none answers.
func (o *Observer) Seen() ([]tunnel.Hit, error) {
	var hits []tunnel.Hit
	var errs []error
	for _, w := range o.watching {
		h, err := w.c.Seen(o.Marker.Nonce)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", w.pod, err))
			continue
		}
		hits = append(hits, h...)
	}
	if len(errs) == len(o.watching) {
		return nil, fmt.Errorf("asking the sidecars what they saw: %w", errors.Join(errs...))
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Time.Before(hits[j].Time) })
	return hits, nil
}

// Collect asks the sidecars every interval what they saw until done says
// that is enough or ctx ends, and returns the last answer. A sidecar that
// answers late or not at all is asked again at the next round.
func (o *Observer) Collect(ctx context.Context, interval time.Duration, done func([]tunnel.Hit) bool) ([]tunnel.Hit, error) {
	var last []tunnel.Hit
	var lastErr error
	for {
		hits, err := o.Seen()
		if err == nil {
			last, lastErr = hits, nil
			if done(hits) {
				return hits, nil
			}
		} else if last == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, lastErr
		case <-time.After(interval):
		}
	}
}

// Close ends every session; the sidecars drop the watches at once.
func (o *Observer) Close() {
	for _, w := range o.watching {
		w.c.Close()
	}
}
