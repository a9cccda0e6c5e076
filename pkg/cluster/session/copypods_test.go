package session

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// The copy's pods are those whose owner chain leads to the verified copy:
// a look-alike Deployment's pod with the session's label, a bare pod with
// it, a pod whose ReplicaSet names the copy by name but not by UID, and a
// pod naming the copy's ReplicaSet under another UID are none of them.
func TestCopyPodsByOwnerChain(t *testing.T) {
	rec := &Record{Version: 1, ID: "abc123", Service: "shop", Workload: "shop", Copy: "shop-intercept-abc123", Port: "http",
		Selector: map[string]string{"app": "shop"}}
	labels := map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID}
	copyD := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: rec.Copy, UID: "copy-uid", Labels: labels,
		Annotations: map[string]string{AnnotationRecord: rec.Encode()}}}
	rs := func(name string, uid types.UID, owner string, ownerUID types.UID) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: uid, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner, UID: ownerUID, Controller: ptr.To(true)}}}}
	}
	pod := func(name, rsName string, rsUID types.UID) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{LabelSession: rec.ID}}}
		if rsName != "" {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rsName, UID: rsUID, Controller: ptr.To(true)}}
		}
		return p
	}
	cs := fake.NewClientset(copyD,
		rs("shop-intercept-abc123-5d8", "rs-uid", rec.Copy, "copy-uid"),
		rs("lookalike-6f7", "evil-rs-uid", "lookalike", "evil-uid"),
		rs("byname-7a1", "byname-rs-uid", rec.Copy, "another-uid"),
		pod("copy-a", "shop-intercept-abc123-5d8", "rs-uid"),
		pod("copy-b", "shop-intercept-abc123-5d8", "rs-uid"),
		pod("lookalike-x", "lookalike-6f7", "evil-rs-uid"),
		pod("bare", "", ""),
		pod("byname", "byname-7a1", "byname-rs-uid"),
		pod("wrong-uid", "shop-intercept-abc123-5d8", "not-the-rs-uid"),
	)
	pods, err := CopyPods(context.Background(), cs, "ns", rec)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	if len(names) != 2 || names[0] != "copy-a" || names[1] != "copy-b" {
		t.Fatalf("copy pods %v, want [copy-a copy-b]", names)
	}

	// A record naming a Deployment that is not its copy lists nothing.
	forged := *rec
	forged.Copy = "lookalike"
	cs2 := fake.NewClientset(&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lookalike", UID: "evil-uid"}},
		pod("lookalike-x", "lookalike-6f7", "evil-rs-uid"))
	if pods, err := CopyPods(context.Background(), cs2, "ns", &forged); err == nil || len(pods) != 0 {
		t.Fatalf("a forged record's copy: %d pods, %v", len(pods), err)
	}
}
