package session

import (
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Switch returns svc pointed at the copy: the selector becomes the session
// label alone and, unless the sidecar took over a named targetPort, each
// intercepted port's targetPort becomes the sidecar's listener for it. The
// record is written in the same update, so the change and how to undo it
// land together.
func Switch(svc *corev1.Service, rec *Record) (*corev1.Service, error) {
	if maps.Equal(svc.Spec.Selector, rec.SessionSelector()) {
		return nil, fmt.Errorf("service %s is already switched to session %s", svc.Name, rec.ID)
	}
	out := svc.DeepCopy()
	ports := rec.Ports()
	for j := range ports {
		e := &ports[j]
		i := workload.PortIndex(out, e.Port)
		if i < 0 {
			return nil, fmt.Errorf("service %s no longer has port %s", svc.Name, e.Port)
		}
		e.TargetPort = nil
		if e.Plan.TargetPortName == "" {
			tp := out.Spec.Ports[i].TargetPort
			e.TargetPort = &tp
			out.Spec.Ports[i].TargetPort = intstr.FromInt32(e.Plan.SidecarPort)
		}
	}
	rec.setPorts(ports)
	rec.Selector = maps.Clone(svc.Spec.Selector)
	out.Spec.Selector = rec.SessionSelector()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationRecord] = rec.Encode()
	delete(out.Annotations, LegacyAnnotationRecord)
	return out, nil
}

// Restore returns current with our change undone and nothing else: a
// three-way restore. A field someone changed after the switch (a deploy, a
// GitOps sync) keeps their value; kept lists what was left for that reason.
func Restore(current *corev1.Service, rec *Record) (out *corev1.Service, kept []string) {
	out = current.DeepCopy()
	if maps.Equal(out.Spec.Selector, rec.SessionSelector()) {
		out.Spec.Selector = maps.Clone(rec.Selector)
	} else if !maps.Equal(out.Spec.Selector, rec.Selector) {
		kept = append(kept, fmt.Sprintf("selector %v (changed by someone else during the intercept)", out.Spec.Selector))
	}
	for _, e := range rec.Ports() {
		if e.TargetPort == nil {
			continue
		}
		if i := workload.PortIndex(out, e.Port); i >= 0 {
			tp := out.Spec.Ports[i].TargetPort
			switch {
			case tp.Type == intstr.Int && tp.IntVal == e.Plan.SidecarPort:
				out.Spec.Ports[i].TargetPort = *e.TargetPort
			case tp != *e.TargetPort:
				kept = append(kept, fmt.Sprintf("port %s targetPort %s (changed by someone else during the intercept)", e.Port, tp.String()))
			}
		}
	}
	delete(out.Annotations, AnnotationRecord)
	delete(out.Annotations, LegacyAnnotationRecord)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	return out, kept
}
