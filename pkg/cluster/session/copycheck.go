package session

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Anyone who may make a copy may make a Deployment that looks like one:
// labels and a record of its own are writable by every member. Before a
// developer joins a session, its copy is made again from the live original
// and compared with the one in the cluster; only what the copy transform
// writes may differ from the original.

// CheckCopyTemplate recomputes the copy of the session on svc (as switched)
// from its live original with the same transform a start uses, and refuses
// a copy whose pod template, selector or port plans are not that. proxyImage
// is the caller's sidecar image: the copy's sidecar may run another tag or
// digest of the same image (a developer with another version made it), not
// another image. dyn reads Argo Rollouts (nil: they cannot be checked).
func CheckCopyTemplate(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, svc *corev1.Service, rec *Record, proxyImage string) error {
	ns := svc.Namespace
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Copy, metav1.GetOptions{})
	if err != nil {
		return describeAPIError(err, "reading deployment "+rec.Copy+", the intercept's copy")
	}
	refuse := func(what string) error {
		return fmt.Errorf("deployment %s, the copy of the intercept of service %s, is not what kubectl-intercept makes from %s: %s. "+
			"Nothing was changed. Either the original was deployed since the intercept began, or someone made or edited the copy: "+
			"check `kubectl get deployment %s -n %s -o yaml` and `kubectl intercept list -n %s`; when the original was deployed, wait until the developers of that intercept have left (or ask them), then start anew; "+
			"when the copy is not theirs, `kubectl intercept close svc/%s --force` removes it (and ends their routes)",
			rec.Copy, rec.Service, rec.WorkloadRef(), what, rec.Copy, ns, ns, rec.Service)
	}
	src, err := readOriginal(ctx, cs, dyn, ns, rec)
	if apierrors.IsNotFound(err) {
		return refuse(rec.WorkloadRef() + " is gone")
	}
	if err != nil {
		return describeAPIError(err, "reading "+rec.WorkloadRef()+", the original of copy "+rec.Copy)
	}
	// The Service as it was before the switch: the transform reads its
	// ports and address from it.
	orig, _ := Restore(svc, rec)
	var ports []*corev1.ServicePort
	for _, key := range rec.PortKeys() {
		i := workload.PortIndex(orig, key)
		if i < 0 {
			return refuse("service " + svc.Name + " has no port " + key + " any more")
		}
		ports = append(ports, &orig.Spec.Ports[i])
	}
	image := proxyImage
	if c := findContainer(d.Spec.Template.Spec.Containers, workload.SidecarName); c != nil && imageRepo(c.Image) == imageRepo(proxyImage) {
		image = c.Image
	}
	if rec.IsDecoy() {
		return checkProxyTemplate(ctx, cs, d, orig, ports, src, rec, image, refuse)
	}
	want, plans, err := workload.Copy(workload.CopyInput{
		Source: src, Service: orig, Ports: ports, Replicas: 1,
		Name: rec.Copy, SessionLabel: LabelSession, SessionID: rec.ID,
		Labels:     map[string]string{LabelManagedBy: ManagedByValue, LabelSession: rec.ID},
		ProxyImage: image,
	})
	if err != nil {
		return refuse("its original cannot be copied any more (" + err.Error() + ")")
	}
	return compareCopy(ctx, cs, want, plans, d, rec, refuse)
}

// compareCopy refuses a copy (or a decoy's proxy) d that is not want, the
// transform's output: its port plans, selector and pod template, but for
// what the cluster's admission adds.
func compareCopy(ctx context.Context, cs kubernetes.Interface, want *appsv1.Deployment, plans []workload.PortPlan, d *appsv1.Deployment, rec *Record, refuse func(string) error) error {
	for i, e := range rec.Ports() {
		if i >= len(plans) || plans[i] != e.Plan {
			return refuse("the record's plan for port " + e.Port + " is not the one the transform makes")
		}
	}
	if !equality.Semantic.DeepEqual(want.Spec.Selector, d.Spec.Selector) {
		return refuse("its selector differs")
	}
	if field := templateDifference(&want.Spec.Template, &d.Spec.Template); field != "" {
		if admitted, err := asAdmitted(ctx, cs, want); err == nil && templateDifference(&admitted.Spec.Template, &d.Spec.Template) == "" {
			return nil // the cluster's mutating admission made the difference
		}
		return refuse("its pod template differs at " + field)
	}
	return nil
}

// asAdmitted returns want as the API server would store it: a server-side
// dry-run create (nothing is stored) applies the defaults and every
// mutating admission webhook and policy of the cluster, which the copy in
// the cluster went through when it was made. A copy that differs from the
// transform only by what the cluster itself adds is genuine.
func asAdmitted(ctx context.Context, cs kubernetes.Interface, want *appsv1.Deployment) (*appsv1.Deployment, error) {
	probe := want.DeepCopy()
	probe.GenerateName, probe.Name = want.Name+"-", "" // the copy's own name is taken
	return cs.AppsV1().Deployments(want.Namespace).Create(ctx, probe, metav1.CreateOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager,
	})
}

