package workload

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SelectPort picks the Service port to intercept from -r (a name or a
// number; empty when the Service has one port).
func SelectPort(svc *corev1.Service, want string) (*corev1.ServicePort, error) {
	ports := svc.Spec.Ports
	if want == "" {
		if len(ports) == 1 {
			return &ports[0], nil
		}
		return nil, fmt.Errorf("service %s has %d ports (%s): say which one to intercept with -r", svc.Name, len(ports), describePorts(ports))
	}
	if i := PortIndex(svc, want); i >= 0 {
		return &ports[i], nil
	}
	return nil, fmt.Errorf("service %s has no port %q (it has %s)", svc.Name, want, describePorts(ports))
}

// PortIndex finds a Service port by name or number: the one lookup every
// flag and record that names a port goes through. -1 when there is none.
func PortIndex(svc *corev1.Service, key string) int {
	for i, p := range svc.Spec.Ports {
		if key != "" && (p.Name == key || strconv.Itoa(int(p.Port)) == key) {
			return i
		}
	}
	return -1
}

func describePorts(ports []corev1.ServicePort) string {
	var s []string
	for _, p := range ports {
		d := strconv.Itoa(int(p.Port))
		if p.Name != "" {
			d = p.Name + "=" + d
		}
		s = append(s, d)
	}
	return strings.Join(s, ", ")
}

// Preflight checks, before anything changes, whether a copy of src can
// serve the Service's port. It returns an error for what cannot work and
// warnings for what works with a cost the user should know about. pvcs
// holds the claims src's volumes refer to, by name. allTraffic is -a: every
// connection goes to the developer, so the port may speak any protocol over
// TCP.
func Preflight(svc *corev1.Service, ports []*corev1.ServicePort, src *Source, pvcs map[string]*corev1.PersistentVolumeClaim, allTraffic bool) (warnings []string, err error) {
	refuse := portRefusals(svc, ports, allTraffic)
	intercepted := map[string]bool{}
	for _, port := range ports {
		intercepted[PortKey(port)] = true
	}
	spec := &src.Template.Spec
	ref := src.Ref()
	if spec.HostNetwork {
		refuse = append(refuse, "its pods use hostNetwork: a copy would fight the original for the node's ports")
	}
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				refuse = append(refuse, fmt.Sprintf("container %s binds hostPort %d: a copy on the same node cannot start", c.Name, p.HostPort))
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pvc := pvcs[v.PersistentVolumeClaim.ClaimName]
		if pvc == nil || readWriteOnce(pvc) {
			refuse = append(refuse, fmt.Sprintf("volume %s mounts claim %s, which is ReadWriteOnce (or unknown): the copy's pods could not attach it, or would share the original's data",
				v.Name, v.PersistentVolumeClaim.ClaimName))
		}
	}
	if src.RollingOut {
		refuse = append(refuse, fmt.Sprintf("%s is rolling out: wait for `kubectl rollout status %s`, then try again", ref, ref))
	}
	if len(refuse) > 0 {
		return nil, fmt.Errorf("cannot intercept service %s (%s):\n  - %s", svc.Name, ref, strings.Join(refuse, "\n  - "))
	}

	if n := len(spec.InitContainers); n > 0 {
		warnings = append(warnings, fmt.Sprintf("%s has %d init container(s): they run again in the copy's pods (migrations, registrations)", ref, n))
	}
	switch {
	case src.Kind == KindPod:
		warnings = append(warnings, fmt.Sprintf("%s is a bare pod: while intercepted, a copy with its spec runs beside it (a Deployment of kubectl-intercept, one replica), so scheduled jobs and queue consumers run twice", ref))
	case src.Singleton:
		warnings = append(warnings, fmt.Sprintf("%s looks like a singleton (1 replica, Recreate): while intercepted, the copy runs beside it, so scheduled jobs and queue consumers run twice", ref))
	}
	if src.Kind == KindStatefulSet {
		w := fmt.Sprintf("%s is copied as a Deployment: the copy's pods have no stable network identity (no ordinal hostnames, no per-pod DNS names under its headless Service)", ref)
		if names := claimTemplateNames(src); len(names) > 0 {
			w += fmt.Sprintf(", and its volumeClaimTemplates (%s) become empty directories (%s): the copy starts with none of the original's data and what it writes there is lost at close",
				strings.Join(names, ", "), WarnEmptyClaims)
		}
		warnings = append(warnings, w)
	}
	if keys := SelfAntiAffinityKeys(spec, src.Template.Labels); len(keys) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s requires its pods to avoid each other (pod anti-affinity on %s): the copy's pods go without the label(s) %s so the original's pods do not repel them, and policies that select those labels do not apply to the copy",
			ref, strings.Join(keys, ", "), strings.Join(keys, ", ")))
	}
	var others []string
	for _, p := range svc.Spec.Ports {
		if intercepted[PortKey(&p)] {
			continue
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			warnings = append(warnings, fmt.Sprintf("port %s (%s) moves to the copy's pods unproxied", portName(&p), p.Protocol))
		}
		others = append(others, portName(&p))
	}
	if len(others) > 0 {
		warnings = append(warnings, fmt.Sprintf("service %s has %d ports: all of them move to the copy's pods; %s go to the copy's app unrouted (intercept them too with -p LOCAL:PORT)",
			svc.Name, len(svc.Spec.Ports), strings.Join(others, ", ")))
	}
	if who := gitOpsOwner(svc.Labels, svc.Annotations); who != "" {
		warnings = append(warnings, fmt.Sprintf("service %s is managed by %s, which may set its selector back during the intercept (the intercept then stops receiving traffic; close still works)", svc.Name, who))
	}
	return warnings, nil
}

