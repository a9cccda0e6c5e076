package session

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// WatchSwitch checks the Service every interval while the intercept runs and
// reports, once per change, when something else points it away from the
// copy (kubectl apply, Helm, an Argo CD self-heal), naming the field manager
// that wrote the selector, and when it points at the copy again.
func WatchSwitch(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record, interval time.Duration, report func(string)) {
	reverted := false
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue
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
	}
}

// WaitCopyGone checks every interval whether the session's copy still
// exists and reports true once it does not: someone ended the intercept
// (close --force, close --all) while this one was running. It reports
// false when ctx ends first.
func WaitCopyGone(ctx context.Context, cs kubernetes.Interface, ns, copyName string, interval time.Duration) bool {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		_, err := cs.AppsV1().Deployments(ns).Get(ctx, copyName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true
		}
	}
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
		if m.Manager == FieldManager || m.FieldsV1 == nil || !strings.Contains(string(m.FieldsV1.Raw), `"f:selector"`) {
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
func WaitEndpointsOnCopy(ctx context.Context, cs kubernetes.Interface, ns, name string, rec *Record, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sliceSel := "kubernetes.io/service-name=" + name
	podSel := LabelSession + "=" + rec.ID
	for {
		if onCopyOnly(ctx, cs, ns, sliceSel, podSel) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("service %s still lists pods other than the copy's after %s", name, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func onCopyOnly(ctx context.Context, cs kubernetes.Interface, ns, sliceSel, podSel string) bool {
	slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: sliceSel})
	if err != nil {
		return false
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: podSel})
	if err != nil {
		return false
	}
	copyPods := map[string]bool{}
	for _, p := range pods.Items {
		copyPods[p.Name] = true
	}
	ready := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.TargetRef == nil || !copyPods[e.TargetRef.Name] {
				return false
			}
			ready++
		}
	}
	return ready > 0
}