// readOriginal reads the workload the record names, as Resolve would.
func readOriginal(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, ns string, rec *Record) (*workload.Source, error) {
	switch rec.Kind {
	case "", workload.KindDeployment:
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return workload.FromDeployment(d), nil
	case workload.KindStatefulSet:
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return workload.FromStatefulSet(s), nil
	case workload.KindReplicaSet:
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return workload.FromReplicaSet(rs), nil
	case workload.KindPod:
		p, err := cs.CoreV1().Pods(ns).Get(ctx, rec.Workload, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return workload.FromPod(p), nil
	case workload.KindRollout:
		return workload.ReadRollout(ctx, cs, dyn, ns, rec.Workload)
	}
	return nil, fmt.Errorf("kind %s is not supported", rec.Kind)
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// imageRepo is an image reference without its tag and digest.
func imageRepo(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// templateDifference names the first field where got differs from want
// (empty: none), after both get the defaults the API server fills in, so a
// copy read back from the cluster compares equal to one just computed.
func templateDifference(want, got *corev1.PodTemplateSpec) string {
	w, g := want.DeepCopy(), got.DeepCopy()
	defaultSpec(&w.Spec)
	defaultSpec(&g.Spec)
	if !equality.Semantic.DeepEqual(w.Labels, g.Labels) {
		return "metadata.labels"
	}
	if !equality.Semantic.DeepEqual(emptyNil(w.Annotations), emptyNil(g.Annotations)) {
		return "metadata.annotations"
	}
	if f := containersDifference("initContainers", w.Spec.InitContainers, g.Spec.InitContainers); f != "" {
		return f
	}
	if f := containersDifference("containers", w.Spec.Containers, g.Spec.Containers); f != "" {
		return f
	}
	if f := volumesDifference(w.Spec.Volumes, g.Spec.Volumes); f != "" {
		return f
	}
	w.Spec.InitContainers, g.Spec.InitContainers = nil, nil
	w.Spec.Containers, g.Spec.Containers = nil, nil
	w.Spec.Volumes, g.Spec.Volumes = nil, nil
	if f := fieldDifference(reflect.ValueOf(w.Spec), reflect.ValueOf(g.Spec)); f != "" {
		return "spec." + f
	}
	return ""
}

func emptyNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func containersDifference(list string, want, got []corev1.Container) string {
	for _, g := range got {
		if findContainer(want, g.Name) == nil {
			return fmt.Sprintf("spec.%s: container %s, which the original does not have", list, g.Name)
		}
	}
	for i, w := range want {
		g := findContainer(got, w.Name)
		if g == nil {
			return fmt.Sprintf("spec.%s: container %s is missing", list, w.Name)
		}
		if f := fieldDifference(reflect.ValueOf(w), reflect.ValueOf(*g)); f != "" {
			return fmt.Sprintf("spec.%s[%s].%s", list, w.Name, f)
		}
		if i < len(got) && got[i].Name != w.Name {
			return fmt.Sprintf("spec.%s: the order of the containers", list)
		}
	}
	return ""
}

func volumesDifference(want, got []corev1.Volume) string {
	byName := func(vs []corev1.Volume, name string) *corev1.Volume {
		for i := range vs {
			if vs[i].Name == name {
				return &vs[i]
			}
		}
		return nil
	}
	for _, g := range got {
		if byName(want, g.Name) == nil {
			return "spec.volumes: volume " + g.Name + ", which the original does not have"
		}
	}
	for _, w := range want {
		g := byName(got, w.Name)
		if g == nil {
			return "spec.volumes: volume " + w.Name + " is missing"
		}
		if !equality.Semantic.DeepEqual(w, *g) {
			return "spec.volumes[" + w.Name + "]"
		}
	}
	return ""
}

// fieldDifference names the first field of two structs of one type whose
// values differ, by its JSON name.
func fieldDifference(w, g reflect.Value) string {
	t := w.Type()
	for i := 0; i < t.NumField(); i++ {
		if equality.Semantic.DeepEqual(w.Field(i).Interface(), g.Field(i).Interface()) {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" {
			name = t.Field(i).Name
		}
		return name
	}
	return ""
}

// defaultSpec fills in what the API server defaults in a pod template
// where it is empty; fields already set keep their values.
func defaultSpec(s *corev1.PodSpec) {
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if s.EnableServiceLinks == nil {
		s.EnableServiceLinks = ptr.To(corev1.DefaultEnableServiceLinks)
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		switch {
		case v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil:
			v.ConfigMap.DefaultMode = ptr.To(corev1.ConfigMapVolumeSourceDefaultMode)
		case v.Secret != nil && v.Secret.DefaultMode == nil:
			v.Secret.DefaultMode = ptr.To(corev1.SecretVolumeSourceDefaultMode)
		case v.DownwardAPI != nil && v.DownwardAPI.DefaultMode == nil:
			v.DownwardAPI.DefaultMode = ptr.To(corev1.DownwardAPIVolumeSourceDefaultMode)
		case v.Projected != nil && v.Projected.DefaultMode == nil:
			v.Projected.DefaultMode = ptr.To(corev1.ProjectedVolumeSourceDefaultMode)
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
		if _, tag, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); !strings.Contains(c.Image, "@") && (!ok || tag == "latest") {
			c.ImagePullPolicy = corev1.PullAlways
		}
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = 1
		}
		if p.PeriodSeconds == 0 {
			p.PeriodSeconds = 10
		}
		if p.SuccessThreshold == 0 {
			p.SuccessThreshold = 1
		}
		if p.FailureThreshold == 0 {
			p.FailureThreshold = 3
		}
		if p.HTTPGet != nil && p.HTTPGet.Scheme == "" {
			p.HTTPGet.Scheme = corev1.URISchemeHTTP
		}
	}
	for i := range c.Env {
		if f := c.Env[i].ValueFrom; f != nil && f.FieldRef != nil && f.FieldRef.APIVersion == "" {
			f.FieldRef.APIVersion = "v1"
		}
	}
}
