package session

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// An intercept this machine recorded: ended once its Service is not
// intercepted, unknown (with the reason) when the Service cannot be read.
func TestRecorded(t *testing.T) {
	plain := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	c := Cluster{Client: fake.NewClientset(plain)}
	got := c.Recorded(context.Background(), "shop", "web")
	if got.Status != StateEnded || !strings.Contains(got.Problem, "not intercepted any more") || got.Routes == nil {
		t.Errorf("a Service no longer intercepted: %+v", got)
	}
	got = c.Recorded(context.Background(), "shop", "gone")
	if got.Status != StateUnknown || !strings.Contains(got.Problem, "not found") || strings.Contains(got.Problem, "\n") {
		t.Errorf("a Service that cannot be read: %+v", got)
	}
}
