package session

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

const testProxyImage = "registry.example/intercept-proxy:1.0.0"

// original is the workload behind the Service "shop".
func original() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", UID: "shop-uid"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "shop",
					Containers: []corev1.Container{{
						Name: "app", Image: "registry.example/shop:3",
						Env:   []corev1.EnvVar{{Name: "DB", Value: "db.internal"}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					}},
				},
			},
		},
		Status: appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1},
	}
}

// genuineSession is a session as start makes it: the copy is the
// transform of the original, the Service switched to it. edit changes the
// copy before it is stored (nil: none).
func genuineSession(t *testing.T, edit func(*appsv1.Deployment)) (*fake.Clientset, *Record) {
	t.Helper()
	orig := original()
	svc := service(intstr.FromInt32(8080))
	svc.Spec.ClusterIP = "10.0.0.7"
	rec := &Record{Version: RecordVersion, ID: "abc123", Service: "shop", Workload: "shop", Kind: workload.KindDeployment,
		Created: time.Now().UTC().Truncate(time.Second)}
	rec.Copy = copyName("shop", rec.ID)
	cp, plans, err := workload.Copy(workload.CopyInput{
		Source: workload.FromDeployment(orig), Service: svc, Ports: []*corev1.ServicePort{&svc.Spec.Ports[0]}, Replicas: 1,
		Name: rec.Copy, SessionLabel: LabelSession, SessionID: rec.ID,
		Labels:     map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		ProxyImage: testProxyImage,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.setPorts([]PortEntry{{Port: plans[0].Port, Plan: plans[0]}})
	switched, err := Switch(svc, rec)
	if err != nil {
		t.Fatal(err)
	}
	cp.Annotations = map[string]string{AnnotationRecord: rec.Encode()}
	cp.UID = "copy-uid"
	if edit != nil {
		edit(cp)
	}
	cs := fake.NewClientset(orig, switched, cp)
	admitAs(cs, nil)
	return cs, rec
}

// admitAs makes cs answer a dry-run create of a Deployment as an API server
// whose mutating admission applies mutate (nil: none) would, storing
// nothing.
func admitAs(cs *fake.Clientset, mutate func(*appsv1.Deployment)) {
	cs.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c := a.(k8stesting.CreateActionImpl)
		if len(c.CreateOptions.DryRun) == 0 {
			return false, nil, nil
		}
		d := c.Object.(*appsv1.Deployment).DeepCopy()
		d.Name = d.GenerateName + "x7k2q"
		if mutate != nil {
			mutate(d)
		}
		return true, d, nil
	})
}

// pullAlways is a cluster's mutating webhook: every container pulls always.
func pullAlways(d *appsv1.Deployment) {
	for i := range d.Spec.Template.Spec.Containers {
		d.Spec.Template.Spec.Containers[i].ImagePullPolicy = corev1.PullAlways
	}
}

// writes lists the requests that change something (a dry run does not).
func writes(cs *fake.Clientset) []string {
	var out []string
	for _, a := range cs.Actions() {
		if c, ok := a.(k8stesting.CreateActionImpl); ok && len(c.CreateOptions.DryRun) > 0 {
			continue
		}
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
		}
	}
	return out
}

func joinShop(t *testing.T, cs *fake.Clientset, proxyImage string) (*Started, error) {
	t.Helper()
	svc, err := cs.CoreV1().Services("ns").Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	return join(context.Background(), cs, svc, svc.Annotations[AnnotationRecord], StartOptions{Namespace: "ns", Service: "shop", ProxyImage: proxyImage})
}

