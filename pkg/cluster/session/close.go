package session

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// CloseOptions are the inputs of Close.
type CloseOptions struct {
	Namespace, Service string
	// ID, if set, limits the close to that session: the Service is only
	// restored if it still points at that session's copy.
	ID string
	// Timeout bounds the wait for the copy's pods to be gone.
	Timeout time.Duration
	// Force closes a session even while another kubectl-intercept is
	// starting or joining it.
	Force    bool
	Progress Progress
	// StayIf, when set, is asked once the copies are claimed (no start can
	// settle on them any more): true leaves the session as it is, claims
	// released. The last-one-out rule asks it whether another developer's
	// route is live, which a check before the claim could miss.
	StayIf func(ctx context.Context, rec *Record) bool
}

// Closed says what Close did.
type Closed struct {
	// Restored is true when the Service was switched back.
	Restored bool
	// Kept lists changes of others to the Service that were kept.
	Kept []string
	// Deleted lists the copies removed.
	Deleted []string
	// Busy lists copies left alone because another kubectl-intercept is
	// starting or joining their session right now.
	Busy []string
	// Stayed says StayIf kept the session.
	Stayed bool
}

// Close restores the Service and removes what the session made. It works
// from any state a crash can leave (a copy without a switch, a switch
// without a live tunnel, a record on the copy only) and is idempotent.
func Close(ctx context.Context, cs kubernetes.Interface, o CloseOptions) (*Closed, error) {
	p := o.Progress
	if p == nil {
		p = NopProgress{}
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	out := &Closed{}
	svc, err := cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, describeAPIError(err, "reading service "+o.Service)
	}
	if apierrors.IsNotFound(err) {
		svc = nil
	}
	copies, err := findCopies(ctx, cs, o.Namespace, o.Service)
	if err != nil {
		return nil, err
	}
	rec, err := closingRecord(ctx, cs, o, svc, copies)
	if err != nil {
		return nil, err
	}
	c := &closing{cs: cs, o: o, p: p, out: out, me: holderClose + newID(), claimed: map[string]bool{}}
	if err := c.claimCopies(ctx, copies); err != nil {
		return nil, err
	}
	if len(c.targets) > 0 && rec != nil && o.StayIf != nil && o.StayIf(ctx, rec) {
		c.releaseAll(ctx) // the claims go back
		out.Stayed = true
		return out, nil
	}
	if err := c.giveBack(ctx, svc, rec); err != nil {
		c.releaseAll(ctx)
		return nil, err
	}
	if svc != nil && rec != nil && (o.ID == "" || rec.ID == o.ID) {
		if err := c.restore(ctx, rec); err != nil {
			return nil, err
		}
	}
	// A session whose copy is gone (a crash's leftover) leaves Leases
	// that nothing renews: garbage.
	if rec != nil && !c.claimed[rec.ID] && (o.ID == "" || rec.ID == o.ID) && !c.copyExists(ctx, rec.Copy) {
		if err := deleteLeases(ctx, cs, o.Namespace, rec.ID); err != nil {
			p.Warn(err.Error())
		}
	}
	for _, t := range c.targets {
		if err := c.remove(ctx, t); err != nil {
			return out, err
		}
	}
	// Decoys whose proxy is gone: a start or a close that died half-way.
	gone, err := cleanOrphanDecoys(ctx, cs, o.Namespace, o.Service, o.ID)
	for _, name := range gone {
		out.Deleted = append(out.Deleted, "service/"+name)
	}
	if err != nil && keptDecoysOnly(err) {
		p.Warn(err.Error())
	} else if err != nil {
		return out, err
	}
	return out, nil
}

// closing is one Close on its way: the copies it claimed and what it did.
type closing struct {
	cs  kubernetes.Interface
	o   CloseOptions
	p   Progress
	out *Closed
	// me is this close's claim; claimed holds the sessions it claimed,
	// targets their copies.
	me      string
	claimed map[string]bool
	targets []appsv1.Deployment
}

// claimCopies claims what this close removes; a session someone is
// starting or joining right now is theirs (Busy).
func (c *closing) claimCopies(ctx context.Context, copies []appsv1.Deployment) error {
	for _, d := range copies {
		if c.o.ID != "" && d.Labels[LabelSession] != c.o.ID {
			continue
		}
		ok, err := claim(ctx, c.cs, c.o.Namespace, &d, c.me, c.o.Force)
		if err != nil {
			return err
		}
		if !ok {
			c.out.Busy = append(c.out.Busy, d.Name)
			continue
		}
		c.claimed[d.Labels[LabelSession]] = true
		c.targets = append(c.targets, d)
	}
	return nil
}

