package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Progress receives what a sequence is doing, for the person at the terminal.
type Progress interface {
	// Step starts a step; the returned func ends it.
	Step(what string) (done func(err error))
	Warn(msg string)
}

// NopProgress discards progress.
type NopProgress struct{}

// Step implements Progress.
func (NopProgress) Step(string) func(error) { return func(error) {} }

// Warn implements Progress.
func (NopProgress) Warn(string) {}

// StartOptions are the inputs of Start.
type StartOptions struct {
	Namespace, Service string
	// Ports are the Service ports to intercept by name or number (-r, or
	// the REMOTE side of each -p); empty: the Service's only port.
	Ports      []string
	ProxyImage string
	// Dynamic reads Argo Rollouts; nil: a Service over a Rollout is refused.
	Dynamic dynamic.Interface
	// ReadyTimeout bounds the wait for the copy's pods.
	ReadyTimeout time.Duration
	// AllTraffic is -a: every connection goes to the developer, so the port
	// may speak any protocol; otherwise it must carry readable HTTP headers.
	AllTraffic bool
	// Mode is how the Service is served while intercepted: ModeAuto (the
	// decoy for StatefulSets and bare Pods, a copy for the rest), ModeCopy
	// or ModeDecoy. A session joined keeps its own.
	Mode Mode
	// DryRun computes the copy and the Service change without applying them.
	DryRun   bool
	Progress Progress
}

// Started is an intercept's session after Start.
type Started struct {
	Record  *Record
	Service *corev1.Service
	// Created is true when this call made the session (false: joined one).
	Created bool
	// Copy, Decoy and Switched are what a dry run would apply (Decoy in
	// the decoy mode only; Copy is then the proxy Deployment).
	Copy     *appsv1.Deployment
	Decoy    *corev1.Service
	Switched *corev1.Service

	beat *beat // the starting mark on the copy, until Settle
	// presence is this kubectl-intercept's presence in the session, until
	// it leaves (Leave with the session's ID) or EndPresence.
	presence *Presence
}

// EndPresence ends this kubectl-intercept's presence in the session
// (Leave does it first thing). Safe to call twice and on nil.
func (s *Started) EndPresence(ctx context.Context) {
	if s != nil {
		s.presence.End(ctx)
	}
}

// Settle says this start is over (the intercept is active, or abandoned):
// the session's copy stops being marked as starting, so a close by someone
// else no longer leaves it alone. Safe to call twice.
func (s *Started) Settle() {
	if s != nil {
		s.beat.Stop()
	}
}

// Start makes the session for the Service, or joins the one that is there:
// copy the workload with the sidecar, wait until the copy is ready, then
// switch the Service in one update. On failure it undoes what it made.
func Start(ctx context.Context, cs kubernetes.Interface, o StartOptions) (*Started, error) {
	if o.Progress == nil {
		o.Progress = NopProgress{}
	}
	for attempt := 1; ; attempt++ {
		st, err := startOnce(ctx, cs, o)
		if errors.Is(err, ErrClosing) && attempt < 3 {
			o.Progress.Warn("another kubectl-intercept closed the intercept of service " + o.Service + " while this one joined it; starting again")
			continue
		}
		if err != nil || o.DryRun {
			return st, err
		}
		// Present from here on, while the beat still holds the session:
		// a close that asks once this start has settled sees it.
		if st.presence, err = startPresence(ctx, cs, o.Namespace, st.Record); err != nil {
			st.Settle()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if st.Created {
				_, _ = Close(cctx, cs, CloseOptions{Namespace: o.Namespace, Service: o.Service, ID: st.Record.ID, Progress: NopProgress{}})
			}
			return nil, err
		}
		return st, nil
	}
}

