package session

import (
	"context"
	"errors"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// onlyFrontend is a NetworkPolicy that lets only the frontend call the
// pods it selects.
func onlyFrontend(name string, sel metav1.LabelSelector) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: sel,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "frontend"}},
			}}}},
		},
	}
}

// The original's pods are shut off by a NetworkPolicy that selects them by
// their labels (only the frontend may call them). A decoy would move the
// Service to the proxy's pods, which carry the session label alone: no
// policy of the original selects them, so any pod of the cluster would
// reach the Service (and, with the developer's header, their machine).
// Whatever the start makes, the pods the Service is switched to must be
// under the policy: --decoy is refused, saying why and what to do, and
// the default copies the StatefulSet (a copy keeps its labels).
func TestProxyPodsNeverEscapeTheOriginalsNetworkPolicies(t *testing.T) {
	policy := onlyFrontend("shop-only-frontend", metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}})
	sel, err := metav1.LabelSelectorAsSelector(&policy.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]Mode{"by default": ModeAuto, "--decoy": ModeDecoy} {
		t.Run(name, func(t *testing.T) {
			sts, pod := ledger()
			cs := fake.NewClientset(sts, pod, shopService(), policy)
			var w warnings
			st, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, Mode: mode, DryRun: true, Progress: &w})
			if err != nil {
				var gap *DecoyPolicyError
				if mode != ModeDecoy || !errors.As(err, &gap) || !strings.Contains(err.Error(), "--decoy=false") || !strings.Contains(err.Error(), policy.Name) {
					t.Fatalf("start (%s) with a NetworkPolicy on the original: %v; want refused, naming the policy and --decoy=false", name, err)
				}
				return
			}
			if got := st.Copy.Spec.Template.Labels; !sel.Matches(labels.Set(got)) {
				t.Fatalf("start (%s): networkpolicy %s (%v) does not apply to the pods (%v) service shop would be switched to (warnings %q)",
					name, policy.Name, policy.Spec.PodSelector.MatchLabels, got, w)
			}
			if mode == ModeAuto && !strings.Contains(strings.Join(w, "\n"), policy.Name) {
				t.Fatalf("the default copied the StatefulSet without saying why: %q", w)
			}
		})
	}
}

// A namespace whose policies select the proxy's pods as well (by the
// session label) keeps the decoy; so does one without policies.
func TestDecoyWhenThePolicyCoversTheProxy(t *testing.T) {
	sts, pod := ledger()
	onOriginal := onlyFrontend("shop-only-frontend", metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}})
	onProxy := onlyFrontend("intercepts-only-frontend", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: LabelSession, Operator: metav1.LabelSelectorOpExists}}})
	cs := fake.NewClientset(sts, pod, shopService(), onOriginal, onProxy)
	st, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, Mode: ModeDecoy, DryRun: true})
	if err != nil || st.Decoy == nil {
		t.Fatalf("--decoy with a policy on the proxy's pods too: %v", err)
	}
}

// A member who may not list NetworkPolicies is told the check did not
// run, and what to do.
func TestDecoyWarnsWhenPoliciesCannotBeRead(t *testing.T) {
	sts, pod := ledger()
	cs := fake.NewClientset(sts, pod, shopService())
	cs.PrependReactor("list", "networkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, "", errors.New("RBAC"))
	})
	var w warnings
	st, err := Start(context.Background(), cs, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, Mode: ModeDecoy, DryRun: true, Progress: &w})
	if err != nil || st.Decoy == nil {
		t.Fatalf("--decoy without the right to list NetworkPolicies: %v", err)
	}
	if said := strings.Join(w, "\n"); !strings.Contains(said, "cannot list the NetworkPolicies") || !strings.Contains(said, "--decoy=false") {
		t.Fatalf("the unchecked policies were not said: %q", said)
	}
}
