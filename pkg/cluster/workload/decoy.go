package workload

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The decoy: instead of a copy of the workload, a proxy-only Deployment
// (the sidecar alone) takes the Service, and a decoy ClusterIP Service
// with the original's selector carries what is not the developer's to the
// original pods, which keep serving with their data and identities.

// LabelDecoyOf marks a decoy Service with the name of the Service it
// stands behind.
const LabelDecoyOf = "intercept.kubectl.dev/decoy-of"

// DecoySuffix is what every decoy Service's name ends in before the
// session ID: <service>-decoy-<id>.
const DecoySuffix = "-decoy-"

// DecoyIPPlaceholder stands for the decoy's ClusterIP in a dry run, before
// the API server has allocated one.
const DecoyIPPlaceholder = "DECOY-CLUSTER-IP"

// DecoyInput is everything the decoy Service and the proxy Deployment are
// made from.
type DecoyInput struct {
	Source  *Source
	Service *corev1.Service
	// Ports are the Service ports to intercept: every port of the Service
	// (its selector moves to the proxy pods, which serve nothing else).
	Ports []*corev1.ServicePort
	// Replicas of the proxy Deployment.
	Replicas int32
	// Name of the proxy Deployment, DecoyName of the decoy Service.
	Name, DecoyName string
	// DecoyIP is the decoy Service's ClusterIP, the proxies' upstream;
	// empty before it exists (a dry run): DecoyIPPlaceholder stands in.
	DecoyIP string
	// SessionLabel, SessionID label the proxy's pods; alone they become
	// the Service's selector.
	SessionLabel, SessionID string
	// Labels go on both objects' own metadata (ours only).
	Labels map[string]string
	// Annotations go on the proxy Deployment's own metadata.
	Annotations map[string]string
	ProxyImage  string
}

// DecoyName names the decoy Service of a session: <service>-decoy-<id>,
// a valid Service name.
func DecoyName(service, id string) string {
	const maxLen = 63
	suffix := DecoySuffix + id
	if len(service)+len(suffix) > maxLen {
		service = strings.TrimRight(service[:maxLen-len(suffix)], "-")
	}
	return service + suffix
}

// DecoyService returns the decoy: a ClusterIP Service with the original
// selector whose ports are the intercepted Service's, each to the original
// target port. It never modifies its input.
func DecoyService(in DecoyInput) (*corev1.Service, error) {
	if len(in.Service.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s has no selector for a decoy to keep", in.Service.Name)
	}
	if len(in.Ports) == 0 {
		return nil, fmt.Errorf("service %s has no port to intercept", in.Service.Name)
	}
	labels := map[string]string{LabelDecoyOf: in.Service.Name}
	for k, v := range in.Labels {
		labels[k] = v
	}
	selector := map[string]string{}
	for k, v := range in.Service.Spec.Selector {
		selector[k] = v
	}
	var ports []corev1.ServicePort
	for _, sp := range in.Ports {
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 || target.Type == intstr.String && target.StrVal == "" {
			target = intstr.FromInt32(sp.Port)
		}
		ports = append(ports, corev1.ServicePort{
			Name: sp.Name, Protocol: corev1.ProtocolTCP, AppProtocol: sp.AppProtocol,
			Port: sp.Port, TargetPort: target,
		})
	}
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      in.DecoyName,
			Namespace: in.Service.Namespace,
			Labels:    labels,
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports:    ports,
		},
	}, nil
}

// ProxyDeployment returns the proxy-only Deployment of a decoy intercept,
// and how each port is laid out: pods with the sidecar alone, whose
// upstreams are the decoy's ClusterIP and ports. The plans are the copy's
// (the app's ports the Service targets, the sidecar's clear of them), so a
// record reads the same in both modes. It never modifies its input.
func ProxyDeployment(in DecoyInput) (*appsv1.Deployment, []PortPlan, error) {
	plans, err := planPorts(in.Source.Template.Spec.DeepCopy(), in.Ports)
	if err != nil {
		return nil, nil, fmt.Errorf("service %s %w", in.Service.Name, err)
	}
	ip := in.DecoyIP
	if ip == "" {
		ip = DecoyIPPlaceholder
	}
	upstream := func(i int, _ PortPlan) string {
		return net.JoinHostPort(ip, strconv.Itoa(int(in.Ports[i].Port)))
	}
	spec := corev1.PodSpec{
		Containers: []corev1.Container{sidecar(in.ProxyImage, plans, in.Service, in.Ports, upstream)},
		// The sidecar needs nothing of the API; an empty directory over
		// the token's path, as in a copy, besides mounting none.
		AutomountServiceAccountToken: ptr.To(false),
		EnableServiceLinks:           ptr.To(false),
		ImagePullSecrets:             append([]corev1.LocalObjectReference(nil), in.Source.Template.Spec.ImagePullSecrets...),
		ReadinessGates:               []corev1.PodReadinessGate{{ConditionType: RoutesGate}},
		Volumes: []corev1.Volume{{Name: noTokenVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	if len(spec.ImagePullSecrets) == 0 {
		spec.ImagePullSecrets = nil
	}
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        in.Name,
			Namespace:   in.Source.Namespace,
			Labels:      in.Labels,
			Annotations: in.Annotations,
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(in.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{in.SessionLabel: in.SessionID}},
			// The proxy's pods carry the session label alone: none of the
			// original's, or the decoy (the original's selector) would
			// send requests back to them, and the original's HPA and PDB
			// would count them.
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{in.SessionLabel: in.SessionID}},
				Spec:       spec,
			},
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			RevisionHistoryLimit: ptr.To(int32(1)),
		},
	}
	return d, plans, nil
}

// DecoyCovers reports whether intercepting ports leaves no port of the
// Service behind: the Service's selector moves to the proxy's pods, which
// listen on the intercepted ports only.
func DecoyCovers(svc *corev1.Service, ports []*corev1.ServicePort) bool {
	for i := range svc.Spec.Ports {
		found := false
		for _, p := range ports {
			if PortKey(p) == PortKey(&svc.Spec.Ports[i]) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
