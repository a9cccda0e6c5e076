//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/rbac"
)

const rbacUser = "e2e-developer"

// rbacGroup is the group a test's developers are in: one per namespace, so
// that each test's policies (cluster-wide) are its own.
func rbacGroup(ns string) string { return "devs-" + ns }

// installRBAC applies what `kubectl intercept rbac -n ns --group group`
// prints (the Role, its binding to the group, the admission policies for
// the sidecar image of the run) and waits until the policies are in force
// for the group's members; the policies are removed at the end of the test.
// It returns the Role as applied.
func installRBAC(t *testing.T, ns, group string) *rbacv1.Role {
	t.Helper()
	ctx := context.Background()
	out, err := runPlugin(t, "rbac", "-n", ns, "--group", group, "-o", "json")
	if err != nil {
		t.Fatalf("kubectl-intercept rbac: %v\n%s", err, out)
	}
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl-intercept rbac -o json: %v\n%s", err, out)
	}
	var role *rbacv1.Role
	for _, raw := range list.Items {
		var meta metav1.TypeMeta
		if err := json.Unmarshal(raw, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Role":
			role = &rbacv1.Role{}
			decodeStrict(t, raw, role)
			if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case "RoleBinding":
			var b rbacv1.RoleBinding
			decodeStrict(t, raw, &b)
			if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		case "ValidatingAdmissionPolicy":
			var p admissionv1.ValidatingAdmissionPolicy
			decodeStrict(t, raw, &p)
			policies := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies()
			if _, err := policies.Create(ctx, &p, metav1.CreateOptions{}); err != nil {
				t.Fatalf("installing policy %s: %v", p.Name, err)
			}
			t.Cleanup(func() { _ = policies.Delete(context.Background(), p.Name, metav1.DeleteOptions{}) })
		case "ValidatingAdmissionPolicyBinding":
			var b admissionv1.ValidatingAdmissionPolicyBinding
			decodeStrict(t, raw, &b)
			bindings := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
			if _, err := bindings.Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatalf("installing policy binding %s: %v", b.Name, err)
			}
			t.Cleanup(func() { _ = bindings.Delete(context.Background(), b.Name, metav1.DeleteOptions{}) })
		default:
			t.Fatalf("kubectl-intercept rbac printed a %s", meta.Kind)
		}
	}
	if role == nil {
		t.Fatal("kubectl-intercept rbac printed no Role")
	}
	// The API server's type check of the policies (kube-controller-manager
	// writes it into their status) finds nothing to warn about: every
	// field they name exists in this Kubernetes.
	for _, raw := range list.Items {
		var obj struct {
			Kind     string
			Metadata metav1.ObjectMeta
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Kind != "ValidatingAdmissionPolicy" {
			continue
		}
		var checked *admissionv1.ValidatingAdmissionPolicy
		waitFor(t, 60*time.Second, "the type check of policy "+obj.Metadata.Name, func() bool {
			p, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, obj.Metadata.Name, metav1.GetOptions{})
			if err == nil && p.Status.ObservedGeneration == p.Generation {
				checked = p
			}
			return checked != nil
		})
		if tc := checked.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
			t.Errorf("policy %s does not type-check on this API server: %+v", obj.Metadata.Name, tc.ExpressionWarnings)
		}
	}
	// The API server compiles a new policy in a moment, and RBAC changes
	// reach the authorizer through a watch: wait until a member is refused
	// what only the policies refuse (a Deployment and a Lease not ours).
	member := impersonate(t, rbacUser+"-probe", group)
	plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "not-a-copy", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "plain"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: demoImage}}}}}}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "not-ours", Namespace: ns}}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	waitFor(t, 60*time.Second, "the admission policies for group "+group+" to be in force", func() bool {
		_, errD := member.AppsV1().Deployments(ns).Create(ctx, plain, dry)
		_, errL := member.CoordinationV1().Leases(ns).Create(ctx, lease, dry)
		return refusedByPolicy(errD) && refusedByPolicy(errL)
	})
	return role
}

