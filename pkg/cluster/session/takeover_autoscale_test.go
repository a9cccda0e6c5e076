package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// hpa is a HorizontalPodAutoscaler of the Deployment target.
func hpa(name, target string, least, most int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    ptr.To(least), MaxReplicas: most,
		},
	}
}

func addHPA(t *testing.T, cs *fake.Clientset, h *autoscalingv2.HorizontalPodAutoscaler) {
	t.Helper()
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Create(context.Background(), h, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// hpaWrites lists what was written to HPAs since the last ClearActions.
func hpaWrites(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "horizontalpodautoscalers" && a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			out = append(out, a.GetVerb())
		}
	}
	return out
}

// An original with an HPA (minReplicas 2): the take-over scales it to zero
// and writes nothing to the HPA (at zero the HPA controller leaves its
// target alone), records the HPA's range, and close gives the count back
// and says the HPA scales again. The HPA is as it was, byte for byte.
func TestTakeOverLeavesTheHPAAsItIs(t *testing.T) {
	cs, rec := takenOverSession(t, 3)
	ctx := context.Background()
	addHPA(t, cs, hpa("shop", "shop", 2, 5))
	before, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Get(ctx, "shop", metav1.GetOptions{})
	cs.ClearActions()

	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 0 {
		t.Fatalf("the original has %d replicas after the take-over, want 0", got)
	}
	cp, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	to, err := takeOverOf(cp)
	if err != nil || to == nil || !slices.Equal(to.Autoscalers, []Autoscaler{{Name: "shop", MinReplicas: 2, MaxReplicas: 5}}) {
		t.Fatalf("the take-over record: %+v, %v; want the HPA shop (2 to 5) recorded", to, err)
	}

	var said steps
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Progress: &said}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 3 {
		t.Fatalf("the original has %d replicas after close, want 3 back", got)
	}
	if w := hpaWrites(cs); len(w) != 0 {
		t.Fatalf("the take-over and close wrote the HPA: %v", w)
	}
	after, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Get(ctx, "shop", metav1.GetOptions{})
	if after.ResourceVersion != before.ResourceVersion || !equalSpec(before, after) {
		t.Fatalf("the HPA changed: %+v, was %+v", after.Spec, before.Spec)
	}
	if !slices.ContainsFunc(said.steps, func(s string) bool {
		return strings.Contains(s, "HorizontalPodAutoscaler shop scales deployment/shop again (2 to 5 replicas)")
	}) {
		t.Fatalf("close did not say the HPA scales again: %v", said.steps)
	}
}

func equalSpec(a, b *autoscalingv2.HorizontalPodAutoscaler) bool {
	return ptr.Deref(a.Spec.MinReplicas, 1) == ptr.Deref(b.Spec.MinReplicas, 1) && a.Spec.MaxReplicas == b.Spec.MaxReplicas &&
		a.Spec.ScaleTargetRef == b.Spec.ScaleTargetRef
}

// steps records what a close says.
type steps struct {
	steps, warnings []string
}

func (s *steps) Step(what string) func(error) { s.steps = append(s.steps, what); return func(error) {} }
func (s *steps) Warn(msg string)              { s.warnings = append(s.warnings, msg) }

// An autoscaler that scales its target up from zero would undo the
// take-over at once: it is refused before anything is written. HPAs of
// other workloads do not matter.
func TestTakeOverAndAutoscalers(t *testing.T) {
	keda := hpa("keda-hpa-shop", "shop", 1, 4)
	keda.OwnerReferences = []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "shop", UID: "u"}}
	otherKind := hpa("shop-sts", "shop", 0, 4)
	otherKind.Spec.ScaleTargetRef.Kind = "StatefulSet"
	for _, tc := range []struct {
		name    string
		hpa     *autoscalingv2.HorizontalPodAutoscaler
		refused string
	}{
		{"minReplicas 0", hpa("shop", "shop", 0, 4), "its minReplicas is 0"},
		{"KEDA's", keda, "scaled by KEDA"},
		{"another Deployment's", hpa("other", "other", 0, 4), ""},
		{"a StatefulSet's of the same name", otherKind, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, rec := takenOverSession(t, 2)
			ctx := context.Background()
			addHPA(t, cs, tc.hpa)
			err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"})
			cp, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
			if tc.refused == "" {
				if err != nil || replicasOf(t, cs, "shop") != 0 {
					t.Fatalf("take-over = %v, original at %d; want it taken over", err, replicasOf(t, cs, "shop"))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("take-over = %v; want refused (%q)", err, tc.refused)
			}
			if got := replicasOf(t, cs, "shop"); got != 2 {
				t.Fatalf("the original has %d replicas, want its 2 untouched", got)
			}
			if _, ok := cp.Annotations[AnnotationTakeOver]; ok {
				t.Fatal("a refused take-over was recorded on the copy")
			}
		})
	}
}

// Without the right to list HPAs the take-over goes on, and says what it
// could not check.
func TestTakeOverWithoutTheHPARule(t *testing.T) {
	cs, rec := takenOverSession(t, 2)
	cs.PrependReactor("list", "horizontalpodautoscalers", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, "", errors.New("RBAC"))
	})
	var said steps
	if err := TakeOverOriginal(context.Background(), cs, rec, TakeOverOptions{Namespace: "ns", Progress: &said}); err != nil {
		t.Fatalf("take-over: %v", err)
	}
	if got := replicasOf(t, cs, "shop"); got != 0 {
		t.Fatalf("the original has %d replicas, want 0", got)
	}
	if !slices.ContainsFunc(said.warnings, func(w string) bool { return strings.Contains(w, "list on horizontalpodautoscalers.autoscaling") }) {
		t.Fatalf("the take-over did not say what it could not check: %v", said.warnings)
	}
}

// An HPA someone changed during the take-over keeps their change, and
// close says so.
func TestGiveBackSaysAChangedHPA(t *testing.T) {
	cs, rec := takenOverSession(t, 3)
	ctx := context.Background()
	addHPA(t, cs, hpa("shop", "shop", 2, 5))
	if err := TakeOverOriginal(ctx, cs, rec, TakeOverOptions{Namespace: "ns"}); err != nil {
		t.Fatal(err)
	}
	h, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Get(ctx, "shop", metav1.GetOptions{})
	h.Spec.MaxReplicas = 8
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Update(ctx, h, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var said steps
	if _, err := Close(ctx, cs, CloseOptions{Namespace: "ns", Service: "shop", Progress: &said}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !slices.ContainsFunc(said.warnings, func(w string) bool {
		return strings.Contains(w, "HorizontalPodAutoscaler shop was changed during the take-over (2 to 5 replicas, now 2 to 8): kept")
	}) {
		t.Fatalf("close did not say the HPA was changed: %v", said.warnings)
	}
	if h, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("ns").Get(ctx, "shop", metav1.GetOptions{}); h.Spec.MaxReplicas != 8 {
		t.Fatalf("the HPA's change was not kept: max %d", h.Spec.MaxReplicas)
	}
}
