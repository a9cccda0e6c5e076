package session

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DecoyChangedError says that the decoy of a running intercept was
// deleted, replaced or changed: the proxy sends every request that is not
// a developer's to it, so whoever controls it receives them.
type DecoyChangedError struct {
	Namespace, Service, Decoy, What string
}

func (e *DecoyChangedError) Error() string {
	return fmt.Sprintf("service %s, the decoy behind the intercept of service %s/%s, %s: every request that is not yours would go wherever it now points, so the intercept ends and service %s is restored to its original pods. "+
		"Find out who changed it (kubectl get service %s -n %s -o yaml shows its managedFields and creationTimestamp; kubectl get events -n %s)",
		e.Decoy, e.Namespace, e.Service, e.What, e.Service, e.Decoy, e.Namespace, e.Namespace)
}

// WatchDecoy watches the decoy of a running decoy intercept and returns a
// *DecoyChangedError the moment it is no longer the one the intercept
// began with: gone, made anew (another UID), or changed in anything the
// transform sets (its labels, selector, ports, ClusterIP or any other
// field of its spec). The decoy as first seen must check out as the
// transform's too (as a close checks it). It returns nil when ctx ends,
// and the error of setting up the watch when it cannot watch.
func WatchDecoy(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) error {
	if !rec.IsDecoy() {
		return nil
	}
	changed := make(chan struct{}, 1)
	svcs, err := watchService(ctx, cs, ns, rec.Decoy, changed)
	if err != nil {
		return err
	}
	fail := func(what string) error {
		return &DecoyChangedError{Namespace: ns, Service: rec.Service, Decoy: rec.Decoy, What: what}
	}
	var first *corev1.Service
	check := func() (bool, error) {
		s, ok := svcs.Get(rec.Decoy)
		switch {
		case !ok:
			return false, fail("was deleted")
		case s.DeletionTimestamp != nil:
			return false, fail("is being deleted")
		case first == nil:
			if err := checkDecoyAtClose(ctx, cs, s, rec); err != nil {
				return false, fail("is not the decoy kubectl-intercept makes (" + kept(err) + ")")
			}
			first = s.DeepCopy()
			return false, nil
		case s.UID != first.UID:
			return false, fail(fmt.Sprintf("was deleted and made anew (UID %s, was %s), selecting %v", s.UID, first.UID, s.Spec.Selector))
		case !equality.Semantic.DeepEqual(s.Labels, first.Labels):
			return false, fail(fmt.Sprintf("had its labels changed to %v", s.Labels))
		case !equality.Semantic.DeepEqual(emptyNil(s.Annotations), emptyNil(first.Annotations)):
			return false, fail(fmt.Sprintf("had its annotations changed to %v", s.Annotations))
		case !equality.Semantic.DeepEqual(s.Spec, first.Spec):
			field := decoyDifference(first, s)
			if field == "" {
				field = "spec.clusterIP" // the one field decoyDifference leaves to the API server
			}
			return false, fail(fmt.Sprintf("had its spec changed at %s (now selecting %v, ClusterIP %s)", field, s.Spec.Selector, s.Spec.ClusterIP))
		}
		return false, nil
	}
	// The decoy as it stands when the watch is up.
	if _, err := check(); err != nil {
		return err
	}
	return waitChanges(ctx, changed, check, func() error { return nil })
}

// kept is what a close found wrong with a decoy, without its advice.
func kept(err error) string {
	if k, ok := errors.AsType[*KeptDecoyError](err); ok {
		return k.Found
	}
	return err.Error()
}

// decoyState is what list and status say of a decoy intercept's decoy:
// empty when it checks out (or the session is a copy), else what is wrong.
func decoyState(ctx context.Context, cs kubernetes.Interface, ns string, rec *Record) string {
	if !rec.IsDecoy() {
		return ""
	}
	s, err := cs.CoreV1().Services(ns).Get(ctx, rec.Decoy, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "service " + rec.Decoy + ", the decoy, is gone: the proxy's requests that are not a developer's fail"
	}
	if err != nil {
		return "" // unread: the routes say what they can
	}
	if !ourDecoy(s, rec.ID, rec.Service) {
		return "service " + rec.Decoy + " lacks the labels of the session's decoy: someone replaced it"
	}
	if err := checkDecoyAtClose(ctx, cs, s, rec); err != nil {
		return "service " + rec.Decoy + ", the decoy, does not check out (" + kept(err) + "): the requests that are not a developer's go wherever it points"
	}
	return ""
}
