package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// The decoy mode: the Service is switched to a proxy-only Deployment (the
// sidecar alone), whose requests that are not a developer's go through a
// decoy ClusterIP Service with the original selector to the original pods.
// The record is the copy's, with Mode and the decoy's name; the proxy
// Deployment carries it as a copy does, and the decoy carries our labels
// and the session's, so a close finds it from either.

// ErrTakeOverDecoy refuses --take-over for an intercept served by a decoy.
var ErrTakeOverDecoy = errors.New("--take-over scales the original to zero, and a decoy intercept needs the original to answer every request that is not yours " +
	"(the proxy's pods are the sidecar alone); its callers' kept-alive connections stay on the original's pods until they close")

// decoyFor says whether a start serves the Service by decoy: asked for,
// or by default for StatefulSets and bare Pods when the decoy can take
// every port of the Service; and, when the default falls back to a copy,
// why.
func decoyFor(mode Mode, svc *corev1.Service, src *workload.Source, ports []*corev1.ServicePort) (bool, string) {
	switch mode {
	case ModeDecoy:
		return true, ""
	case ModeCopy:
		return false, ""
	}
	if src.Kind != workload.KindStatefulSet && src.Kind != workload.KindPod {
		return false, ""
	}
	if !workload.DecoyCovers(svc, ports) {
		return false, fmt.Sprintf("service %s has ports you do not intercept: a decoy would leave them without a server, so %s is copied; -p LOCAL:REMOTE for every port keeps the original serving (the decoy)",
			svc.Name, src.Ref())
	}
	return true, ""
}

// decoyInput is what the decoy transform makes a session's objects from.
func decoyInput(src *workload.Source, svc *corev1.Service, ports []*corev1.ServicePort, rec *Record, replicas int32, image, ip string) workload.DecoyInput {
	return workload.DecoyInput{
		Source: src, Service: svc, Ports: ports, Replicas: replicas,
		Name: rec.Copy, DecoyName: rec.Decoy, DecoyIP: ip,
		SessionLabel: LabelSession, SessionID: rec.ID,
		Labels:     map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		ProxyImage: image,
	}
}

// startDecoy makes a decoy session: the decoy Service first (the proxy's
// upstream is its ClusterIP), then the proxy Deployment, then waits for
// the proxy and switches the Service as for a copy. The proxy's pods run
// the sidecar alone: the wait does not depend on the app's start.
func startDecoy(ctx context.Context, cs kubernetes.Interface, svc *corev1.Service, src *workload.Source, ports []*corev1.ServicePort, rec *Record, replicas int32, o StartOptions) (*Started, error) {
	p := o.Progress
	rec.Mode, rec.Decoy = ModeDecoy, workload.DecoyName(svc.Name, rec.ID)
	in := decoyInput(src, svc, ports, rec, replicas, o.ProxyImage, "")
	decoy, err := workload.DecoyService(in)
	if err != nil {
		return nil, err
	}
	proxy, plans, err := workload.ProxyDeployment(in)
	if err != nil {
		return nil, err
	}
	switched, err := recordPlans(svc, rec, proxy, plans)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return &Started{Record: rec, Service: svc, Created: true, Copy: proxy, Decoy: decoy, Switched: switched}, nil
	}

	done := p.Step(fmt.Sprintf("creating service %s (the decoy: %s keeps serving what is not yours) and deployment %s (the sidecar alone)",
		decoy.Name, src.Ref(), proxy.Name))
	// Marked as starting before anything exists, so no close takes the
	// decoy or the proxy for a crash's leftover.
	if err := beatOnce(ctx, cs, o.Namespace, rec.ID, holderStart+"create-"+rec.ID, nil); err != nil {
		done(err)
		return nil, err
	}
	made, err := cs.CoreV1().Services(o.Namespace).Create(ctx, decoy, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		done(err)
		return nil, describeAPIError(err, "creating service "+decoy.Name+", the decoy")
	}
	undoDecoy := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = deleteDecoyService(cctx, cs, made)
	}
	ip := made.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		undoDecoy()
		err := fmt.Errorf("service %s, the decoy, was given no ClusterIP (%q) for the proxy to go on to; nothing else was created", made.Name, ip)
		done(err)
		return nil, err
	}
	proxy, _, err = workload.ProxyDeployment(decoyInput(src, svc, ports, rec, replicas, o.ProxyImage, ip))
	if err != nil {
		undoDecoy()
		done(err)
		return nil, err
	}
	proxy.Annotations = map[string]string{AnnotationRecord: rec.Encode()}
	if _, err := cs.AppsV1().Deployments(o.Namespace).Create(ctx, proxy, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		undoDecoy()
		done(err)
		return nil, describeAPIError(err, "creating deployment "+proxy.Name)
	}
	b, err := startBeat(ctx, cs, o.Namespace, proxy.Name, rec.ID)
	done(err)
	if err != nil {
		return nil, err
	}
	return finish(ctx, cs, svc, rec, replicas, b, o)
}