// A member squats a Service nobody intercepts: their own "copy" with the
// labels and a matching record, the Service switched to it. The next
// developer's start must not join it: nothing is written, and the error
// names the field and what to do.
func TestJoinRefusesASquattedCopy(t *testing.T) {
	spec := func(d *appsv1.Deployment) *corev1.PodSpec { return &d.Spec.Template.Spec }
	for _, tc := range []struct {
		name, field string
		edit        func(*appsv1.Deployment)
	}{
		{"hostAliases", "spec.hostAliases", func(d *appsv1.Deployment) {
			spec(d).HostAliases = []corev1.HostAlias{{IP: "203.0.113.9", Hostnames: []string{"db.internal"}}}
		}},
		{"dns", "spec.dnsPolicy", func(d *appsv1.Deployment) {
			spec(d).DNSPolicy = corev1.DNSNone
			spec(d).DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"203.0.113.9"}}
		}},
		{"service account", "spec.serviceAccountName", func(d *appsv1.Deployment) { spec(d).ServiceAccountName = "deployer" }},
		{"extra container", "container spy, which the original does not have", func(d *appsv1.Deployment) {
			spec(d).Containers = append(spec(d).Containers, corev1.Container{Name: "spy", Image: "registry.example/spy"})
		}},
		{"app env", "spec.containers[app].env", func(d *appsv1.Deployment) {
			spec(d).Containers[0].Env = append(spec(d).Containers[0].Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://203.0.113.9:3128"})
		}},
		{"another sidecar image", "spec.containers[intercept-proxy].image", func(d *appsv1.Deployment) {
			spec(d).Containers[1].Image = "registry.example/evil-proxy:1.0.0"
		}},
		{"pod labels", "metadata.labels", func(d *appsv1.Deployment) { d.Spec.Template.Labels["team"] = "other" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := genuineSession(t, tc.edit)
			admitAs(cs, pullAlways) // a cluster that mutates copies hides no squatter
			st, err := joinShop(t, cs, testProxyImage)
			if err == nil || st != nil {
				t.Fatalf("join of a squatted copy = %+v, %v; want refused", st, err)
			}
			for _, want := range []string{tc.field, "kubectl intercept close svc/shop --force", "Nothing was changed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if w := writes(cs); len(w) != 0 {
				t.Errorf("a refused join wrote %v", w)
			}
		})
	}
}

// The original was deployed after the copy was made: joining is refused,
// naming the app's field, rather than giving the developer an environment
// that is neither.
func TestJoinRefusesACopyOfAnEarlierOriginal(t *testing.T) {
	cs, _ := genuineSession(t, nil)
	ctx := context.Background()
	orig, _ := cs.AppsV1().Deployments("ns").Get(ctx, "shop", metav1.GetOptions{})
	orig.Spec.Template.Spec.Containers[0].Image = "registry.example/shop:4"
	if _, err := cs.AppsV1().Deployments("ns").Update(ctx, orig, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := joinShop(t, cs, testProxyImage)
	if err == nil || !strings.Contains(err.Error(), "spec.containers[app].image") {
		t.Fatalf("join after a deploy of the original = %v; want refused at the app's image", err)
	}
}

// A copy as start makes it is joined, also as the API server returns it
// (defaults filled in), as a cluster's mutating admission changed it (a
// server-side dry run of the expected copy shows the same change), and by
// a developer whose sidecar image is another version of the same image.
func TestJoinAcceptsAGenuineCopy(t *testing.T) {
	for _, tc := range []struct {
		name, image string
		edit        func(*appsv1.Deployment)
	}{
		{"as made", testProxyImage, nil},
		{"defaulted by the API server", testProxyImage, func(d *appsv1.Deployment) {
			s := &d.Spec.Template.Spec
			s.DNSPolicy, s.RestartPolicy, s.SchedulerName = corev1.DNSClusterFirst, corev1.RestartPolicyAlways, corev1.DefaultSchedulerName
			s.TerminationGracePeriodSeconds = ptrTo(int64(30))
			s.SecurityContext = &corev1.PodSecurityContext{}
			for i := range s.Containers {
				c := &s.Containers[i]
				c.TerminationMessagePath = corev1.TerminationMessagePathDefault
				if c.TerminationMessagePolicy == "" {
					c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
				}
				if c.ImagePullPolicy == "" {
					c.ImagePullPolicy = corev1.PullIfNotPresent
				}
				if p := c.ReadinessProbe; p != nil {
					p.TimeoutSeconds, p.SuccessThreshold, p.HTTPGet.Scheme = 1, 1, corev1.URISchemeHTTP
				}
				for j := range c.Env {
					if f := c.Env[j].ValueFrom; f != nil && f.FieldRef != nil {
						f.FieldRef.APIVersion = "v1"
					}
				}
			}
		}},
		{"another version's sidecar", "registry.example/intercept-proxy:1.1.0", nil},
		{"mutated by the cluster's admission", testProxyImage, pullAlways},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, rec := genuineSession(t, tc.edit)
			if tc.name == "mutated by the cluster's admission" {
				admitAs(cs, pullAlways) // the webhook that made the copy
			}
			st, err := joinShop(t, cs, tc.image)
			if err != nil || st == nil || st.Record.ID != rec.ID {
				t.Fatalf("join of a genuine copy = %+v, %v; want session %s", st, err, rec.ID)
			}
			st.Settle()
		})
	}
}