func (c *closing) releaseAll(ctx context.Context) {
	for _, d := range c.targets {
		release(ctx, c.cs, c.o.Namespace, d.Labels[LabelSession], c.me)
	}
}

func (c *closing) copyExists(ctx context.Context, name string) bool {
	_, err := c.cs.AppsV1().Deployments(c.o.Namespace).Get(ctx, name, metav1.GetOptions{})
	return !apierrors.IsNotFound(err)
}

// restore points the Service back at the original. It goes back if its
// session is one this close claimed, or one whose copy is gone (a crash's
// leftover); never when it points at a session someone is starting.
func (c *closing) restore(ctx context.Context, rec *Record) error {
	restorable := func(r *Record) bool {
		if c.o.ID != "" && r.ID != c.o.ID {
			return false
		}
		return c.claimed[r.ID] || !c.copyExists(ctx, r.Copy)
	}
	done := c.p.Step("restoring service " + c.o.Service)
	restored, kept, err := restoreService(ctx, c.cs, c.o.Namespace, c.o.Service, rec, restorable)
	done(err)
	if err != nil {
		return err
	}
	c.out.Restored, c.out.Kept = restored, kept
	for _, k := range kept {
		c.p.Warn("kept " + k)
	}
	if restored {
		done = c.p.Step("waiting for service " + c.o.Service + " endpoints to include the original")
		err := waitEndpointsMoved(ctx, c.cs, c.o.Namespace, c.o.Service, 15*time.Second)
		done(err)
		if err != nil {
			c.p.Warn(err.Error())
		}
	}
	return nil
}

// remove deletes a claimed copy, then its decoy (whose proxy's pods send
// to it while they drain), then its Leases.
func (c *closing) remove(ctx context.Context, d appsv1.Deployment) error {
	done := c.p.Step("deleting deployment " + d.Name)
	err := deleteCopy(ctx, c.cs, c.o.Namespace, d, c.o.Timeout)
	done(err)
	if err != nil {
		return err
	}
	c.out.Deleted = append(c.out.Deleted, d.Name)
	if r, err := RecordOf(&d); err == nil && r.IsDecoy() {
		done := c.p.Step("deleting service " + r.Decoy + " (the decoy)")
		err := deleteDecoy(ctx, c.cs, c.o.Namespace, r)
		switch {
		case err != nil && keptDecoysOnly(err):
			done(nil)
			c.p.Warn(err.Error())
		case err != nil:
			done(err)
			return err
		default:
			done(nil)
			c.out.Deleted = append(c.out.Deleted, "service/"+r.Decoy)
		}
	}
	// The session's claim and presence Leases go with it (its owner
	// reference would remove them too, where the garbage collector runs).
	if id := d.Labels[LabelSession]; id != "" {
		if err := deleteLeases(ctx, c.cs, c.o.Namespace, id); err != nil {
			c.p.Warn(err.Error())
		}
	}
	return nil
}

// closingRecord finds the record a close restores from: the Service's, or
// (its annotations wiped by kubectl apply or a GitOps sync, or mangled by
// hand) a copy's. A record whose copy is not ours is refused; nil with no
// error when there is nothing to restore.
func closingRecord(ctx context.Context, cs kubernetes.Interface, o CloseOptions, svc *corev1.Service, copies []appsv1.Deployment) (*Record, error) {
	var rec *Record
	var unreadable error
	if svc != nil {
		if raw, ok := RecordAnnotation(svc.Annotations); ok {
			if r, err := DecodeRecord(raw); err != nil {
				unreadable = err
			} else {
				rec = r
			}
		}
	}
	if rec != nil {
		if err := checkRecordedCopy(ctx, cs, o.Namespace, o.Service, rec); err != nil {
			return nil, err
		}
		return rec, nil
	}
	for _, c := range copies {
		if r, err := RecordOf(&c); err == nil && (o.ID == "" || r.ID == o.ID) {
			return r, nil
		}
	}
	if unreadable != nil {
		return nil, fmt.Errorf("service %s: %w\n"+
			"No copy of the record is left to restore from, so the Service's original selector is unknown here. "+
			"Set its selector back by hand (kubectl edit svc %s -n %s), then remove the record: "+
			"kubectl annotate svc %s -n %s %s-", o.Service, unreadable, o.Service, o.Namespace, o.Service, o.Namespace, RecordKey(svc.Annotations))
	}
	return nil, nil
}

