package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Two kubectl-intercepts can start and close the same session at once (two
// developers, one arriving as the other leaves). They coordinate on the
// copy Deployment with compare-and-swap updates (resourceVersion):
//
//   - a starter (creating, resuming or joining the session) keeps a
//     heartbeat in AnnotationStarting until its intercept is active;
//   - a closer claims the copy by setting AnnotationClosing, but only once
//     no heartbeat has moved for beatStale; a heartbeat that stands still
//     is left over from a crash;
//   - a starter's heartbeat fails once a closer has claimed the copy, and
//     the start begins again with a new session.
//
// Every write is an update at the resourceVersion just read, so of a beat
// and a claim racing each other exactly one lands, and the other side sees
// it on its next read: a close never removes a copy someone is switching
// the Service to, and a start never joins a copy that is going away.
const (
	// AnnotationStarting on a copy holds a heartbeat: a kubectl-intercept
	// is starting or joining this session right now.
	AnnotationStarting = "intercept.kubectl.dev/starting"
	// AnnotationClosing on a copy says a close has claimed it.
	AnnotationClosing = "intercept.kubectl.dev/closing"
)

const (
	beatEvery = time.Second
	// beatStale is how long a heartbeat must stand still before a close
	// takes it for a crash's leftover.
	beatStale = 4 * time.Second
	// beatAncient: a heartbeat this old by the local clock is a leftover
	// at once, whatever the clocks' skew.
	beatAncient = 2 * time.Minute
)

// ErrClosing says a close claimed the session while this start used it.
var ErrClosing = errors.New("the intercept was closed while starting")

// beat keeps AnnotationStarting on a copy fresh.
type beat struct {
	done chan struct{}
	lost atomic.Bool
	once sync.Once
	stop func()
}

// startBeat marks the copy as being started, and keeps the mark fresh until
// stop. It fails with ErrClosing if a close has claimed the copy.
func startBeat(ctx context.Context, cs kubernetes.Interface, ns, name string) (*beat, error) {
	if err := beatOnce(ctx, cs, ns, name); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b := &beat{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			select {
			case <-bctx.Done():
				return
			case <-t.C:
			}
			err := beatOnce(bctx, cs, ns, name)
			if errors.Is(err, ErrClosing) {
				b.lost.Store(true)
				return
			}
		}
	}()
	b.stop = func() {
		cancel()
		<-b.done
		if b.lost.Load() {
			return
		}
		// Take the mark away, so a close need not wait for it to go stale.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		removeMark(cctx, cs, ns, name, AnnotationStarting)
	}
	return b, nil
}

// Lost reports whether a close claimed the copy while the beat ran.
func (b *beat) Lost() bool { return b != nil && b.lost.Load() }

// Stop ends the heartbeat and removes the mark; it is safe to call twice
// and on nil.
func (b *beat) Stop() {
	if b != nil {
		b.once.Do(b.stop)
	}
}

func beatValue() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// beatOnce renews the mark, at the resourceVersion it read.
func beatOnce(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ErrClosing
		}
		if err != nil {
			return err
		}
		if d.DeletionTimestamp != nil || d.Annotations[AnnotationClosing] != "" {
			return ErrClosing
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[AnnotationStarting] = beatValue()
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}

// claim marks a copy as being closed, unless another kubectl-intercept is
// starting it: then it returns false. It waits up to beatStale to tell a
// live heartbeat from a leftover one. force claims regardless.
func claim(ctx context.Context, cs kubernetes.Interface, ns string, name string, force bool) (bool, error) {
	deadline := time.Now().Add(beatStale)
	seen := ""
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, describeAPIError(err, "reading deployment "+name)
		}
		if d.DeletionTimestamp != nil || d.Annotations[AnnotationClosing] != "" {
			return true, nil // another close got there first; finishing it is harmless
		}
		if mark := d.Annotations[AnnotationStarting]; mark != "" && !force && !ancient(mark) {
			if seen != "" && mark != seen {
				return false, nil // the heartbeat moves: someone is starting it
			}
			if time.Now().Before(deadline) {
				seen = mark
				if err := sleepCtx(ctx, beatEvery/4); err != nil {
					return false, err
				}
				continue
			}
		}
		if claimed, err := markClosing(ctx, cs, d); err != nil || claimed {
			return claimed, err
		}
		// A conflict: someone wrote in between; look again.
	}
}

// markClosing sets AnnotationClosing at the resourceVersion of d; false
// without error on a conflict.
func markClosing(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) (bool, error) {
	d = d.DeepCopy()
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[AnnotationClosing] = beatValue()
	_, err := cs.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsConflict(err):
		return false, nil
	default:
		return false, describeAPIError(err, "claiming deployment "+d.Name+" for closing")
	}
}

// ancient tells a heartbeat too old to be anyone's.
func ancient(mark string) bool {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(mark))
	return err != nil || time.Since(t) > beatAncient
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// removeMark takes annotation key (a start's heartbeat, a close's claim)
// off a copy, retrying on conflicts; a copy without it is left as it is.
func removeMark(ctx context.Context, cs kubernetes.Interface, ns, name, key string) {
	_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || d.Annotations[key] == "" {
			return nil
		}
		delete(d.Annotations, key)
		_, err = cs.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}
