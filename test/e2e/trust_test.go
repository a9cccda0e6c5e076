//go:build e2e

package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// A second developer who learns everything `list -o json` and `status -o
// json` show (no owner key is among it) cannot take, replace or remove the
// first developer's route, with the same header or with --all, and the
// first keeps it.
func TestRouteBelongsToItsOpener(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	alice, bob := newMachine(t), newMachine(t)

	alice.run(t, true, "svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "x-dev:alice", "-d")
	for _, args := range [][]string{{"list", "-n", ns, "-o", "json"}, {"status", "svc/demo", "-n", ns, "-o", "json"}} {
		out := bob.run(t, true, args...)
		if strings.Contains(out, `"client"`) || strings.Contains(out, `"secret"`) {
			t.Fatalf("%v shows an owner key or secret:\n%s", args, out)
		}
	}
	for _, args := range [][]string{
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "-x", "X-DEV:alice", "-w", "--timeout", "30s"},
		{"svc/demo", "-n", ns, "-l", strconv.Itoa(port), "--all", "-w", "--timeout", "30s"},
	} {
		if out := bob.run(t, false, args...); !strings.Contains(out, "alice") {
			t.Fatalf("bob's %v was refused without naming alice's route:\n%s", args, out)
		}
	}
	if out := bob.run(t, true, "close", "svc/demo", "-n", ns); !strings.Contains(out, "by others are live") {
		t.Fatalf("bob's close svc/demo:\n%s", out)
	}
	status := alice.run(t, true, "status", "svc/demo", "-n", ns)
	if !strings.Contains(status, "x-dev:alice by ") && !strings.Contains(status, "X-Dev:alice by ") {
		t.Fatalf("alice's route is gone after bob's attempts:\n%s", status)
	}
	alice.run(t, true, "close")
	assertRestored(t, ns, "demo", before)
}

// A developer bound to docs/rbac.yaml with docs/admission-policy.yaml
// applied can intercept and close, and is denied what the Role would let
// them do beyond that: changing an unrelated Deployment, creating a
// Deployment without the sidecar, changing a Service's ports.
func TestAdmissionPolicyConfinesTheRole(t *testing.T) {
	ns := newNamespace(t)
	deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	const user, group = "e2e-confined", "kubectl-intercept-users"
	bindRole(t, ns, user, shippedRole(t))

	raw, err := os.ReadFile("../../docs/admission-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &kind); err != nil {
			t.Fatal(err)
		}
		switch kind.Kind {
		case "ValidatingAdmissionPolicy":
			var p admissionv1.ValidatingAdmissionPolicy
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{})
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, p.Name, metav1.DeleteOptions{})
			})
		case "ValidatingAdmissionPolicyBinding":
			var b admissionv1.ValidatingAdmissionPolicyBinding
			if err := yaml.UnmarshalStrict([]byte(doc), &b); err != nil {
				t.Fatal(err)
			}
			_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{})
			if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, b.Name, metav1.DeleteOptions{})
			})
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{group}}
	as := kubernetes.NewForConfigOrDie(cfg)

	// The policy is in force once a Deployment without our label is
	// refused (the API server compiles a new policy in a moment).
	plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "plain"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: demoImage}}}}}}
	waitFor(t, 30*time.Second, "the policy to refuse a Deployment that is not a copy", func() bool {
		_, err := as.AppsV1().Deployments(ns).Create(ctx, plain, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
	})
	labelled := plain.DeepCopy()
	labelled.Labels = map[string]string{"app.kubernetes.io/managed-by": "kubectl-intercept"}
	if _, err := as.AppsV1().Deployments(ns).Create(ctx, labelled, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil || !strings.Contains(err.Error(), "intercept-proxy") {
		t.Errorf("a labelled Deployment without the sidecar: %v", err)
	}
	demo, err := as.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	demo.Spec.Template.Spec.Containers[0].Image = "evil:1"
	if _, err := as.AppsV1().Deployments(ns).Update(ctx, demo, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("changing the unrelated Deployment demo was allowed")
	}
	svc, err := as.CoreV1().Services(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports[0].Port = 8081
	if _, err := as.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("changing the Service's ports was allowed")
	}

	port := laptop(t, laptopPod)
	m := newMachine(t)
	flags := []string{"-n", ns, "--as", user, "--as-group", group}
	m.run(t, true, append([]string{"svc/demo", "-l", strconv.Itoa(port), "-x", "x-dev:confined", "-d"}, flags...)...)
	m.run(t, true, append([]string{"close"}, flags...)...)
	assertRestored(t, ns, "demo", before)
}
