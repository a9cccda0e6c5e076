package session

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// A Service reached from outside (its type, an Ingress or an HTTPRoute
// that sends to it) is named with how; one reached only inside is not.
func TestExposure(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns"}}
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{
		IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
			Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "shop"}}}}}}}}}}
	hr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "shop-route", "namespace": "ns"},
		"spec":     map[string]any{"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": "shop", "port": int64(80)}}}}},
	}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{httpRoutes: "HTTPRouteList"}, hr)
	ctx := context.Background()

	if got := Exposure(ctx, fake.NewClientset(), nil, svc); len(got) != 0 {
		t.Errorf("an internal Service: %v", got)
	}
	got := strings.Join(Exposure(ctx, fake.NewClientset(ing), dyn, svc), "; ")
	if !strings.Contains(got, "ingress web") || !strings.Contains(got, "httproute shop-route") {
		t.Errorf("got %q", got)
	}
	lb := svc.DeepCopy()
	lb.Spec.Type = corev1.ServiceTypeLoadBalancer
	if got := Exposure(ctx, fake.NewClientset(), nil, lb); len(got) != 1 || !strings.Contains(got[0], "LoadBalancer") {
		t.Errorf("a LoadBalancer: %v", got)
	}
	if w := PublicHeaderWarning(lb, []string{"it is of type LoadBalancer"}); !strings.Contains(w, "-x x-dev:") {
		t.Errorf("warning %q does not say what to do", w)
	}
}