// portRefusals says why the sidecar cannot serve the ports: a protocol
// other than TCP, or (without -a) one that carries no headers to route by.
func portRefusals(svc *corev1.Service, ports []*corev1.ServicePort, allTraffic bool) []string {
	var refuse []string
	for _, port := range ports {
		if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
			refuse = append(refuse, fmt.Sprintf("port %s speaks %s: the sidecar proxies TCP only", portName(port), port.Protocol))
		} else if !allTraffic {
			if err := HeaderRoutable(svc, port); err != nil {
				refuse = append(refuse, err.Error())
			}
		}
	}
	return refuse
}

// PreflightDecoy checks, before anything changes, whether a decoy can
// serve the Service's ports. The original runs on as it is, so nothing of
// its pods is refused or warned about (no second instance, no empty
// claims); what is checked is what the sidecar can proxy, and who else
// writes the Service.
func PreflightDecoy(svc *corev1.Service, ports []*corev1.ServicePort, src *Source, allTraffic bool) (warnings []string, err error) {
	refuse := portRefusals(svc, ports, allTraffic)
	if !DecoyCovers(svc, ports) {
		refuse = append(refuse, fmt.Sprintf("a decoy moves every port of the Service (%s) to the proxy's pods, which serve only the intercepted ones: intercept each (-p LOCAL:REMOTE for every port), or copy the workload (--decoy=false)",
			describePorts(svc.Spec.Ports)))
	}
	if len(refuse) > 0 {
		return nil, fmt.Errorf("cannot intercept service %s (%s) by decoy:\n  - %s", svc.Name, src.Ref(), strings.Join(refuse, "\n  - "))
	}
	if who := gitOpsOwner(svc.Labels, svc.Annotations); who != "" {
		warnings = append(warnings, fmt.Sprintf("service %s is managed by %s, which may set its selector back during the intercept (the intercept then stops receiving traffic; close still works)", svc.Name, who))
	}
	return warnings, nil
}

// WarnEmptyClaims names the warning given when a StatefulSet's claim
// templates become empty directories in the copy.
const WarnEmptyClaims = "EmptyClaimTemplates"

func portName(p *corev1.ServicePort) string {
	if p.Name != "" {
		return fmt.Sprintf("%s (%d)", p.Name, p.Port)
	}
	return strconv.Itoa(int(p.Port))
}

func readWriteOnce(pvc *corev1.PersistentVolumeClaim) bool {
	for _, m := range pvc.Spec.AccessModes {
		if m == corev1.ReadWriteOnce || m == corev1.ReadWriteOncePod {
			return true
		}
	}
	return false
}

// gitOpsOwner names the tool that manages an object, from the labels and
// annotations Argo CD, Flux and Helm leave on what they apply.
func gitOpsOwner(labels, annotations map[string]string) string {
	var who []string
	for k := range annotations {
		if strings.HasPrefix(k, "argocd.argoproj.io/") {
			who = append(who, "Argo CD")
			break
		}
	}
	if _, ok := labels["argocd.argoproj.io/instance"]; ok {
		who = append(who, "Argo CD")
	}
	for k := range labels {
		if strings.HasPrefix(k, "kustomize.toolkit.fluxcd.io/") || strings.HasPrefix(k, "helm.toolkit.fluxcd.io/") {
			who = append(who, "Flux")
			break
		}
	}
	if labels["app.kubernetes.io/managed-by"] == "Helm" || annotations["meta.helm.sh/release-name"] != "" {
		who = append(who, "Helm")
	}
	sort.Strings(who)
	return strings.Join(dedupe(who), " and ")
}

func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
}