// restoreService switches the Service back (three-way), retrying on conflicts.
// It restores the session the Service points at now (its record may be
// newer than rec), and only if restorable says that session may go; rec
// stands in when the Service's annotations were wiped.
func restoreService(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record, restorable func(*Record) bool) (restored bool, kept []string, err error) {
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur := rec
		if raw, ok := RecordAnnotation(svc.Annotations); ok {
			if r, err := DecodeRecord(raw); err == nil {
				cur = r
			}
		}
		if !restorable(cur) {
			return nil // a session someone is starting owns the Service now
		}
		out, k := Restore(svc, cur)
		kept = k
		if maps.Equal(out.Spec.Selector, svc.Spec.Selector) && maps.Equal(out.Annotations, svc.Annotations) &&
			slices.Equal(out.Spec.Ports, svc.Spec.Ports) {
			return nil
		}
		if _, err = cs.CoreV1().Services(ns).Update(ctx, out, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return err
		}
		restored = true
		return nil
	})
	if err != nil {
		return false, nil, describeAPIError(err, "restoring service "+name)
	}
	return restored, kept, nil
}

// waitEndpointsMoved waits until the Service's endpoints include a ready pod
// of the original again, so new connections reach it before the copy goes.
// (The copy's pods keep the original's labels, so the restored selector
// still lists them until they terminate; that is fine: they serve too.)
func waitEndpointsMoved(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration) error {
	anyCopy, err := labels.Parse(LabelSession)
	if err != nil {
		return err
	}
	// No slices at all: no endpoint controller writes them, nothing to wait for.
	return waitEndpoints(ctx, cs, ns, name, anyCopy, nil, timeout, func(e endpointCount) bool {
		return e.slices == 0 || e.others > 0
	}, fmt.Sprintf("service %s lists no ready pod of the original after %s; deleting the copy anyway", name, timeout))
}

// findCopies lists the copy Deployments made for a Service (all of them
// when service is empty), oldest first.
func findCopies(ctx context.Context, cs kubernetes.Interface, ns, service string) ([]appsv1.Deployment, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedByValue}).String()
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, describeAPIError(err, "listing copies in namespace "+ns)
	}
	var out []appsv1.Deployment
	for _, d := range list.Items {
		r, err := RecordFrom(d.Annotations)
		if err != nil {
			continue
		}
		if service == "" || r.Service == service {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreationTimestamp.Before(&out[j].CreationTimestamp) })
	return out, nil
}

// deleteCopy deletes a copy and waits for its pods to be gone: their
// sidecars drain connections on the way out.
func deleteCopy(ctx context.Context, cs kubernetes.Interface, ns string, d appsv1.Deployment, timeout time.Duration) error {
	id := d.Labels[LabelSession]
	if id == "" {
		return deleteDeployment(ctx, cs, ns, d)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	changed := make(chan struct{}, 1)
	pods, err := WatchPods(ctx, cs, ns, sessionPods(id), changed)
	if err != nil {
		return describeAPIError(err, "watching the pods of "+d.Name)
	}
	// The copy's pods by their owner chain, not by the label a look-alike
	// may carry too (it would hold the close until the timeout): those
	// whose ReplicaSet the copy controls.
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sessionPods(id).String()})
	if err != nil {
		return describeAPIError(err, "listing the replicasets of "+d.Name)
	}
	ours := map[types.UID]bool{}
	for _, rs := range rss.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.Kind == "Deployment" && ref.UID == d.UID {
			ours[rs.UID] = true
		}
	}
	if err := deleteDeployment(ctx, cs, ns, d); err != nil {
		return err
	}
	return waitChanges(ctx, changed, func() (bool, error) {
		for _, p := range pods.Items() {
			if ref := metav1.GetControllerOf(p); ref != nil && ours[ref.UID] {
				return false, nil
			}
		}
		return true, nil
	}, func() error {
		return fmt.Errorf("deployment %s is deleted but its pods are still terminating after %s; they go away on their own", d.Name, timeout)
	})
}

