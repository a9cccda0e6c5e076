package session

import (
	"errors"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The doctor and the intercept warn when the admission policy does not
// confine the user: it is absent, or the user is outside its group.
func TestPolicyWarning(t *testing.T) {
	refused := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "intercept-policy-probe-x", field.ErrorList{
		field.Invalid(field.NewPath(""), nil, "ValidatingAdmissionPolicy 'kubectl-intercept-deployments' with binding 'kubectl-intercept-deployments' denied request: as a member of group kubectl-intercept-users you may create only copies"),
	})
	for _, tc := range []struct {
		name      string
		user      string
		groups    []string
		whoErr    error
		probeErr  error
		admin     bool
		want      string // empty: no warning
		notWanted string
	}{
		{name: "confined", user: "alice", groups: []string{PolicyGroup}, probeErr: refused},
		{name: "the policy is absent", user: "alice", groups: []string{PolicyGroup, "system:authenticated"},
			want: "no admission policy confines group kubectl-intercept-users in namespace shop (user alice is in it"},
		{name: "a Role bound to the user", user: "bob", groups: []string{"system:authenticated"},
			want: "user bob is not in group kubectl-intercept-users"},
		{name: "an administrator", user: "admin", groups: []string{"system:masters"}, admin: true},
		{name: "no right to create deployments", user: "carol", probeErr: apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "", errors.New("no"))},
		{name: "an API server that does not say who we are", whoErr: apierrors.NewNotFound(schema.GroupResource{Group: "authentication.k8s.io", Resource: "selfsubjectreviews"}, "")},
		{name: "a name with an escape sequence", user: "mallory\x1b]0;owned\x07", groups: []string{"system:authenticated"},
			want: `user "mallory\x1b]0;owned\a" is not in group`, notWanted: "\x1b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			var probed []metav1.CreateOptions
			cs.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, &authnv1.SelfSubjectReview{Status: authnv1.SelfSubjectReviewStatus{
					UserInfo: authnv1.UserInfo{Username: tc.user, Groups: tc.groups}}}, tc.whoErr
			})
			cs.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
				c := a.(k8stesting.CreateActionImpl)
				probed = append(probed, c.CreateOptions)
				return true, c.GetObject(), tc.probeErr
			})
			cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				r := a.(k8stesting.CreateActionImpl).GetObject().(*authv1.SelfSubjectAccessReview)
				r.Status.Allowed = tc.admin
				return true, r, nil
			})
			got := PolicyWarning(t.Context(), cs, "shop")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("warning %q, want %q", got, tc.want)
			}
			if tc.notWanted != "" && strings.Contains(got, tc.notWanted) {
				t.Fatalf("warning %q holds %q", got, tc.notWanted)
			}
			for _, opts := range probed {
				if len(opts.DryRun) != 1 || opts.DryRun[0] != metav1.DryRunAll {
					t.Fatalf("the probe was sent without a server-side dry run: %+v", opts)
				}
			}
			if tc.whoErr == nil && len(probed) != 1 {
				t.Fatalf("%d probes", len(probed))
			}
		})
	}
}

// A fake clientset without reactions (the tests of the commands) gives no
// warning: it does not say who the user is.
func TestPolicyWarningQuietOnAFake(t *testing.T) {
	cs := fake.NewClientset()
	if got := PolicyWarning(t.Context(), cs, "shop"); got != "" {
		t.Fatalf("warning %q", got)
	}
	if list, _ := cs.AppsV1().Deployments("shop").List(t.Context(), metav1.ListOptions{}); len(list.Items) > 0 {
		t.Fatalf("the check left %d deployments", len(list.Items))
	}
}
