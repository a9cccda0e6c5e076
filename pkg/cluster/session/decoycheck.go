package session

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// decoyDifference names the first field where the decoy in the cluster
// (got) differs from the one the transform makes (want), empty when none:
// its labels and annotations exactly (a label such as
// service.kubernetes.io/service-proxy-name, or an annotation such as
// service.kubernetes.io/topology-mode, changes who routes it or where),
// and its whole spec after the API server's defaults, but for the
// addresses the API server allocates (ClusterIP, ClusterIPs, IPFamilies),
// which must be a ClusterIP of the cluster.
func decoyDifference(want, got *corev1.Service) string {
	if !equality.Semantic.DeepEqual(emptyNil(want.Labels), emptyNil(got.Labels)) {
		return "metadata.labels"
	}
	if !equality.Semantic.DeepEqual(emptyNil(want.Annotations), emptyNil(got.Annotations)) {
		return "metadata.annotations"
	}
	if got.Spec.ClusterIP == "" || got.Spec.ClusterIP == corev1.ClusterIPNone {
		return "spec.clusterIP"
	}
	w, g := want.Spec.DeepCopy(), got.Spec.DeepCopy()
	defaultServiceSpec(w)
	defaultServiceSpec(g)
	// What the API server allocates is the cluster's, not the transform's.
	w.ClusterIP, w.ClusterIPs, w.IPFamilies = g.ClusterIP, g.ClusterIPs, g.IPFamilies
	if f := fieldDifference(reflect.ValueOf(*w), reflect.ValueOf(*g)); f != "" {
		return "spec." + f
	}
	return ""
}

// defaultServiceSpec fills in what the API server defaults in a ClusterIP
// Service's spec where it is empty; fields already set keep their values.
func defaultServiceSpec(s *corev1.ServiceSpec) {
	if s.Type == "" {
		s.Type = corev1.ServiceTypeClusterIP
	}
	if s.SessionAffinity == "" {
		s.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.InternalTrafficPolicy == nil {
		s.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if s.IPFamilyPolicy == nil {
		s.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
}
