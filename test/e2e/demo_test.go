//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// The demo app answers through its Service's ClusterIP from a pod, and
// kube-proxy spreads new connections over both replicas.
func TestDemoThroughClusterIP(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	seen := map[string]bool{}
	waitFor(t, 30*time.Second, "answers from both demo pods", func() bool {
		e, code, err := get(serviceURL(svc), nil)
		if err == nil && code == 200 {
			seen[e.Pod] = true
		}
		return len(seen) == 2
	})
}
