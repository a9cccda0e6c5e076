//go:build !e2ehooks

package factory

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// The release build ignores the crash tests' fault hook: with
// KUBECTL_INTERCEPT_FAULT_AFTER=1 in the environment, a successful
// mutating call leaves the process running (the hook would exit it with
// code 3, and this test with it).
func TestReleaseBuildHasNoFaultHook(t *testing.T) {
	t.Setenv("KUBECTL_INTERCEPT_FAULT_AFTER", "1")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns"}}`))
	}))
	defer api.Close()
	kubeconfig := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+api.URL+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	f := New(flags)
	if err := f.Complete(); err != nil {
		t.Fatal(err)
	}
	if f.RESTConfig.WrapTransport != nil {
		t.Fatal("the REST config's transport is wrapped: the fault hook is in the release build")
	}
	for i := range 2 {
		if _, err := f.Client.CoreV1().ConfigMaps("ns").Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("mutating call %d: %v", i+1, err)
		}
	}
}
