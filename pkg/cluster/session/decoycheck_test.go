package session

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// A member starts a decoy session whose decoy keeps the original's
// selector and ports but changes which of the original's pods answer
// (internalTrafficPolicy Local: those on the caller's node; sessionAffinity
// ClientIP: one per caller), or who routes it (a service-proxy-name label
// kube-proxy skips): the policy lets a member create it. A developer who
// joins must not take it for the transform's.
func TestJoinRefusesADecoyThatDiffersInAnyField(t *testing.T) {
	for name, edit := range map[string]func(*corev1.Service){
		"internalTrafficPolicy Local": func(s *corev1.Service) {
			s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
		},
		"sessionAffinity ClientIP":   func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP },
		"trafficDistribution":        func(s *corev1.Service) { s.Spec.TrafficDistribution = ptr.To("PreferClose") },
		"publishNotReadyAddresses":   func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true },
		"a service-proxy-name label": func(s *corev1.Service) { s.Labels["service.kubernetes.io/service-proxy-name"] = "mine" },
		"a topology-mode annotation": func(s *corev1.Service) {
			s.Annotations = map[string]string{"service.kubernetes.io/topology-mode": "Auto"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cs, _, _ := decoySession(t, edit)
			st, err := joinShop(t, cs, testProxyImage)
			if err == nil {
				st.Settle()
				t.Fatalf("join of a decoy session whose decoy has %s: accepted", name)
			}
			if !strings.Contains(err.Error(), "decoy") {
				t.Fatalf("join of a decoy session whose decoy has %s: %v; want the decoy named", name, err)
			}
			if w := writes(cs); len(w) != 0 {
				t.Fatalf("a refused join wrote %v", w)
			}
		})
	}
}

// The decoy as the API server stores it (its defaults filled in) is the
// transform's.
func TestDecoyWithTheServersDefaultsChecksOut(t *testing.T) {
	cs, rec, _ := decoySession(t, func(s *corev1.Service) {
		defaultServiceSpec(&s.Spec)
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	})
	st, err := joinShop(t, cs, testProxyImage)
	if err != nil || st.Record.ID != rec.ID {
		t.Fatalf("join of a decoy with the API server's defaults: %v", err)
	}
	st.Settle()
}