func startOnce(ctx context.Context, cs kubernetes.Interface, o StartOptions) (*Started, error) {
	p := o.Progress
	done := p.Step("resolving service " + o.Service)
	svc, st, err := serviceToStart(ctx, cs, o)
	if st != nil || err != nil {
		done(err)
		return st, err
	}
	target, ports, decoy, err := checkStart(ctx, cs, svc, o)
	done(err)
	if err != nil {
		return nil, err
	}
	if !o.DryRun {
		// A start killed between creating a decoy and its proxy left it.
		gone, err := cleanOrphanDecoys(ctx, cs, o.Namespace, svc.Name, "")
		for _, name := range gone {
			p.Warn("removed service " + name + ", a decoy an earlier start left without its proxy")
		}
		if err != nil {
			p.Warn(err.Error())
		}
	}
	src := target.Source
	if st, err := resume(ctx, cs, svc, target, ports, decoy, o); st != nil || err != nil {
		return st, err
	}
	rec := &Record{
		Version:  RecordVersion,
		ID:       newID(),
		Service:  svc.Name,
		Workload: src.Name,
		Kind:     src.Kind,
		Created:  time.Now().UTC().Truncate(time.Second),
	}
	rec.Copy = copyName(src.Name, rec.ID)
	// The copy starts with as many pods as the original has ready (what
	// the cluster has shown it can run), then follows its desired count.
	replicas := min(src.Ready, src.Replicas)
	if replicas < 1 {
		replicas = 1
	}
	if decoy {
		return startDecoy(ctx, cs, svc, src, ports, rec, replicas, o)
	}
	return startCopy(ctx, cs, svc, src, ports, rec, replicas, o)
}

// serviceToStart reads the Service. One intercepted already is joined
// (a dry run says what it would join); where that session is a crash's
// leftover, it is closed first and the Service read again.
func serviceToStart(ctx context.Context, cs kubernetes.Interface, o StartOptions) (*corev1.Service, *Started, error) {
	svc, err := cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return nil, nil, describeAPIError(err, "reading service "+o.Service)
	}
	raw, ok := RecordAnnotation(svc.Annotations)
	if !ok {
		return svc, nil, nil
	}
	if o.DryRun {
		rec, err := DecodeRecord(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
		return nil, &Started{Record: rec, Service: svc}, nil
	}
	if st, err := join(ctx, cs, svc, raw, o); st != nil || err != nil {
		return nil, st, err
	}
	done := o.Progress.Step("cleaning up a stale intercept of service " + o.Service)
	if _, err := Close(ctx, cs, CloseOptions{Namespace: o.Namespace, Service: o.Service, Progress: NopProgress{}}); err != nil {
		done(err)
		return nil, nil, err
	}
	svc, err = cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	done(err)
	if err != nil {
		return nil, nil, describeAPIError(err, "reading service "+o.Service)
	}
	return svc, nil, nil
}

