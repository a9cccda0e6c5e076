package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// A decoy intercept moves the Service to the proxy's pods, which carry the
// session label alone (the original's labels would make the decoy send
// requests back to them). A NetworkPolicy that admits callers of the
// original's pods by their labels does not select the proxy's: while the
// intercept lasts any pod could reach the Service through them (and, with
// the developer's header, the developer's machine). A copy keeps the
// original's labels, and its policies with them.

// decoyPolicyGap lists the NetworkPolicies of ns that limit who may call
// the original's pods (an Ingress policy selecting their labels) when no
// policy of the namespace selects the proxy's pods. ok is false when the
// policies could not be read (forbidden).
func decoyPolicyGap(ctx context.Context, cs kubernetes.Interface, ns string, src *workload.Source) (names []string, ok bool, err error) {
	list, err := cs.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, describeAPIError(err, "listing the NetworkPolicies of namespace "+ns)
	}
	original := labels.Set(src.Template.Labels)
	proxy := labels.Set{LabelSession: "any"} // the proxy's pods: the session label alone
	for i := range list.Items {
		np := &list.Items[i]
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !limitsIngress(np) {
			continue
		}
		if sel.Matches(proxy) {
			return nil, true, nil // the proxy's pods have a policy of their own
		}
		if sel.Matches(original) {
			names = append(names, np.Name)
		}
	}
	slices.Sort(names)
	return names, true, nil
}

// limitsIngress reports whether a NetworkPolicy limits who may call the
// pods it selects (policyTypes with Ingress, or none given: Ingress).
func limitsIngress(np *networkingv1.NetworkPolicy) bool {
	return len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// checkDecoyPolicies is the start's NetworkPolicy check of a decoy: an
// error (policies that would not apply to the proxy), a warning (they
// could not be read), or neither.
func checkDecoyPolicies(ctx context.Context, cs kubernetes.Interface, ns, service string, src *workload.Source) (warning string, err error) {
	names, ok, err := decoyPolicyGap(ctx, cs, ns, src)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("cannot list the NetworkPolicies of namespace %s (forbidden), so whether one limits who may call %s was not checked: "+
			"a decoy's proxy pods carry none of its labels, and no policy written for them would apply while the intercept lasts. "+
			"--decoy=false copies %s with its labels; the Role's optional rule on networkpolicies (docs/rbac.yaml) lets the check run",
			ns, src.Ref(), src.Ref()), nil
	}
	if len(names) == 0 {
		return "", nil
	}
	return "", &DecoyPolicyError{Namespace: ns, Service: service, Workload: src.Ref(), Policies: names}
}

// DecoyPolicyError refuses a decoy whose proxy would escape the
// NetworkPolicies of the original's pods.
type DecoyPolicyError struct {
	Namespace, Service, Workload string
	Policies                     []string
}

func (e *DecoyPolicyError) Error() string {
	return e.Reason() + ". Use --decoy=false (a copy keeps " + e.Workload + "'s labels, and these policies apply to it), " +
		"or add a NetworkPolicy with the same rules whose podSelector is the label " + LabelSession + " (operator Exists)"
}

// Reason is why a decoy would open a way around the policies.
func (e *DecoyPolicyError) Reason() string {
	return fmt.Sprintf("networkpolicy %s limits who may call %s, and selects its pods by their labels; a decoy's proxy pods would take service %s's requests with the label %s alone, "+
		"so while the intercept lasts any pod could reach service %s (and, with your header, your machine) through them",
		strings.Join(e.Policies, ", "), e.Workload, e.Service, LabelSession, e.Service)
}

// decoyPolicies runs the NetworkPolicy check of a start that would serve
// the Service by decoy: asked for (--decoy), a policy gap refuses it; by
// default, the workload is copied instead, and why is said.
func decoyPolicies(ctx context.Context, cs kubernetes.Interface, o StartOptions, svc *corev1.Service, src *workload.Source) (decoy bool, why string, err error) {
	warning, err := checkDecoyPolicies(ctx, cs, o.Namespace, svc.Name, src)
	var gap *DecoyPolicyError
	switch {
	case errors.As(err, &gap) && o.Mode != ModeDecoy:
		return false, gap.Reason() + "; so " + src.Ref() + " is copied (its labels, and these policies, go with the copy)", nil
	case err != nil:
		return false, "", err
	}
	if warning != "" && o.Progress != nil {
		o.Progress.Warn(warning)
	}
	return true, "", nil
}
