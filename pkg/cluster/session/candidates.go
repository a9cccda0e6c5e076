package session

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Candidate is a Service and whether an intercept can take it, as the
// start's preflight would judge it, without changing anything.
type Candidate struct {
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	// Workload is what would be copied (kind/NAME: deployment/web).
	Workload string `json:"workload,omitempty"`
	// Ports are the ports an intercept with a header can take; AllOnly
	// those only --all can (no readable HTTP headers).
	Ports   []string `json:"ports"`
	AllOnly []string `json:"allOnly,omitempty"`
	// Interceptable says some port can be intercepted; Reason says why
	// none can, or what to know.
	Interceptable bool   `json:"interceptable"`
	Reason        string `json:"reason,omitempty"`
}

// Candidates judges every Service in ns (every namespace if empty).
func (c Cluster) Candidates(ctx context.Context, ns string) ([]Candidate, error) {
	svcs, err := c.Client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, describeAPIError(err, "listing services")
	}
	out := make([]Candidate, 0, len(svcs.Items))
	for i := range svcs.Items {
		out = append(out, c.candidate(ctx, &svcs.Items[i]))
	}
	return out, nil
}

func (c Cluster) candidate(ctx context.Context, svc *corev1.Service) Candidate {
	cand := Candidate{Namespace: svc.Namespace, Service: svc.Name, Ports: []string{}}
	if _, ok := RecordAnnotation(svc.Annotations); ok {
		cand.Interceptable = true
		cand.Reason = "intercepted now: another intercept joins it with a header value of its own"
		return cand
	}
	if err := workload.CheckService(svc); err != nil {
		cand.Reason = firstLine(err.Error())
		return cand
	}
	target, err := workload.Resolve(ctx, c.Client, c.Dynamic, svc, LabelSession)
	if err != nil {
		cand.Reason = firstLine(err.Error())
		return cand
	}
	cand.Workload = target.Source.Ref()
	pvcs, err := claims(ctx, c.Client, target.Source)
	if err != nil {
		cand.Reason = firstLine(err.Error())
		return cand
	}
	var reasons []string
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if _, err := workload.Preflight(svc, []*corev1.ServicePort{p}, target.Source, pvcs, false); err == nil {
			cand.Ports = append(cand.Ports, portKey(p))
			continue
		} else if _, errAll := workload.Preflight(svc, []*corev1.ServicePort{p}, target.Source, pvcs, true); errAll == nil {
			cand.AllOnly = append(cand.AllOnly, portKey(p))
		} else {
			reasons = append(reasons, fmt.Sprintf("port %s: %s", portKey(p), firstLine(err.Error())))
		}
	}
	cand.Interceptable = len(cand.Ports)+len(cand.AllOnly) > 0
	switch {
	case !cand.Interceptable:
		cand.Reason = strings.Join(reasons, "; ")
	case len(cand.Ports) == 0:
		cand.Reason = "no port carries readable HTTP headers: only --all (every connection) can take " + strings.Join(cand.AllOnly, ", ")
	}
	return cand
}
