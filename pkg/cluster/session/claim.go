package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Two kubectl-intercepts can start and close the same session at once (two
// developers, one arriving as the other leaves). They coordinate on the
// session's claim, a coordination.k8s.io/v1 Lease named intercept-<id>,
// with compare-and-swap updates (resourceVersion):
//
//   - a starter (creating, resuming or joining the session) holds the Lease
//     as "start/<its id>" and renews it every second until its intercept is
//     active;
//   - a closer takes the Lease as "close/<its id>", but only once no
//     renewal has moved for beatStale; a renewal that stands still is left
//     over from a crash;
//   - a starter's renewal fails once a closer holds the Lease, and the
//     start begins again with a new session.
//
// Every write is an update at the resourceVersion just read (or a create,
// which only one side wins), so of a renewal and a claim racing each other
// exactly one lands, and the other side sees it on its next read: a close
// never removes a copy someone is switching the Service to, and a start
// never joins a copy that is going away. The copy Deployment itself is not
// written by the protocol.
const (
	// AnnotationStarting on a copy held the heartbeat of a start in
	// versions before the claim Lease; still honored, never written.
	AnnotationStarting = "intercept.kubectl.dev/starting"
	// AnnotationClosing on a copy said a close had claimed it in versions
	// before the claim Lease; still honored, never written.
	AnnotationClosing = "intercept.kubectl.dev/closing"
	// LabelLease says what a Lease of ours is: LeaseClaim or LeasePresence.
	LabelLease = "intercept.kubectl.dev/lease"
	// LeaseClaim marks a session's start/close claim.
	LeaseClaim = "claim"
	// LeasePresence marks a developer's presence in a session.
	LeasePresence = "presence"

	holderStart = "start/"
	holderClose = "close/"
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

// claimName is the name of a session's claim Lease.
func claimName(id string) string { return "intercept-" + id }

// leaseMeta is the metadata of a Lease of ours for session id, owned by
// the copy (so it goes with it) when its UID is known.
func leaseMeta(name, id, kind string, owner *appsv1.Deployment) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelSession: id, LabelLease: kind}}
	if owner != nil && owner.UID != "" {
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner.Name, UID: owner.UID}}
	}
	return m
}

// beat holds a session's claim Lease as a starter.
type beat struct {
	done chan struct{}
	lost atomic.Bool
	once sync.Once
	stop func()
}

// startBeat marks the session as being started, and keeps the mark fresh
// until stop. It fails with ErrClosing if a close has claimed it, or its
// copy is gone or going.
func startBeat(ctx context.Context, cs kubernetes.Interface, ns, copyName, id string) (*beat, error) {
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, copyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrClosing
	}
	if err != nil {
		return nil, describeAPIError(err, "reading deployment "+copyName)
	}
	if d.DeletionTimestamp != nil || d.Annotations[AnnotationClosing] != "" {
		return nil, ErrClosing
	}
	me := holderStart + newID()
	if err := beatOnce(ctx, cs, ns, id, me, d); err != nil {
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
			if err := beatOnce(bctx, cs, ns, id, me, d); errors.Is(err, ErrClosing) {
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
		// Let go of the Lease, so a close need not wait for it to go stale.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer ccancel()
		release(cctx, cs, ns, id, me)
	}
	return b, nil
}

// Lost reports whether a close claimed the copy while the beat ran.
func (b *beat) Lost() bool { return b != nil && b.lost.Load() }

// Stop ends the heartbeat and lets go of the Lease; it is safe to call
// twice and on nil.
func (b *beat) Stop() {
	if b != nil {
		b.once.Do(b.stop)
	}
}

// beatOnce renews the claim Lease as holder me, at the resourceVersion it
// read; ErrClosing when a close holds it.
func beatOnce(ctx context.Context, cs kubernetes.Interface, ns, id, me string, copyDep *appsv1.Deployment) error {
	leases := cs.CoordinationV1().Leases(ns)
	for attempt := 0; attempt < 5; attempt++ {
		now := metav1.NowMicro()
		l, err := leases.Get(ctx, claimName(id), metav1.GetOptions{})
		if apierrors.IsNotFound(err) && copyDep != nil {
			// A close removes the claim with the copy: is the copy still there?
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, copyDep.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) || (err == nil && (d.UID != copyDep.UID || d.DeletionTimestamp != nil)) {
				return ErrClosing
			}
		}
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{ObjectMeta: leaseMeta(claimName(id), id, LeaseClaim, copyDep), Spec: coordinationv1.LeaseSpec{
				HolderIdentity: ptr.To(me), LeaseDurationSeconds: ptr.To(int32(beatStale / time.Second)), AcquireTime: &now, RenewTime: &now,
			}}
			_, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			return describeAPIErrorOr(err, "creating lease "+claimName(id))
		}
		if err != nil {
			return describeAPIError(err, "reading lease "+claimName(id))
		}
		if strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderClose) {
			return ErrClosing
		}
		l.Spec.HolderIdentity, l.Spec.RenewTime = ptr.To(me), &now
		l.Spec.LeaseDurationSeconds = ptr.To(int32(beatStale / time.Second))
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		return describeAPIErrorOr(err, "renewing lease "+claimName(id))
	}
	return errors.New("lease " + claimName(id) + " kept changing; try again")
}