// deleteDeployment deletes a copy, that very object (a copy made again
// under the same name is left alone), its pods in the background.
func deleteDeployment(ctx context.Context, cs kubernetes.Interface, ns string, d appsv1.Deployment) error {
	bg := metav1.DeletePropagationBackground
	err := cs.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{
		PropagationPolicy: &bg,
		Preconditions:     &metav1.Preconditions{UID: &d.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return describeAPIError(err, "deleting deployment "+d.Name)
	}
	return nil
}

// FindAll lists every Service with intercept residue in the namespace: an
// annotation on the Service, or a copy that names it.
func FindAll(ctx context.Context, cs kubernetes.Interface, ns string) ([]string, error) {
	names := map[string]bool{}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, describeAPIError(err, "listing services in namespace "+ns)
	}
	for _, s := range svcs.Items {
		if _, ok := RecordAnnotation(s.Annotations); ok {
			names[s.Name] = true
		}
	}
	copies, err := findCopies(ctx, cs, ns, "")
	if err != nil {
		return nil, err
	}
	for _, c := range copies {
		if r, err := RecordFrom(c.Annotations); err == nil {
			names[r.Service] = true
		}
	}
	for _, s := range svcs.Items {
		if of := s.Labels[workload.LabelDecoyOf]; of != "" && ourDecoy(&s, s.Labels[LabelSession], of) {
			names[of] = true
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// checkRecordedCopy refuses a record whose copy is not one of ours (a
// forged or edited annotation): nothing may be changed on its word. A copy
// that is gone is no refusal: what it left is cleaned up.
func checkRecordedCopy(ctx context.Context, cs kubernetes.Interface, ns, service string, rec *Record) error {
	if err := verifyCopy(ctx, cs, ns, rec); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%w; nothing was changed. Someone may have edited annotation %s on service %s: check it, then restore the Service by hand (kubectl edit svc %s -n %s)",
			err, AnnotationRecord, service, service, ns)
	}
	return nil
}

// giveBack scales a taken-over original back, and waits for it to be
// ready, before the Service points at it again. Only the session the
// Service's own record names (checked against its copy) is given back, and
// only to that record's workload: a copy of any other session says what it
// took over, but its record is nobody's word, so this close scales nothing
// for it and prints the command instead. Where the Service's session has
// no copy left and its original is at zero, the count to give back went
// with the copy: the warning says so.
func (c *closing) giveBack(ctx context.Context, svc *corev1.Service, rec *Record) error {
	verified := svc != nil && rec != nil && recordedOn(svc, rec)
	given := false
	for i := range c.targets {
		d := &c.targets[i]
		t, err := takeOverOf(d)
		if t == nil || err != nil {
			continue
		}
		if !verified || d.Labels[LabelSession] != rec.ID || d.Name != rec.Copy {
			c.p.Warn(fmt.Sprintf("copy %s records a take-over, but it is not the copy of the session service %s names: "+
				"this close scales nothing for it. If its original was scaled down, scale it back yourself (kubectl scale %s -n %s --replicas=%d)",
				d.Name, c.o.Service, takeOverTarget(d), c.o.Namespace, t.Replicas))
			continue
		}
		if err := GiveBack(ctx, c.cs, c.o.Namespace, rec, d, c.o.Timeout, c.p); err != nil {
			return err
		}
		given = true
	}
	if verified && !given && !c.claimed[rec.ID] && !c.copyExists(ctx, rec.Copy) {
		c.warnIfAtZero(ctx, rec)
	}
	return nil
}

// recordedOn reports whether rec is the record the Service carries.
func recordedOn(svc *corev1.Service, rec *Record) bool {
	raw, ok := RecordAnnotation(svc.Annotations)
	if !ok {
		return false
	}
	r, err := DecodeRecord(raw)
	return err == nil && r.ID == rec.ID
}

// takeOverTarget names, for a command to paste, the workload a copy's own
// record says it copied (unverified: only printed).
func takeOverTarget(d *appsv1.Deployment) string {
	if r, err := RecordOf(d); err == nil {
		return r.WorkloadRef()
	}
	return "WORKLOAD"
}

// warnIfAtZero warns when the original of a session whose copy is gone
// has no replica: a take-over's count lived on that copy.
func (c *closing) warnIfAtZero(ctx context.Context, rec *Record) {
	var replicas *int32
	switch rec.Kind {
	case workload.KindDeployment, "":
		d, err := c.cs.AppsV1().Deployments(c.o.Namespace).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return
		}
		replicas = d.Spec.Replicas
	case workload.KindStatefulSet:
		s, err := c.cs.AppsV1().StatefulSets(c.o.Namespace).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return
		}
		replicas = s.Spec.Replicas
	default:
		return
	}
	if rec.IsDecoy() || replicas == nil || *replicas != 0 {
		return
	}
	c.p.Warn(fmt.Sprintf("%s has 0 replicas and the copy of its intercept is gone. If the intercept took it over (--take-over), "+
		"the count to give back was kept on that copy: scale it back yourself (kubectl scale %s -n %s --replicas=N)",
		rec.WorkloadRef(), rec.WorkloadRef(), c.o.Namespace))
}