// checkStart resolves the workload behind the Service, picks the copy or
// the decoy, and runs that mode's preflight, whose warnings it shows.
func checkStart(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, o StartOptions) (*workload.Target, []*corev1.ServicePort, bool, error) {
	if err := workload.CheckService(svc); err != nil {
		return nil, nil, false, err
	}
	ports, err := selectPorts(svc, o.Ports)
	if err != nil {
		return nil, nil, false, err
	}
	target, err := workload.Resolve(ctx, cs, o.Dynamic, svc, LabelSession)
	if err != nil {
		return nil, nil, false, err
	}
	src := target.Source
	decoy, why := decoyFor(o.Mode, svc, src, ports)
	if decoy {
		decoy, why, err = decoyPolicies(ctx, cs, o, svc, src)
		if err != nil {
			return nil, nil, false, err
		}
	}
	var warnings []string
	if decoy {
		warnings, err = workload.PreflightDecoy(svc, ports, src, o.AllTraffic)
	} else {
		var pvcs map[string]*corev1.PersistentVolumeClaim
		if pvcs, err = claims(ctx, cs, src); err == nil {
			warnings, err = workload.Preflight(svc, ports, src, pvcs, o.AllTraffic)
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	if why != "" {
		o.Progress.Warn(why)
	}
	for _, w := range warnings {
		o.Progress.Warn(w)
	}
	return target, ports, decoy, nil
}

// startCopy makes the copy of the workload with the sidecar and switches
// the Service to it (or, on a dry run, says what it would make).
func startCopy(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, src *workload.Source, ports []*corev1.ServicePort, rec *Record, replicas int32, o StartOptions) (*Started, error) {
	p := o.Progress
	cp, plans, err := workload.Copy(workload.CopyInput{
		Source: src, Service: svc, Ports: ports, Replicas: replicas,
		Name: rec.Copy, SessionLabel: LabelSession, SessionID: rec.ID,
		Labels:     map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		ProxyImage: o.ProxyImage,
	})
	if err != nil {
		return nil, err
	}
	switched, err := recordPlans(svc, rec, cp, plans)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return &Started{Record: rec, Service: svc, Created: true, Copy: cp, Switched: switched}, nil
	}

	done := p.Step(fmt.Sprintf("creating deployment %s (copy of %s with the sidecar)", cp.Name, src.Ref()))
	// The session is marked as starting before its copy exists, so no
	// close takes the new copy for a crash's leftover.
	if err := beatOnce(ctx, cs, o.Namespace, rec.ID, holderStart+"create-"+rec.ID, nil); err != nil {
		done(err)
		return nil, err
	}
	if _, err := cs.AppsV1().Deployments(o.Namespace).Create(ctx, cp, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		done(err)
		return nil, describeAPIError(err, "creating deployment "+cp.Name)
	}
	b, err := startBeat(ctx, cs, o.Namespace, cp.Name, rec.ID)
	done(err)
	if err != nil {
		return nil, err
	}
	return finish(ctx, cs, svc, rec, replicas, b, o)
}

// resume picks up a copy of this Service that an earlier start made but
// never switched to (it crashed, or is still starting): rather than make a
// second one, wait for it and switch to it.
func resume(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, target *workload.Target, ports []*corev1.ServicePort, decoy bool, o StartOptions) (*Started, error) {
	if o.DryRun {
		return nil, nil
	}
	copies, err := findCopies(ctx, cs, o.Namespace, svc.Name)
	if err != nil {
		return nil, err
	}
	for i := len(copies) - 1; i >= 0; i-- { // newest first
		c := copies[i]
		rec, err := RecordFrom(c.Annotations)
		if err != nil || c.DeletionTimestamp != nil || rec.WorkloadRef() != target.Source.Ref() || !slices.Equal(rec.PortKeys(), portKeys(ports)) ||
			rec.Copy != c.Name || c.Labels[LabelSession] != rec.ID || rec.IsDecoy() != decoy {
			continue
		}
		// Resuming switches the Service to it: it must be what the
		// transform makes of the original, as for a join.
		if err := CheckCopyTemplate(ctx, cs, o.Dynamic, svc, rec, o.ProxyImage); err != nil {
			o.Progress.Warn(fmt.Sprintf("not resuming deployment %s: %v", c.Name, err))
			continue
		}
		b, err := startBeat(ctx, cs, o.Namespace, c.Name, rec.ID)
		if errors.Is(err, ErrClosing) {
			// A close claimed it and restored the Service (this one is not
			// switched), then may have died before deleting it: finish that.
			o.Progress.Warn(fmt.Sprintf("removing deployment %s, left over from a close that did not finish", c.Name))
			if err := deleteDeployment(ctx, cs, o.Namespace, c); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		o.Progress.Warn(fmt.Sprintf("resuming the intercept an earlier start left unfinished (deployment %s)", c.Name))
		replicas := int32(1)
		if c.Spec.Replicas != nil {
			replicas = *c.Spec.Replicas
		}
		return finish(ctx, cs, svc, rec, replicas, b, o)
	}
	return nil, nil
}

// finish waits for the copy and switches the Service to it; on failure it
// undoes the session.
func finish(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, rec *Record, replicas int32, b *beat, o StartOptions) (*Started, error) {
	p := o.Progress
	undo := func(cause error) error {
		b.Stop()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, cerr := Close(cctx, cs, CloseOptions{Namespace: o.Namespace, Service: o.Service, ID: rec.ID, Progress: NopProgress{}}); cerr != nil {
			return fmt.Errorf("%w (and undoing it failed: %w; run `kubectl intercept close svc/%s`)", cause, cerr, o.Service)
		}
		return cause
	}

	done := p.Step(fmt.Sprintf("waiting for %d/%d pods of %s to be ready", replicas, replicas, rec.Copy))
	err := WaitReady(ctx, cs, o.Namespace, rec.Copy, rec.ID, replicas, o.ReadyTimeout)
	if err == nil && b.Lost() {
		err = ErrClosing
	}
	done(err)
	if err != nil {
		return nil, undo(err)
	}

	done = p.Step("switching service " + svc.Name + " to the copy")
	joined, err := switchService(ctx, cs, o.Namespace, svc.Name, rec)
	if err == nil && joined == nil && b.Lost() {
		err = ErrClosing
	}
	done(err)
	if err != nil {
		return nil, undo(err)
	}
	if joined != nil {
		// Another developer switched it first: use their session.
		_ = undo(nil)
		// Joined as by join: the other session's copy must be ours and
		// what the transform makes of the original.
		if err := verifyCopy(ctx, cs, o.Namespace, joined.Record); err != nil {
			return nil, fmt.Errorf("service %s was switched to another session meanwhile, whose copy does not check out: %w; nothing of it was used", svc.Name, err)
		}
		if err := CheckCopyTemplate(ctx, cs, o.Dynamic, joined.Service, joined.Record, o.ProxyImage); err != nil {
			return nil, err
		}
		if joined.beat, err = startBeat(ctx, cs, o.Namespace, joined.Record.Copy, joined.Record.ID); err != nil {
			return nil, err
		}
		return joined, nil
	}
	svc, err = cs.CoreV1().Services(o.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
	if err != nil {
		return nil, undo(describeAPIError(err, "reading service "+o.Service))
	}
	return &Started{Record: rec, Service: svc, Created: true, beat: b}, nil
}

// join returns the live session on svc, or nil when its copy is gone (a
// stale record to clean up).
func join(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, raw string, o StartOptions) (*Started, error) {
	rec, err := DecodeRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w; run `kubectl intercept close svc/%s` to restore it", svc.Name, err, svc.Name)
	}
	if err := joinablePorts(svc, rec, o.Ports); err != nil {
		return nil, err
	}
	if err := verifyCopy(ctx, cs, svc.Namespace, rec); apierrors.IsNotFound(err) {
		return nil, nil // a stale record: cleaned up, then a new session
	} else if err != nil {
		return nil, fmt.Errorf("%w; nothing was changed. Someone may have edited annotation %s on service %s: check it, then restore the Service by hand (kubectl edit svc %s -n %s)",
			err, RecordKey(svc.Annotations), svc.Name, svc.Name, svc.Namespace)
	}
	// Labels and records are anyone's to write: the copy must be what the
	// transform makes of the live original, or its pods would get this
	// developer's routes, keys and environment.
	if err := CheckCopyTemplate(ctx, cs, o.Dynamic, svc, rec, o.ProxyImage); err != nil {
		return nil, err
	}
	for _, key := range joinedPorts(rec, o.Ports) {
		if i := workload.PortIndex(svc, key); i >= 0 && !o.AllTraffic {
			if err := workload.HeaderRoutable(svc, &svc.Spec.Ports[i]); err != nil {
				return nil, err
			}
		}
	}
	// Joining marks the copy as starting, so a close that races with this
	// leaves the session to us; a copy a close has claimed is stale.
	b, err := startBeat(ctx, cs, svc.Namespace, rec.Copy, rec.ID)
	if errors.Is(err, ErrClosing) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Started{Record: rec, Service: svc, beat: b}, nil
}

// switchService points the Service at the copy, retrying on conflicts. If
// another session switched it in the meantime, it returns that session.
func switchService(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record) (*Started, error) {
	var joined *Started
	copied := rec.Encode()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if raw, ok := RecordAnnotation(svc.Annotations); ok {
			other, err := DecodeRecord(raw)
			if err != nil {
				return err
			}
			if other.ID != rec.ID {
				joined = &Started{Record: other, Service: svc}
				return nil
			}
			// Already switched to this session (another kubectl-intercept
			// resumed the same copy): switching again would record the
			// session's own selector as the original.
			*rec = *other
			return nil
		}
		// The copy's record was written when it was made; the switch
		// happens only if it records exactly that (the Service's selector
		// and targetPorts unchanged since), so the copy's record is always
		// the switch that happened, and a close from it after the
		// Service's record is wiped restores what the switch changed.
		next := *rec
		sw, err := Switch(svc, &next)
		if err != nil {
			return err
		}
		if next.Encode() != copied {
			return &serviceChanged{name: name, was: rec.Selector, now: svc.Spec.Selector}
		}
		_, err = cs.CoreV1().Services(ns).Update(ctx, sw, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	var changed *serviceChanged
	if errors.As(err, &changed) {
		return nil, err
	}
	if err != nil {
		return nil, describeAPIError(err, "switching service "+name)
	}
	return joined, nil
}

// serviceChanged says the Service changed (a deploy) between the copy's
// record and the switch.
type serviceChanged struct {
	name     string
	was, now map[string]string
}

func (e *serviceChanged) Error() string {
	return fmt.Sprintf("service %s changed while its copy was starting (selector %v, now %v, or a targetPort): it was not switched, so the copy's record stays the truth; run the intercept again",
		e.name, e.was, e.now)
}

func claims(ctx context.Context, cs kubernetes.Interface, src *workload.Source) (map[string]*corev1.PersistentVolumeClaim, error) {
	out := map[string]*corev1.PersistentVolumeClaim{}
	for _, v := range src.Template.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pvc, err := cs.CoreV1().PersistentVolumeClaims(src.Namespace).Get(ctx, v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, describeAPIError(err, "reading persistentvolumeclaim "+v.PersistentVolumeClaim.ClaimName)
		}
		if err == nil {
			out[pvc.Name] = pvc
		}
	}
	return out, nil
}

// newID returns a short random ID, valid in names and label values.
func newID() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 6)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// copyName names the copy Deployment: short enough that its pods' names
// (name-<rs hash>-<pod hash>) stay valid.
func copyName(workload, id string) string {
	const maxLen = 47
	suffix := "-intercept-" + id
	if len(workload)+len(suffix) > maxLen {
		workload = strings.TrimRight(workload[:maxLen-len(suffix)], "-.")
	}
	return workload + suffix
}

// describeAPIError wraps an API error with what we were doing, and for
// permission errors, the verb and resource that are missing.
func describeAPIError(err error, doing string) error {
	var st apierrors.APIStatus
	if apierrors.IsForbidden(err) && errors.As(err, &st) {
		return fmt.Errorf("%s: permission denied: %s (ask for the Role in docs/rbac.yaml)", doing, st.Status().Message)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// recordPlans writes the ports' plans into rec, carries rec on d (the copy
// or the proxy) and returns the Service switched to d's pods.
func recordPlans(svc *corev1.Service, rec *Record, d *appsv1.Deployment, plans []workload.PortPlan) (*corev1.Service, error) {
	entries := make([]PortEntry, len(plans))
	for i, plan := range plans {
		entries[i] = PortEntry{Port: plan.Port, Plan: plan}
	}
	rec.setPorts(entries)
	switched, err := Switch(svc, rec)
	if err != nil {
		return nil, err
	}
	d.Annotations = map[string]string{AnnotationRecord: rec.Encode()}
	return switched, nil
}