// A pod that carries the session's label but is not the copy's (no owner
// chain to it) is ready before the Service is switched: its readiness gate
// is never opened, so it never becomes an endpoint. The copy's own pod's is.
func TestWaitReadyOpensOnlyTheCopysGates(t *testing.T) {
	ctx := context.Background()
	cs, rec := genuineSession(t, nil)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy + "-5d8f", Namespace: "ns", UID: "rs-uid",
		Labels:          map[string]string{LabelSession: rec.ID},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: rec.Copy, UID: "copy-uid", Controller: ptrTo(true)}}}}
	other := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "lookalike-7c9d", Namespace: "ns", UID: "other-rs-uid",
		Labels:          map[string]string{LabelSession: rec.ID},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "lookalike", UID: "other-uid", Controller: ptrTo(true)}}}}
	pod := func(name string, owner *appsv1.ReplicaSet) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{LabelSession: rec.ID}},
			Spec: corev1.PodSpec{ReadinessGates: []corev1.PodReadinessGate{{ConditionType: workload.RoutesGate}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}}}}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner.Name, UID: owner.UID, Controller: ptrTo(true)}}
		}
		return p
	}
	for _, o := range []interface{ GetName() string }{rs, other} {
		if _, err := cs.AppsV1().ReplicaSets("ns").Create(ctx, o.(*appsv1.ReplicaSet), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*corev1.Pod{pod("copy-pod", rs), pod("unowned", nil), pod("lookalike-pod", other)} {
		if _, err := cs.CoreV1().Pods("ns").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patched := make(chan string, 10)
	cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		patched <- a.(k8stesting.PatchAction).GetName()
		return false, nil, nil
	})
	errc := make(chan error, 1)
	go func() { errc <- WaitReady(ctx, cs, "ns", rec.Copy, rec.ID, 1, 30*time.Second) }()
	select {
	case name := <-patched:
		if name != "copy-pod" {
			t.Fatalf("the gate of pod %s was opened; only the copy's pod may be", name)
		}
	case err := <-errc:
		t.Fatalf("WaitReady returned %v before opening the copy pod's gate", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the copy pod's gate was never opened")
	}
	// Every pod was looked at in the pass that opened copy-pod's gate: now
	// the copy is ready and the wait ends.
	d, _ := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, ReadyReplicas: 1, UpdatedReplicas: 1, Replicas: 1}
	if _, err := cs.AppsV1().Deployments("ns").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	close(patched)
	for name := range patched {
		t.Errorf("the gate of pod %s was opened; only the copy's pod may be", name)
	}
	for _, name := range []string{"unowned", "lookalike-pod"} {
		p, _ := cs.CoreV1().Pods("ns").Get(ctx, name, metav1.GetOptions{})
		if !Gated(p) {
			t.Errorf("pod %s, a look-alike, had its gate opened", name)
		}
	}
}

