package session

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// flakyTunnel answers probes as its script says: "" for a sidecar's
// answer, anything else for a failure.
type flakyTunnel struct {
	script []string
	probes int
}

func (f *flakyTunnel) WaitRegistered(context.Context, int) error { return nil }

func (f *flakyTunnel) Probe(string) (string, error) {
	f.probes++
	if len(f.script) == 0 {
		return "copy-1", nil
	}
	next := f.script[0]
	f.script = f.script[1:]
	if next != "" {
		return "", errors.New(next)
	}
	return "copy-1", nil
}

// An intercept is active only after ActiveProbes answers in a row: a
// probe the original answers in between starts the count again; a
// Service that never reaches a sidecar ends the wait with the last
// reason.
func TestProbeActiveWantsAStreak(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.9",
		Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	synctest.Test(t, func(t *testing.T) {
		script := []string{"", "", "", "", "", "", "", "", "", "answered by the original"}
		tun := &flakyTunnel{script: script}
		pod, err := probeActive(context.Background(), tun, svc, "http", time.Minute)
		if err != nil || pod != "copy-1" || tun.probes != len(script)+ActiveProbes {
			t.Errorf("probe: %q, %v after %d probes; want %d, the failure starting the count again", pod, err, tun.probes, len(script)+ActiveProbes)
		}
		never := &flakyTunnel{script: make([]string, 1000)}
		for i := range never.script {
			never.script[i] = "connection refused"
		}
		_, err = probeActive(context.Background(), never, svc, "http", 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "http://10.96.0.9:80/") || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("a Service that never reaches a sidecar: %v", err)
		}
	})
}
