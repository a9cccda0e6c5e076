//go:build e2e

package e2e

import (
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const rbacUser = "e2e-developer"

func shippedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	b, err := os.ReadFile("../../docs/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("docs/rbac.yaml: %v", err)
	}
	return &role
}

// bindRole grants user exactly role in ns, replacing an earlier grant.
func bindRole(t *testing.T, ns, user string, role *rbacv1.Role) {
	t.Helper()
	ctx := t.Context()
	role = role.DeepCopy()
	role.Namespace = ns
	_ = cs.RbacV1().Roles(ns).Delete(ctx, role.Name, metav1.DeleteOptions{})
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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

// The whole flow works for a user bound only to docs/rbac.yaml's Role, and
// with any one permission taken away the tool refuses up front, naming it,
// and changes nothing.
func TestLeastPrivilegeRole(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	role := shippedRole(t)
	bindRole(t, ns, rbacUser, role)
	as := []string{"--as", rbacUser, "-n", ns}

	port := laptop(t, laptopPod)
	before := takeSnapshot(t, ns, "demo")
	p := startPlugin(t, append(as, "svc/demo", "-l", strconv.Itoa(port))...)
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	fromHost(t, "the header through the ClusterIP", func(t *testing.T) {
		if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
			t.Fatalf("header request reached %q", got)
		}
	})
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
				bindRole(t, ns, rbacUser, reduced)
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
