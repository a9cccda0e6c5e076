package session

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Permission is one thing the tool does in a namespace.
type Permission struct {
	Group, Resource, Subresource string
	// Verbs must all be allowed: port-forward is authorized as get over
	// WebSocket and as create over the SPDY fallback, so it is one
	// permission with two verbs.
	Verbs []string
	// Why is shown when it is missing.
	Why string
}

func (p Permission) String() string {
	r := p.Resource
	if p.Subresource != "" {
		r += "/" + p.Subresource
	}
	if p.Group != "" {
		r += "." + p.Group
	}
	return strings.Join(p.Verbs, ",") + " " + r
}

// NeededPermissions is every permission an intercept uses, the same list as
// docs/rbac.yaml.
func NeededPermissions() []Permission {
	return []Permission{
		{Resource: "services", Verbs: []string{"get", "list", "watch", "update"}, Why: "read the Service, switch it, notice a revert and restore it"},
		{Resource: "services", Verbs: []string{"create", "delete"}, Why: "create the decoy (--decoy, the default for StatefulSets and bare Pods) and delete it at close"},
		{Resource: "pods", Verbs: []string{"get", "list", "watch"}, Why: "find the workload and follow the copy's pods"},
		{Resource: "pods", Subresource: "status", Verbs: []string{"patch"}, Why: "let a new pod of the copy take traffic once it holds every route (its readiness gate)"},
		{Resource: "pods", Subresource: "portforward", Verbs: []string{"get", "create"}, Why: "the tunnel to the sidecars"},
		{Resource: "persistentvolumeclaims", Verbs: []string{"get"}, Why: "check the workload's volumes"},
		{Group: "apps", Resource: "deployments", Verbs: []string{"get", "list", "watch", "create", "update", "delete"}, Why: "read the original; create, watch, mark and delete the copy"},
		{Group: "apps", Resource: "replicasets", Verbs: []string{"get", "list", "watch"}, Why: "find the workload behind the pods, follow a bare ReplicaSet's scale, see why the copy's pods fail"},
		{Group: "apps", Resource: "statefulsets", Verbs: []string{"get", "list", "watch"}, Why: "copy a StatefulSet and follow its scale"},
		{Group: "discovery.k8s.io", Resource: "endpointslices", Verbs: []string{"list", "watch"}, Why: "know when the Service has moved"},
		{Group: "coordination.k8s.io", Resource: "leases", Verbs: []string{"get", "list", "watch", "create", "update", "delete"}, Why: "say who is in the intercept (presence) and claim it to start or close (Leases intercept-...)"},
	}
}

// CheckAccess asks the API server (SelfSubjectAccessReview) for every
// permission in perms, all reviews at once, and reports every one that is
// missing, before anything changes.
func CheckAccess(ctx context.Context, cs kubernetes.Interface, ns string, perms []Permission) error {
	type verdict struct {
		perm, verb int
		allowed    bool
		err        error
	}
	results := make(chan verdict)
	n := 0
	for i, p := range perms {
		for j, verb := range p.Verbs {
			n++
			review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authv1.ResourceAttributes{
					Namespace: ns, Verb: verb, Group: p.Group, Resource: p.Resource, Subresource: p.Subresource,
				},
			}}
			go func() {
				res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
				results <- verdict{perm: i, verb: j, allowed: err == nil && res.Status.Allowed, err: err}
			}()
		}
	}
	denied := make([][]bool, len(perms))
	for i, p := range perms {
		denied[i] = make([]bool, len(p.Verbs))
	}
	var firstErr error
	for ; n > 0; n-- {
		v := <-results
		if v.err != nil && firstErr == nil {
			firstErr = v.err
		}
		denied[v.perm][v.verb] = !v.allowed
	}
	if firstErr != nil {
		return fmt.Errorf("checking permissions in namespace %s: %w", ns, firstErr)
	}
	var missing []string
	for i, p := range perms {
		q := p
		q.Verbs = nil
		for j, verb := range p.Verbs {
			if denied[i][j] {
				q.Verbs = append(q.Verbs, verb)
			}
		}
		if len(q.Verbs) > 0 {
			missing = append(missing, fmt.Sprintf("%s (to %s)", q, p.Why))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing permissions in namespace %s; nothing was changed:\n  - %s\nAsk for the Role in docs/rbac.yaml (kubectl create rolebinding ... --role=kubectl-intercept)",
			ns, strings.Join(missing, "\n  - "))
	}
	return nil
}