func decodeStrict(t *testing.T, raw []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		t.Fatalf("kubectl-intercept rbac printed %s: %v", raw, err)
	}
}

// refusedByPolicy says whether err is an admission policy's refusal.
func refusedByPolicy(err error) bool {
	return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
}

// impersonate is a client acting as user, a member of groups.
func impersonate(t *testing.T, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return kubernetes.NewForConfigOrDie(cfg)
}

// shippedRole is the Role of docs/rbac.yaml (pkg/cluster/rbac's tests keep the two
// equal).
func shippedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	return rbac.Defaults().Role()
}

// bindRole grants user exactly role in ns, replacing an earlier grant.
func bindRole(t *testing.T, ns, user string, role *rbacv1.Role) {
	t.Helper()
	ctx := t.Context()
	replaceRole(t, ns, role)
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "developer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Get(ctx, rb.Name, metav1.GetOptions{}); err != nil {
		if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// RBAC changes reach the authorizer through a watch: wait until they show.
	time.Sleep(500 * time.Millisecond)
}

// replaceRole replaces the Role of ns with role, keeping its bindings.
func replaceRole(t *testing.T, ns string, role *rbacv1.Role) {
	t.Helper()
	ctx := t.Context()
	role = role.DeepCopy()
	role.Namespace, role.ResourceVersion = ns, ""
	_ = cs.RbacV1().Roles(ns).Delete(ctx, role.Name, metav1.DeleteOptions{})
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer through a watch: wait until they show.
	time.Sleep(500 * time.Millisecond)
}

// The whole flow works for a member of the group that `kubectl intercept
// rbac` (docs/rbac.yaml) binds the Role to and the admission policy
// confines, with the policy in force, and with any one permission taken
// away the tool refuses up front, naming it, and changes nothing.
func TestLeastPrivilegeRole(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	group := rbacGroup(ns)
	role := installRBAC(t, ns, group)
	as := []string{"--as", rbacUser, "--as-group", group, "-n", ns}

	port := laptop(t, laptopPod)
	before := takeSnapshot(t, ns, "demo")
	p := startPlugin(t, append(as, "svc/demo", "-l", strconv.Itoa(port))...)
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if out := p.output(); strings.Contains(out, "admission policy") {
		t.Fatalf("a confined member was warned about the admission policy:\n%s", out)
	}
	// The header through the ClusterIP, from the client pod.
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q", got)
	}
	if out, err := runPlugin(t, append(as, "list")...); err != nil || !strings.Contains(out, "active") {
		t.Fatalf("list as %s: %v\n%s", rbacUser, err, out)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept as %s: %v\n%s", rbacUser, err, p.output())
	}
	assertRestored(t, ns, "demo", before)

	for ri, rule := range role.Rules {
		for vi, verb := range rule.Verbs {
			if rule.Resources[0] == "pods/portforward" && vi > 0 {
				continue // get and create are one permission with two verbs
			}
			name := verb + " " + strings.Join(rule.Resources, ",")
			t.Run("without "+name, func(t *testing.T) {
				reduced := role.DeepCopy()
				r := &reduced.Rules[ri]
				if rule.Resources[0] == "pods/portforward" {
					r.Verbs = nil
				} else {
					r.Verbs = slices.Delete(slices.Clone(r.Verbs), vi, vi+1)
				}
				if len(r.Verbs) == 0 {
					reduced.Rules = slices.Delete(reduced.Rules, ri, ri+1)
				}
				replaceRole(t, ns, reduced)
				out, err := runPlugin(t, append(as, "svc/demo", "-l", strconv.Itoa(port))...)
				resource := strings.TrimSuffix(rule.Resources[0], "s")
				if err == nil || !strings.Contains(out, "missing permissions") || !strings.Contains(out, resource) {
					t.Fatalf("want a refusal naming %s, got err %v:\n%s", name, err, out)
				}
				if after := takeSnapshot(t, ns, "demo"); !reflect.DeepEqual(before, after) {
					t.Fatalf("a refused intercept changed the namespace")
				}
			})
		}
	}
}
