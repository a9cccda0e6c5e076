package session

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// httpRoutes is the Gateway API's HTTPRoute, read without a dependency on
// its types.
var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// Exposure says how callers outside the cluster reach svc: its type
// (NodePort, LoadBalancer), and the Ingresses and HTTPRoutes of its
// namespace that send to it. What cannot be read (no permission, no
// Gateway API) is left out; dyn may be nil.
func Exposure(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, svc *corev1.Service) []string {
	var out []string
	if t := svc.Spec.Type; t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer {
		out = append(out, "it is of type "+string(t))
	}
	if ings, err := cs.NetworkingV1().Ingresses(svc.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, ing := range ings.Items {
			if ingressSendsTo(ing.Spec.DefaultBackend, ing.Spec.Rules, svc.Name) {
				out = append(out, "ingress "+ing.Name+" sends to it")
			}
		}
	}
	if dyn != nil {
		if list, err := dyn.Resource(httpRoutes).Namespace(svc.Namespace).List(ctx, metav1.ListOptions{}); err == nil {
			for _, r := range list.Items {
				if httpRouteSendsTo(r, svc.Name) {
					out = append(out, "httproute "+r.GetName()+" sends to it")
				}
			}
		}
	}
	return out
}

func ingressSendsTo(def *networkingv1.IngressBackend, rules []networkingv1.IngressRule, name string) bool {
	if def != nil && def.Service != nil && def.Service.Name == name {
		return true
	}
	for _, r := range rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service != nil && p.Backend.Service.Name == name {
				return true
			}
		}
	}
	return false
}

func httpRouteSendsTo(r unstructured.Unstructured, name string) bool {
	rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
	for _, rule := range rules {
		m, ok := rule.(map[string]any)
		if !ok {
			continue
		}
		refs, _, _ := unstructured.NestedSlice(m, "backendRefs")
		for _, ref := range refs {
			rm, ok := ref.(map[string]any)
			if !ok {
				continue
			}
			kind, _, _ := unstructured.NestedString(rm, "kind")
			n, _, _ := unstructured.NestedString(rm, "name")
			if n == name && (kind == "" || kind == "Service") {
				return true
			}
		}
	}
	return false
}

// PublicHeaderWarning is what to say when the default header would mark
// requests of a Service reachable from outside the cluster: anyone there
// can send X-C6O-INTERCEPT: yes.
func PublicHeaderWarning(svc *corev1.Service, exposure []string) string {
	return fmt.Sprintf("service %s is reachable from outside the cluster (%s), and the default header X-C6O-INTERCEPT: yes is known to everyone: "+
		"anyone out there can send their requests to your machine. Use a value of your own, e.g. -x x-dev:$(openssl rand -hex 8)",
		svc.Name, strings.Join(exposure, ", "))
}
