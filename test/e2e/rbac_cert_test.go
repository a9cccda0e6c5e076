//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

const certUser = "e2e-cert-developer"

// clientCertificate has the cluster's CA sign a client certificate for user
// in group (the certificate's organization) through a CertificateSigningRequest (kube-controller-manager signs with
// the CA, see hack/cluster.sh) and returns the certificate and its key, PEM.
func clientCertificate(t *testing.T, user, group string) (certPEM, keyPEM []byte) {
	t.Helper()
	ctx := t.Context()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	request, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: user, Organization: []string{group}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csrs := cs.CertificatesV1().CertificateSigningRequests()
	csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: user + "-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: request}),
			SignerName:        certificatesv1.KubeAPIServerClientSignerName,
			Usages:            []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth},
			ExpirationSeconds: ptr.To(int32(3600)),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a CertificateSigningRequest for %s: %v", user, err)
	}
	t.Cleanup(func() {
		_ = csrs.Delete(context.Background(), csr.Name, metav1.DeleteOptions{})
	})
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type:    certificatesv1.CertificateApproved,
		Status:  corev1.ConditionTrue,
		Reason:  "E2EApproved",
		Message: "approved by the e2e tests",
	})
	if _, err := csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("approving CertificateSigningRequest %s: %v", csr.Name, err)
	}
	waitFor(t, 60*time.Second, "kube-controller-manager to sign CertificateSigningRequest "+csr.Name, func() bool {
		got, err := csrs.Get(ctx, csr.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range got.Status.Conditions {
			if c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
				t.Fatalf("CertificateSigningRequest %s: %s: %s", csr.Name, c.Reason, c.Message)
			}
		}
		certPEM = got.Status.Certificate
		return len(certPEM) > 0
	})
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// certKubeconfig writes a kubeconfig for user, a member of group, into a
// temporary directory:
// the admin kubeconfig's server and CA, and a client certificate signed by
// the cluster's CA. It holds no other credentials and no impersonation.
func certKubeconfig(t *testing.T, user, group string) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	adminContext, ok := admin.Contexts[admin.CurrentContext]
	if !ok {
		t.Fatalf("%s: no current context", kubeconfig)
	}
	adminCluster, ok := admin.Clusters[adminContext.Cluster]
	if !ok {
		t.Fatalf("%s: no cluster %q", kubeconfig, adminContext.Cluster)
	}
	ca := adminCluster.CertificateAuthorityData
	if len(ca) == 0 && adminCluster.CertificateAuthority != "" {
		if ca, err = os.ReadFile(adminCluster.CertificateAuthority); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := clientCertificate(t, user, group)

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: adminCluster.Server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[user] = &clientcmdapi.Context{Cluster: "local", AuthInfo: user}
	cfg.CurrentContext = user
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// The whole flow works for a user who authenticates with a client
// certificate (not impersonation) and is a member of the group `kubectl
// intercept rbac` binds the Role to, with the admission policy in force,
// and that user can do nothing in another namespace.
func TestLeastPrivilegeRoleAsClientCertificateUser(t *testing.T) {
	ns := newNamespace(t)
	other := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	group := rbacGroup(ns)
	installRBAC(t, ns, group)
	config := certKubeconfig(t, certUser, group)
	// As on a developer's laptop, no admin credentials are within reach:
	// KUBECONFIG names the certificate user's kubeconfig too.
	env := []string{"KUBECONFIG=" + config}
	args := func(namespace string, rest ...string) []string {
		return append([]string{"--kubeconfig", config, "-n", namespace}, rest...)
	}
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := pluginCmd(t, args...)
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	restConfig, err := clientcmd.BuildConfigFromFlags("", config)
	if err != nil {
		t.Fatal(err)
	}
	asUser := kubernetes.NewForConfigOrDie(restConfig)
	if _, err := asUser.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Fatalf("get deployments in %s as %s, which the Role allows: %v", ns, certUser, err)
	}
	// Bound as docs/rbac.yaml binds, the user is confined by the policy:
	// no Deployment that is not a copy.
	plain := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "plain"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "plain"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: demoImage}}}}}}
	if _, err := asUser.AppsV1().Deployments(ns).Create(t.Context(), plain, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !refusedByPolicy(err) {
		t.Fatalf("a Deployment that is not a copy, created as %s: want the policy's refusal, got %v", certUser, err)
	}
	_, err = asUser.AppsV1().Deployments(other).List(t.Context(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `"`+certUser+`"`) {
		t.Fatalf("get deployments in %s as %s: want forbidden for that user, got %v", other, certUser, err)
	}

	port := laptop(t, laptopPod)
	before := takeSnapshot(t, ns, "demo")
	p := startPluginEnv(t, env, args(ns, "svc/demo", "-l", strconv.Itoa(port))...)
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if out := p.output(); strings.Contains(out, "admission policy") {
		t.Fatalf("a confined member was warned about the admission policy:\n%s", out)
	}
	// Requests through the ClusterIP, from the client pod.
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q", got)
	}
	if got := routedTo(t, svc, nil); got == laptopPod || !strings.HasPrefix(got, "demo-") {
		t.Fatalf("request without the header reached %q, want a demo pod", got)
	}
	if out, err := run(args(ns, "list")...); err != nil || !strings.Contains(out, "active") {
		t.Fatalf("list as %s: %v\n%s", certUser, err, out)
	}
	if out, err := run(args(other, "list")...); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("list in %s as %s: want forbidden, got err %v:\n%s", other, certUser, err, out)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept as %s: %v\n%s", certUser, err, p.output())
	}
	assertRestored(t, ns, "demo", before)
}