// A look-alike pod with the session's label stays after the copy is
// deleted: the close waits for the copy's own pods only, and does not
// report them as still terminating because of it.
func TestDeleteCopyWaitsForTheCopysPodsOnly(t *testing.T) {
	ctx := context.Background()
	cs, rec := genuineSession(t, nil)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: rec.Copy + "-5d8f", Namespace: "ns", UID: "rs-uid",
		Labels:          map[string]string{LabelSession: rec.ID},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: rec.Copy, UID: "copy-uid", Controller: ptrTo(true)}}}}
	if _, err := cs.AppsV1().ReplicaSets("ns").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Name: "copy-pod", Namespace: "ns", Labels: map[string]string{LabelSession: rec.ID},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptrTo(true)}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lookalike-pod", Namespace: "ns", Labels: map[string]string{LabelSession: rec.ID}}},
	} {
		if _, err := cs.CoreV1().Pods("ns").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The garbage collector: the copy's pod goes with the copy.
	cs.PrependReactor("delete", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		go func() { _ = cs.CoreV1().Pods("ns").Delete(context.Background(), "copy-pod", metav1.DeleteOptions{}) }()
		return false, nil, nil
	})
	d, err := cs.AppsV1().Deployments("ns").Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := deleteCopy(ctx, cs, "ns", *d, 10*time.Second); err != nil {
		t.Fatalf("deleting the copy with a look-alike pod around: %v", err)
	}
}

// The switched Service's only ready endpoint is a look-alike pod with the
// session's label: the wait for the switch does not take it for the copy's
// pod, and says the Service still lists other pods.
func TestEndpointsOfALookAlikeAreNotTheCopys(t *testing.T) {
	ctx := context.Background()
	cs, rec := genuineSession(t, nil)
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lookalike-pod", Namespace: "ns",
		Labels: map[string]string{LabelSession: rec.ID}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "shop-x", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "shop"}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "lookalike-pod", Namespace: "ns"}}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("ns").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := WaitEndpointsOnCopy(ctx, cs, "ns", "shop", rec, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "still lists pods other than the copy's") {
		t.Fatalf("wait with only a look-alike endpoint = %v; want it not counted as the copy's", err)
	}
}

type warnings []string

func (w *warnings) Step(string) func(error) { return func(error) {} }
func (w *warnings) Warn(msg string)         { *w = append(*w, msg) }

// A member leaves a "copy" of their own, never switched, with a record
// for the Service: a start does not resume it (which would switch the
// Service to it), writes nothing for it, and says why.
func TestStartDoesNotResumeASquattedCopy(t *testing.T) {
	ctx := context.Background()
	cs, rec := genuineSession(t, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.HostAliases = []corev1.HostAlias{{IP: "203.0.113.9", Hostnames: []string{"db.internal"}}}
	})
	svc := service(intstr.FromInt32(8080)) // never switched
	svc.Spec.ClusterIP = "10.0.0.7"
	if _, err := cs.CoreV1().Services("ns").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	var w warnings
	target := &workload.Target{Source: workload.FromDeployment(original())}
	st, err := resume(ctx, cs, svc, target, []*corev1.ServicePort{&svc.Spec.Ports[0]}, false, StartOptions{Namespace: "ns", Service: "shop", ProxyImage: testProxyImage, Progress: &w})
	if err != nil || st != nil {
		t.Fatalf("resume of a squatted copy = %+v, %v; want none", st, err)
	}
	if len(w) != 1 || !strings.Contains(w[0], "not resuming deployment "+rec.Copy) || !strings.Contains(w[0], "spec.hostAliases") {
		t.Errorf("warnings %q; want one naming the copy and spec.hostAliases", w)
	}
	if wr := writes(cs); len(wr) != 0 {
		t.Errorf("a refused resume wrote %v", wr)
	}
}