// verifyDecoy reads the decoy a record names and checks it is that
// session's, made by the transform from the Service as it was before the
// switch (orig): our labels, the session's, and its whole spec (the
// original selector and ports, a ClusterIP and nothing that reaches
// outside the cluster or changes which of the original's pods answer)
// after the API server's defaults.
func verifyDecoy(ctx context.Context, cs kubernetes.Interface, orig *corev1.Service, rec *Record, ports []*corev1.ServicePort) (*corev1.Service, error) {
	got, err := cs.CoreV1().Services(orig.Namespace).Get(ctx, rec.Decoy, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if err := checkDecoy(got, orig, rec, ports); err != nil {
		return nil, err
	}
	return got, nil
}

// checkDecoy is verifyDecoy on a decoy already read.
func checkDecoy(got, orig *corev1.Service, rec *Record, ports []*corev1.ServicePort) error {
	want, err := workload.DecoyService(decoyInput(&workload.Source{Namespace: orig.Namespace}, orig, ports, rec, 1, "", ""))
	if err != nil {
		return err
	}
	if !ourDecoy(got, rec.ID, rec.Service) {
		return fmt.Errorf("service %s lacks the labels of the decoy of session %s", got.Name, rec.ID)
	}
	if !equality.Semantic.DeepEqual(want.Spec.Selector, got.Spec.Selector) {
		return fmt.Errorf("service %s does not select the original's pods (%v, not %v)", got.Name, got.Spec.Selector, want.Spec.Selector)
	}
	if f := decoyDifference(want, got); f != "" {
		return fmt.Errorf("service %s is not the decoy kubectl-intercept makes from service %s: it differs at %s", got.Name, rec.Service, f)
	}
	return nil
}

// ourDecoy reports whether a Service carries the labels of the decoy of
// session id of service.
func ourDecoy(s *corev1.Service, id, service string) bool {
	return s.Labels[LabelManagedBy] == ManagedByValue && s.Labels[LabelSession] == id && s.Labels[workload.LabelDecoyOf] == service &&
		s.Name == workload.DecoyName(service, id)
}

// deleteDecoyService deletes that very decoy (a precondition on its UID).
func deleteDecoyService(ctx context.Context, cs kubernetes.Interface, s *corev1.Service) error {
	err := cs.CoreV1().Services(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return describeAPIError(err, "deleting service "+s.Name+", the decoy")
	}
	return nil
}

// KeptDecoyError is a close's refusal to delete a Service that carries
// the labels of a session's decoy but is not the decoy that session made:
// someone may have put it in the decoy's place to receive the Service's
// requests. It is kept, as evidence, for a person to look at and remove.
type KeptDecoyError struct {
	Namespace, Name, Found string
}

func (e *KeptDecoyError) Error() string {
	return fmt.Sprintf("service %s was kept, not deleted: it stands as a decoy but does not check out (%s); someone may have put it there to receive the Service's requests. "+
		"Look at it and where it sends (kubectl get service %s -n %s -o yaml; kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s), then remove it: kubectl delete service %s -n %s",
		e.Name, e.Found, e.Name, e.Namespace, e.Namespace, e.Name, e.Name, e.Namespace)
}

// deleteDecoy deletes the decoy a record names, once its labels say it is
// that session's and it checks out as the transform's (the same check as
// a join's, against the Service it stood behind); a Service of that name
// that is not is left alone (a *KeptDecoyError when it carries the
// decoy's labels).
func deleteDecoy(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) error {
	if !rec.IsDecoy() {
		return nil
	}
	s, err := cs.CoreV1().Services(ns).Get(ctx, rec.Decoy, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return describeAPIError(err, "reading service "+rec.Decoy+", the decoy")
	}
	if !ourDecoy(s, rec.ID, rec.Service) {
		return fmt.Errorf("service %s is named as the decoy of session %s but lacks its labels: it was left alone; check who made it (kubectl get svc %s -n %s -o yaml)",
			rec.Decoy, rec.ID, rec.Decoy, ns)
	}
	if err := checkDecoyAtClose(ctx, cs, s, rec); err != nil {
		return err
	}
	return deleteDecoyService(ctx, cs, s)
}

// checkDecoyAtClose checks a decoy before a close deletes it: against the
// Service it stands behind as it was before the switch (the record's
// selector and ports), or, with the Service gone, against the record's
// selector alone. A decoy that fails is a *KeptDecoyError.
func checkDecoyAtClose(ctx context.Context, cs kubernetes.Interface, s *corev1.Service, rec *Record) error {
	kept := func(found string) error { return &KeptDecoyError{Namespace: s.Namespace, Name: s.Name, Found: found} }
	svc, err := cs.CoreV1().Services(s.Namespace).Get(ctx, rec.Service, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if len(rec.Selector) == 0 || !equality.Semantic.DeepEqual(rec.Selector, s.Spec.Selector) {
			return kept(fmt.Sprintf("it selects %v, not the original's %v", s.Spec.Selector, rec.Selector))
		}
		return nil
	}
	if err != nil {
		return describeAPIError(err, "reading service "+rec.Service+" to check its decoy "+s.Name)
	}
	orig, _ := Restore(svc, rec)
	if len(rec.Selector) > 0 {
		orig.Spec.Selector = rec.Selector
	}
	var ports []*corev1.ServicePort
	var keys []string
	if rec.Port != "" {
		keys = rec.PortKeys()
	} else { // a leftover without its record: a decoy takes every port of the Service
		for i := range orig.Spec.Ports {
			ports = append(ports, &orig.Spec.Ports[i])
		}
	}
	for _, key := range keys {
		i := workload.PortIndex(orig, key)
		if i < 0 {
			return kept("service " + rec.Service + " has no port " + key + " to compare it with")
		}
		ports = append(ports, &orig.Spec.Ports[i])
	}
	if err := checkDecoy(s, orig, rec, ports); err != nil {
		return kept(err.Error())
	}
	return nil
}

// orphanAge is how long a decoy without a proxy must stand, its session
// not renewed, before it counts as a crash's leftover: a start creates the
// proxy a moment after the decoy, under the session's fresh claim.
const orphanAge = 10 * time.Second

// cleanOrphanDecoys deletes the decoys of service (every Service's when
// empty; only session id's when id is set) whose proxy Deployment is gone
// and whose session nobody is starting: what a start killed between the
// two creates leaves. It returns the decoys it deleted; one that does
// not check out as the transform's is kept (a *KeptDecoyError each).
func cleanOrphanDecoys(ctx context.Context, cs kubernetes.Interface, ns, service, id string) ([]string, error) {
	set := map[string]string{LabelManagedBy: ManagedByValue}
	if service != "" {
		set[workload.LabelDecoyOf] = service
	}
	if id != "" {
		set[LabelSession] = id
	}
	list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()})
	if err != nil {
		return nil, describeAPIError(err, "listing the decoys in namespace "+ns)
	}
	var deleted []string
	var keptErrs []error
	for i := range list.Items {
		s := &list.Items[i]
		sid, of := s.Labels[LabelSession], s.Labels[workload.LabelDecoyOf]
		if !validID(sid) || !ourDecoy(s, sid, of) || s.DeletionTimestamp != nil {
			continue
		}
		if live, err := decoyInUse(ctx, cs, ns, sid, of, s); err != nil || live {
			if err != nil {
				return deleted, err
			}
			continue
		}
		// A leftover checks out against the Service as it is now (restored,
		// or never switched); one that does not is kept and said.
		if err := checkDecoyAtClose(ctx, cs, s, &Record{ID: sid, Service: of, Mode: ModeDecoy, Decoy: s.Name}); err != nil {
			keptErrs = append(keptErrs, err)
			continue
		}
		if err := deleteDecoyService(ctx, cs, s); err != nil {
			return deleted, err
		}
		deleted = append(deleted, s.Name)
	}
	return deleted, errors.Join(keptErrs...)
}

