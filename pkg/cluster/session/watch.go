package session

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// WatchSwitch watches the Service while the intercept runs and reports,
// once per change, when something else points it away from the copy
// (kubectl apply, Helm, an Argo CD self-heal), naming the field manager that
// wrote the selector, and when it points at the copy again.
func WatchSwitch(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record, report func(string)) {
	changed := make(chan struct{}, 1)
	svcs, err := watchService(ctx, cs, ns, name, changed)
	if err != nil {
		return
	}
	reverted := false
	_ = waitChanges(ctx, changed, func() (bool, error) {
		svc, ok := svcs.Get(name)
		if !ok {
			return false, nil
		}
		ours := maps.Equal(svc.Spec.Selector, rec.SessionSelector())
		switch {
		case !ours && !reverted:
			reverted = true
			report(RevertMessage(svc))
		case ours && reverted:
			reverted = false
			report(fmt.Sprintf("service %s points at the copy again; intercepting", name))
		}
		return false, nil
	}, func() error { return nil })
}

// WaitCopyGone watches the session's copy and reports true once it is gone:
// someone ended the intercept (close --force, close --all) while this one
// was running. It reports false when ctx ends first.
func WaitCopyGone(ctx context.Context, cs kubernetes.Interface, ns, copyName string) bool {
	changed := make(chan struct{}, 1)
	copies, err := watchDeployment(ctx, cs, ns, copyName, changed)
	if err != nil {
		return false
	}
	err = waitChanges(ctx, changed, func() (bool, error) {
		_, ok := copies.Get(copyName)
		return !ok, nil
	}, func() error { return ctx.Err() })
	return err == nil
}

// RevertMessage says who set the Service's selector away from the copy.
func RevertMessage(svc *corev1.Service) string {
	who := selectorManager(svc)
	return fmt.Sprintf("service %s no longer points at the intercept's copy: its selector is now %v, set by %s. "+
		"Requests are not intercepted until the selector is switched back; pause that tool's sync for this Service, then run the intercept again with -c",
		svc.Name, svc.Spec.Selector, who)
}

// selectorManager names the field manager that last wrote spec.selector,
// other than us.
func selectorManager(svc *corev1.Service) string {
	var best *metav1.ManagedFieldsEntry
	for i := range svc.ManagedFields {
		m := &svc.ManagedFields[i]
		if m.Manager == FieldManager || m.FieldsV1 == nil || !strings.Contains(string(m.FieldsV1.GetRawBytes()), `"f:selector"`) {
			continue
		}
		if best == nil || (m.Time != nil && best.Time != nil && best.Time.Before(m.Time)) {
			best = m
		}
	}
	if best == nil {
		return "an unknown writer"
	}
	when := ""
	if best.Time != nil {
		when = " at " + best.Time.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%q (%s%s)", best.Manager, best.Operation, when)
}

// WaitEndpointsOnCopy waits until every ready endpoint of the Service is a
// pod of the session's copy: until then kube-proxy may still send new
// connections to the original's pods.
// A pod counts as the copy's by its owner chain (CopyChain), not by its
// label: a look-alike pod with the session label is another endpoint.
func WaitEndpointsOnCopy(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record, timeout time.Duration) error {
	chain, err := NewCopyChain(ctx, cs, ns, rec)
	if err != nil {
		return err
	}
	owns := func(p *corev1.Pod) bool { return chain.Owns(ctx, p) }
	return waitEndpoints(ctx, cs, ns, name, sessionPods(rec.ID), owns, timeout, func(e endpointCount) bool {
		return e.copies > 0 && e.others == 0
	}, fmt.Sprintf("service %s still lists pods other than the copy's after %s", name, timeout))
}

// endpointCount is what a Service's EndpointSlices list that is ready: pods
// of a copy, and other endpoints (the original's pods, or no pod at all).
type endpointCount struct {
	slices, copies, others int
}

// countEndpoints counts the ready endpoints of slices; copyPods are the
// pods that count as a copy's.
func countEndpoints(slices []*discoveryv1.EndpointSlice, copyPods []*corev1.Pod) endpointCount {
	copies := map[string]bool{}
	for _, p := range copyPods {
		copies[p.Name] = true
	}
	c := endpointCount{slices: len(slices)}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" && copies[e.TargetRef.Name] {
				c.copies++
			} else {
				c.others++
			}
		}
	}
	return c
}

// waitEndpoints watches the Service's EndpointSlices and the pods copySel
// selects until done holds for the ready endpoints; owns (nil: all) says
// which of those pods count as a copy's.
func waitEndpoints(ctx context.Context, cs kubernetes.Interface, ns, name string, copySel labels.Selector, owns func(*corev1.Pod) bool, timeout time.Duration, done func(endpointCount) bool, onTimeout string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	changed := make(chan struct{}, 1)
	slices, err := watchEndpointSlices(ctx, cs, ns, name, changed)
	if err != nil {
		return err
	}
	pods, err := WatchPods(ctx, cs, ns, copySel, changed)
	if err != nil {
		return err
	}
	return waitChanges(ctx, changed, func() (bool, error) {
		var copyPods []*corev1.Pod
		for _, p := range pods.Items() {
			if owns == nil || owns(p) {
				copyPods = append(copyPods, p)
			}
		}
		return done(countEndpoints(slices.Items(), copyPods)), nil
	}, func() error { return errors.New(onTimeout) })
}
