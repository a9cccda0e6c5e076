package session

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PolicyGroup is the group docs/rbac.yaml binds kubectl-intercept's Role
// to and docs/admission-policy.yaml confines.
const PolicyGroup = "kubectl-intercept-users"

// policyCheckTimeout bounds the policy check: it is a warning, never a
// reason to wait.
const policyCheckTimeout = 5 * time.Second

// PolicyWarning says when the admission policy that confines the holders
// of kubectl-intercept's Role (docs/admission-policy.yaml, for PolicyGroup)
// is not in force for the user in namespace ns, and what that means; empty
// when it is, or when it cannot be told.
//
// A holder of the Role cannot read the cluster-wide policies, so the check
// asks what the policy would refuse: a server-side dry run (nothing is
// written) of a Deployment that is not a copy. Refused by a
// ValidatingAdmissionPolicy: confined. Allowed: not confined, because the
// user is outside the group (said only when they have no more than the
// Role: an administrator is not meant to be confined) or because the
// policy is absent.
func PolicyWarning(ctx context.Context, cs kubernetes.Interface, ns string) string {
	group := PolicyGroup
	ctx, cancel := context.WithTimeout(ctx, policyCheckTimeout)
	defer cancel()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || review.Status.UserInfo.Username == "" {
		return "" // an API server that does not say who we are: cannot tell
	}
	user := review.Status.UserInfo
	probe := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "intercept-policy-probe-", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "intercept-policy-probe"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "intercept-policy-probe"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "intercept.invalid/policy-probe"}}},
			},
		},
	}
	_, err = cs.AppsV1().Deployments(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager})
	if err != nil {
		// Refused by a policy (confined), or by RBAC or anything else:
		// either way nothing here to warn about.
		return ""
	}
	who := "user " + quoteUnprintable(user.Username)
	if slices.Contains(user.Groups, group) {
		return fmt.Sprintf("no admission policy confines group %s in namespace %s (%s is in it, and a Deployment that is not a copy would be admitted): "+
			"whoever holds kubectl-intercept's Role here can run any image as any service account, change any Deployment and any field of any Service. "+
			"Ask an administrator to apply `kubectl intercept rbac -n %s --group %s` (docs/security.md says what it confines)",
			quoteUnprintable(group), ns, who, ns, shellQuote(group))
	}
	if canCreatePods(ctx, cs, ns) {
		return "" // more than the Role: the policy is not meant for this user
	}
	return fmt.Sprintf("the admission policy does not confine you in namespace %s: %s is not in group %s, the group it confines, so a Role bound to your user "+
		"lets you (and teammates bound the same way) run any image as any service account and change any Service. "+
		"Ask an administrator to bind kubectl-intercept's Role to the group and put developers in it (`kubectl intercept rbac -n %s --group %s`)",
		ns, who, quoteUnprintable(group), ns, shellQuote(group))
}

// canCreatePods says whether the user may create pods in ns, a right the
// Role does not grant.
func canCreatePods(ctx context.Context, cs kubernetes.Interface, ns string) bool {
	review := &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authv1.ResourceAttributes{Namespace: ns, Verb: "create", Resource: "pods"},
	}}
	res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	return err == nil && res.Status.Allowed
}

// quoteUnprintable shows a name from the cluster quoted when it holds a
// character that is not printable.
func quoteUnprintable(s string) string {
	if strings.ContainsFunc(s, func(c rune) bool { return !unicode.IsPrint(c) }) {
		return strconv.Quote(s)
	}
	return s
}

// shellSafe reports whether c needs no quoting in a shell word.
func shellSafe(c rune) bool {
	return c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '@' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(c rune) bool { return !shellSafe(c) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