// decoyInUse reports whether a decoy still has its session: a proxy
// Deployment of that session, a Service switched to it, or a start of it
// renewing its claim.
func decoyInUse(ctx context.Context, cs kubernetes.Interface, ns, id, service string, s *corev1.Service) (bool, error) {
	copies, err := findCopies(ctx, cs, ns, service)
	if err != nil {
		return false, err
	}
	for i := range copies {
		if copies[i].Labels[LabelSession] == id {
			return true, nil
		}
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, service, metav1.GetOptions{})
	if err == nil {
		if r, err := RecordFrom(svc.Annotations); err == nil && r.ID == id {
			return true, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return false, describeAPIError(err, "reading service "+service)
	}
	if time.Since(s.CreationTimestamp.Time) < orphanAge {
		return true, nil
	}
	l, err := cs.CoordinationV1().Leases(ns).Get(ctx, claimName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, describeAPIError(err, "reading lease "+claimName(id))
	}
	renewed := l.Spec.RenewTime
	return renewed != nil && time.Since(renewed.Time) < orphanAge && strings.HasPrefix(ptr.Deref(l.Spec.HolderIdentity, ""), holderStart), nil
}

// checkProxyTemplate is CheckCopyTemplate for a decoy session: the decoy
// must be the session's, made from the Service as it was, and the proxy
// Deployment what the transform makes with the decoy's ClusterIP.
func checkProxyTemplate(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment, orig *corev1.Service, ports []*corev1.ServicePort,
	src *workload.Source, rec *Record, image string, refuse func(string) error) error {
	decoy, err := verifyDecoy(ctx, cs, orig, rec, ports)
	if apierrors.IsNotFound(err) {
		return refuse("its decoy, service " + rec.Decoy + ", is gone")
	}
	if err != nil {
		return refuse("its decoy does not check out: " + err.Error())
	}
	want, plans, err := workload.ProxyDeployment(decoyInput(src, orig, ports, rec, 1, image, decoy.Spec.ClusterIP))
	if err != nil {
		return refuse("its original cannot be proxied any more (" + err.Error() + ")")
	}
	return compareCopy(ctx, cs, want, plans, d, rec, refuse)
}

// keptDecoysOnly reports whether err is made of *KeptDecoyError alone: a
// close warns of those and goes on.
func keptDecoysOnly(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !keptDecoysOnly(e) {
				return false
			}
		}
		return true
	}
	var kept *KeptDecoyError
	return errors.As(err, &kept)
}
