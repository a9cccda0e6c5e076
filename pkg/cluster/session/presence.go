package session

import (
	"context"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// A developer's presence in a session is a Lease of their own,
// intercept-<session id>-<holder>, renewed while their kubectl-intercept
// lives. A route lives only with its tunnel, and a tunnel being re-linked
// (a port-forward that broke, opened again a second later) holds none for
// that while: the Lease says the developer is still there. It does not
// keep the route alive: the sidecar still drops a route within seconds of
// its tunnel's end (fail-open is the sidecar's alone).
const (
	// presenceDuration is the Lease's leaseDurationSeconds: a presence
	// not renewed for this long is gone.
	presenceDuration = 10 * time.Second
	// presenceRenew is how often a live kubectl-intercept renews it.
	presenceRenew = 3 * time.Second
	// clockSkew is how far the clocks of two developers' machines may be
	// apart for a renewal time to be trusted.
	clockSkew = 2 * time.Second
)

// Presence is this kubectl-intercept's presence in a session; nil is none.
type Presence struct {
	Holder string
	id     string
	name   string
	cs     kubernetes.Interface
	ns     string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// own are the presences this process holds, by session: the CLI leaving
// a session ends its own (Leave), and never takes it for another's.
var own = struct {
	sync.Mutex
	m map[string]*Presence
}{m: map[string]*Presence{}}

// takeOwn returns (and forgets) this process's presence in session id.
func takeOwn(id string) *Presence {
	own.Lock()
	defer own.Unlock()
	p := own.m[id]
	delete(own.m, id)
	return p
}

func presenceName(id, holder string) string { return "intercept-" + id + "-" + holder }

// presenceSelector selects the presence Leases of session id.
func presenceSelector(id string) string {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue, LabelSession: id, LabelLease: LeasePresence}).String()
}

// startPresence creates this kubectl-intercept's presence Lease in the
// session and renews it until End.
func startPresence(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) (*Presence, error) {
	holder := newID() + newID()
	p := &Presence{Holder: holder, id: rec.ID, name: presenceName(rec.ID, holder), cs: cs, ns: ns, done: make(chan struct{})}
	copyDep, _ := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	now := metav1.NowMicro()
	l := &coordinationv1.Lease{ObjectMeta: leaseMeta(p.name, rec.ID, LeasePresence, copyDep), Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(presenceDuration / time.Second)),
		AcquireTime: &now, RenewTime: &now,
	}}
	cur, err := cs.CoordinationV1().Leases(ns).Create(ctx, l, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return nil, describeAPIError(err, "creating lease "+p.name+" (this developer's presence in the intercept)")
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	own.Lock()
	own.m[rec.ID] = p
	own.Unlock()
	go func() {
		defer close(p.done)
		t := time.NewTicker(presenceRenew)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			next, err := p.renew(rctx, cur)
			if apierrors.IsNotFound(err) {
				return // a close removed the session
			}
			if err == nil {
				cur = next
			}
		}
	}()
	return p, nil
}

// renew moves the renewal time on, at the resourceVersion last written
// (re-read on a conflict).
func (p *Presence) renew(ctx context.Context, cur *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	leases := p.cs.CoordinationV1().Leases(p.ns)
	for attempt := 0; attempt < 3; attempt++ {
		l := cur.DeepCopy()
		now := metav1.NowMicro()
		l.Spec.RenewTime = &now
		next, err := leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager})
		if !apierrors.IsConflict(err) {
			return next, err
		}
		if cur, err = leases.Get(ctx, p.name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
	return nil, apierrors.NewConflict(coordinationv1.Resource("leases"), p.name, nil)
}

// End stops renewing the presence and deletes its Lease. Safe on nil and
// twice.
func (p *Presence) End(ctx context.Context) {
	if p == nil {
		return
	}
	p.once.Do(func() {
		own.Lock()
		if own.m[p.id] == p {
			delete(own.m, p.id)
		}
		own.Unlock()
		p.cancel()
		<-p.done
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = p.cs.CoordinationV1().Leases(p.ns).Delete(ctx, p.name, metav1.DeleteOptions{})
	})
}

// holderOf is the holder a presence Lease names.
func holderOf(l *coordinationv1.Lease) string { return ptr.Deref(l.Spec.HolderIdentity, l.Name) }

// presenceExpired tells, by this machine's clock, a Lease whose last
// renewal is older than its duration (and the clocks' skew).
func presenceExpired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.RenewTime == nil {
		return true
	}
	d := time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, int32(presenceDuration/time.Second))) * time.Second
	return now.After(l.Spec.RenewTime.Add(d + clockSkew))
}

// presenceAncient tells a Lease too old to be anyone's, whatever the
// clocks' skew.
func presenceAncient(l *coordinationv1.Lease, now time.Time) bool {
	return l.Spec.RenewTime == nil || now.Sub(l.Spec.RenewTime.Time) > beatAncient
}