// describeAPIErrorOr is describeAPIError for a possibly nil error.
func describeAPIErrorOr(err error, doing string) error {
	if err == nil {
		return nil
	}
	return describeAPIError(err, doing)
}

// release lets go of the claim Lease if holder me still holds it (a start
// that settled, a close that stayed).
func release(ctx context.Context, cs kubernetes.Interface, ns, id, me string) {
	leases := cs.CoordinationV1().Leases(ns)
	for attempt := 0; attempt < 5; attempt++ {
		l, err := leases.Get(ctx, claimName(id), metav1.GetOptions{})
		if err != nil || ptr.Deref(l.Spec.HolderIdentity, "") != me {
			return
		}
		l.Spec.HolderIdentity, l.Spec.RenewTime = nil, nil
		if _, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager}); !apierrors.IsConflict(err) {
			return
		}
	}
}

// claim takes a session's claim Lease for a close, unless another
// kubectl-intercept is starting it: then it returns false. It waits up to
// beatStale to tell a live heartbeat from a leftover one. force claims
// regardless. me is the close's holder identity.
func claim(ctx context.Context, cs kubernetes.Interface, ns string, d *appsv1.Deployment, me string, force bool) (bool, error) {
	id := d.Labels[LabelSession]
	leases := cs.CoordinationV1().Leases(ns)
	deadline := time.Now().Add(beatStale)
	seen := ""
	for {
		cur, err := cs.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, describeAPIError(err, "reading deployment "+d.Name)
		}
		if cur.DeletionTimestamp != nil || cur.Annotations[AnnotationClosing] != "" {
			return true, nil // another close got there first; finishing it is harmless
		}
		l, err := leases.Get(ctx, claimName(id), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = nil
		} else if err != nil {
			return false, describeAPIError(err, "reading lease "+claimName(id))
		}
		mark := cur.Annotations[AnnotationStarting] // a start of an earlier version
		if l != nil {
			holder := ptr.Deref(l.Spec.HolderIdentity, "")
			if strings.HasPrefix(holder, holderClose) {
				return true, nil
			}
			if strings.HasPrefix(holder, holderStart) && l.Spec.RenewTime != nil {
				mark = holder + "@" + l.Spec.RenewTime.UTC().Format(time.RFC3339Nano) + " " + mark
			}
		}
		if mark != "" && !force && !ancientMark(l, cur.Annotations[AnnotationStarting]) {
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
		now := metav1.NowMicro()
		spec := coordinationv1.LeaseSpec{HolderIdentity: ptr.To(me), AcquireTime: &now, RenewTime: &now,
			LeaseDurationSeconds: ptr.To(int32(beatStale / time.Second))}
		if l == nil {
			_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: leaseMeta(claimName(id), id, LeaseClaim, cur), Spec: spec},
				metav1.CreateOptions{FieldManager: FieldManager})
		} else {
			l = l.DeepCopy()
			l.Spec = spec
			_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager})
		}
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err), apierrors.IsNotFound(err):
			// Someone wrote in between; look again.
		default:
			return false, describeAPIError(err, "claiming lease "+claimName(id)+" for closing")
		}
	}
}

// ancientMark tells a heartbeat too old to be anyone's: the Lease's
// renewal and an earlier version's annotation, whichever is set.
func ancientMark(l *coordinationv1.Lease, annotation string) bool {
	if l != nil && l.Spec.RenewTime != nil && strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderStart) {
		if time.Since(l.Spec.RenewTime.Time) <= beatAncient {
			return false
		}
	}
	if annotation != "" {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(annotation))
		return err != nil || time.Since(t) > beatAncient
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// deleteLeases removes every Lease of session id: its claim and the
// developers' presence, all of it garbage once its copy is gone.
func deleteLeases(ctx context.Context, cs kubernetes.Interface, ns, id string) error {
	sel := LabelManagedBy + "=" + ManagedByValue + "," + LabelSession + "=" + id
	list, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return describeAPIError(err, "listing the leases of session "+id)
	}
	for _, l := range list.Items {
		err := cs.CoordinationV1().Leases(ns).Delete(ctx, l.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return describeAPIError(err, "deleting lease "+l.Name)
		}
	}
	return nil
}
