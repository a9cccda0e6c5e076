package workload

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// SidecarName is the name of the container added to the copy's pods.
const SidecarName = "intercept-proxy"

// RoutesGate is the readiness gate of the copy's pods: a pod gets traffic
// only once a developer's CLI has seen it hold every live route.
const RoutesGate = "intercept.kubectl.dev/routes"

// CopyInput is everything the copy is made from.
type CopyInput struct {
	Source  *Source
	Service *corev1.Service
	// Ports are the Service ports to intercept: each gets a listener of
	// the sidecar.
	Ports []*corev1.ServicePort
	// Replicas of the copy: as many as the original has ready.
	Replicas int32
	// Name of the copy Deployment.
	Name string
	// SessionLabel, SessionID label the copy's pods; alone they become the
	// Service's selector.
	SessionLabel, SessionID string
	// Labels go on the copy Deployment's own metadata (ours only).
	Labels map[string]string
	// Annotations go on the copy Deployment's own metadata.
	Annotations map[string]string
	ProxyImage  string
}

// PortPlan says how traffic of one Service port reaches the sidecar.
type PortPlan struct {
	// Port is the Service port, by name (or number when it has none).
	Port string `json:"port,omitempty"`
	// AppPort is the app container's port the Service targeted.
	AppPort int32 `json:"appPort"`
	// SidecarPort takes the Service's traffic; ControlPort (loopback) the tunnels.
	SidecarPort int32 `json:"sidecarPort"`
	ControlPort int32 `json:"controlPort"`
	// PeerPort (pod network) is where relays carry other developers'
	// routes to this pod; zero in copies made before it existed, whose
	// pods each get a tunnel of their own.
	PeerPort int32 `json:"peerPort,omitempty"`
	// TargetPortName is set when the Service targets a named port: the
	// sidecar takes the name and the Service's targetPort stays as it is.
	TargetPortName string `json:"targetPortName,omitempty"`
}

// reservedPorts are ports service meshes claim inside pods.
func reservedPort(p int32) bool {
	return (p >= 15000 && p <= 15090) || p == 4140 || p == 4143 || p == 4191
}

// Copy returns the copy of in.Source that serves the Service's ports
// through the sidecar, and how each port is laid out. It never modifies
// its input.
func Copy(in CopyInput) (*appsv1.Deployment, []PortPlan, error) {
	tmpl := in.Source.Template.DeepCopy()
	spec := &tmpl.Spec
	emptyClaims(spec, in.Source.ClaimTemplates)
	plans, err := planPorts(spec, in.Ports)
	if err != nil {
		return nil, nil, fmt.Errorf("service %s %w", in.Service.Name, err)
	}

	// The pods keep the original's labels, so NetworkPolicies, mesh
	// policies and other Services still apply to them, minus the ones the
	// original's controllers generate (which would let them adopt the pods).
	podLabels := map[string]string{}
	for k, v := range tmpl.Labels {
		podLabels[k] = v
	}
	for _, k := range generatedLabels {
		delete(podLabels, k)
	}
	scopeAntiAffinity(spec, podLabels, in.SessionLabel, in.SessionID)
	podLabels[in.SessionLabel] = in.SessionID
	tmpl.Labels = podLabels

	for _, plan := range plans {
		if plan.TargetPortName != "" {
			renameAppPort(spec, plan)
		}
	}
	holdAppWhileDraining(spec, plans[0])
	spec.ReadinessGates = append(spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: RoutesGate})
	spec.Containers = append(spec.Containers, sidecar(in.ProxyImage, plans, in.Service, in.Ports, loopbackUpstream))
	// The sidecar needs no access to the API: an empty directory over the
	// service account token's path hides the workload's token from it. It
	// is mounted read-only, so nothing grows in it; no size limit (the
	// kubelet counts a directory's own block against one, and evicts).
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: noTokenVolume,
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})

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
			Template: *tmpl,
			// Surge only: a copy's pods never go below what serves traffic.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromInt32(1)),
				},
			},
			RevisionHistoryLimit:    ptr.To(int32(1)),
			MinReadySeconds:         in.Source.MinReadySeconds,
			ProgressDeadlineSeconds: in.Source.ProgressDeadlineSeconds,
		},
	}
	return d, plans, nil
}

// emptyClaims gives the copy's pods an empty directory for each of a
// StatefulSet's claim templates: the copy never claims volumes of its own
// nor mounts the original's (ReadWriteOnce, and the original's data). The
// copy's pods start with no data there (Preflight warns).
func emptyClaims(spec *corev1.PodSpec, claims []corev1.PersistentVolumeClaim) {
	have := map[string]bool{}
	for _, v := range spec.Volumes {
		have[v.Name] = true
	}
	for _, c := range claims {
		if have[c.Name] {
			continue
		}
		ed := &corev1.EmptyDirVolumeSource{}
		if size, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			ed.SizeLimit = &size
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{EmptyDir: ed}})
	}
}

// planPorts finds the app's port each Service port targets and picks the
// sidecar's ports (a listener and a control port per Service port) clear
// of every port the pod declares, of each other and of mesh ports.
func planPorts(spec *corev1.PodSpec, ports []*corev1.ServicePort) ([]PortPlan, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("has no port to intercept")
	}
	used := map[int32]bool{}
	for _, c := range allContainers(spec) {
		for _, p := range c.Ports {
			used[p.ContainerPort] = true
		}
	}
	plans := make([]PortPlan, len(ports))
	for i, sp := range ports {
		plan, err := appPort(spec, sp)
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", portName(sp), err)
		}
		plans[i] = plan
		used[plan.AppPort] = true
	}
	next := func(from int32) int32 {
		for p := from; ; p++ {
			if !used[p] && !reservedPort(p) {
				used[p] = true
				return p
			}
		}
	}
	from := int32(18080)
	for i := range plans {
		plans[i].SidecarPort = next(from)
		plans[i].ControlPort = next(plans[i].SidecarPort + 1)
		plans[i].PeerPort = next(plans[i].ControlPort + 1)
		from = plans[i].PeerPort + 1
	}
	return plans, nil
}

// appPort finds the app's container port a Service port targets.
func appPort(spec *corev1.PodSpec, sp *corev1.ServicePort) (PortPlan, error) {
	plan := PortPlan{Port: PortKey(sp)}
	tp := sp.TargetPort
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal {
					plan.AppPort, plan.TargetPortName = p.ContainerPort, p.Name
				}
			}
		}
		if plan.AppPort == 0 {
			return plan, fmt.Errorf("targetPort %q names no container port of the workload", tp.StrVal)
		}
	case tp.IntVal != 0:
		plan.AppPort = tp.IntVal
	default:
		plan.AppPort = sp.Port
	}
	return plan, nil
}

// ServingContainer is the app container that serves the Service port sp in
// spec: the one declaring the port sp targets, or, when none declares it,
// the first that is not the sidecar. Nil for a spec without containers.
func ServingContainer(spec *corev1.PodSpec, sp *corev1.ServicePort) *corev1.Container {
	plan, err := appPort(spec, sp)
	if err == nil {
		if c := ContainerWithPort(spec, plan.AppPort); c != nil {
			return c
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name != SidecarName {
			return &spec.Containers[i]
		}
	}
	return nil
}

// ContainerWithPort is the container (not the sidecar) declaring port.
func ContainerWithPort(spec *corev1.PodSpec, port int32) *corev1.Container {
	for i := range spec.Containers {
		if c := &spec.Containers[i]; c.Name != SidecarName && servesPort(c, port) {
			return c
		}
	}
	return nil
}

// PortKey names a Service port as records and flags do: its name, or its
// number when it has none.
func PortKey(p *corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// renameAppPort gives the app's port another name so the sidecar can take
// the Service's named targetPort (policies written against the name follow
// it), and turns probes that used the name into the number.
func renameAppPort(spec *corev1.PodSpec, plan PortPlan) {
	renamed := appPortName(plan.TargetPortName)
	byNumber := intstr.FromInt32(plan.AppPort)
	fix := func(port *intstr.IntOrString) {
		if port.Type == intstr.String && port.StrVal == plan.TargetPortName {
			*port = byNumber
		}
	}
	fixHandler := func(h *corev1.ProbeHandler) {
		if h.HTTPGet != nil {
			fix(&h.HTTPGet.Port)
		}
		if h.TCPSocket != nil {
			fix(&h.TCPSocket.Port)
		}
	}
	fixLifecycle := func(h *corev1.LifecycleHandler) {
		if h != nil && h.HTTPGet != nil {
			fix(&h.HTTPGet.Port)
		}
		if h != nil && h.TCPSocket != nil {
			fix(&h.TCPSocket.Port)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for j := range c.Ports {
			if c.Ports[j].Name == plan.TargetPortName {
				c.Ports[j].Name = renamed
			}
		}
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p != nil {
				fixHandler(&p.ProbeHandler)
			}
		}
		if c.Lifecycle != nil {
			fixLifecycle(c.Lifecycle.PostStart)
			fixLifecycle(c.Lifecycle.PreStop)
		}
	}
}

// appDrainSeconds is how long the copy's app keeps running after its pod is
// deleted: longer than the sidecar's drain delay, so requests the sidecar
// still accepts while kube-proxy catches up have an app to go to.
const appDrainSeconds = 4

// holdAppWhileDraining gives the app container that serves the intercepted
// port a preStop sleep, unless it has a preStop hook of its own: all
// containers of a pod get SIGTERM at once, and an app that stops listening
// at once would turn the sidecar's drain into 502s. The copy only; the
// original is never changed.
func holdAppWhileDraining(spec *corev1.PodSpec, plan PortPlan) {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if !servesPort(c, plan.AppPort) && len(spec.Containers) > 1 {
			continue
		}
		if c.Lifecycle == nil {
			c.Lifecycle = &corev1.Lifecycle{}
		}
		if c.Lifecycle.PreStop == nil {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: appDrainSeconds}}
		}
		if g := spec.TerminationGracePeriodSeconds; g != nil && *g < appDrainSeconds+2 {
			spec.TerminationGracePeriodSeconds = ptr.To(int64(appDrainSeconds + 2))
		}
		return
	}
}

func servesPort(c *corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// appPortName is the app port's name in the copy: a valid IANA service
// name (at most 15 characters) that differs from the original.
func appPortName(name string) string {
	n := "app-" + name
	if len(n) > 15 {
		n = n[:15]
	}
	for len(n) > 0 && n[len(n)-1] == '-' {
		n = n[:len(n)-1]
	}
	if n == name {
		n = "app-" + strconv.Itoa(len(name))
	}
	return n
}

// scopeAntiAffinity handles required pod anti-affinity terms that select
// the pods' own labels. Anti-affinity is symmetric: the original's pods,
// whose terms we cannot change, would repel any copy pod carrying those
// labels, and on a small cluster the copy would never schedule. So the copy's
// pods drop the labels such terms select on, and the copy's own terms select
// the session label instead, so its replicas still spread among themselves.
// It returns the dropped label keys.
func scopeAntiAffinity(spec *corev1.PodSpec, podLabels map[string]string, key, id string) []string {
	keys := SelfAntiAffinityKeys(spec, podLabels)
	if len(keys) == 0 {
		return nil
	}
	terms := spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	for i := range terms {
		if sel := terms[i].LabelSelector; sel != nil && selectsOwnPods(sel, podLabels) {
			terms[i].LabelSelector = &metav1.LabelSelector{MatchLabels: map[string]string{key: id}}
		}
	}
	for _, k := range keys {
		delete(podLabels, k)
	}
	return keys
}

// SelfAntiAffinityKeys lists the label keys that required anti-affinity
// terms of spec use to select pods with podLabels.
func SelfAntiAffinityKeys(spec *corev1.PodSpec, podLabels map[string]string) []string {
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		return nil
	}
	seen := map[string]bool{}
	var keys []string
	for _, term := range spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		sel := term.LabelSelector
		if sel == nil || !selectsOwnPods(sel, podLabels) {
			continue
		}
		add := func(k string) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		for k := range sel.MatchLabels {
			add(k)
		}
		for _, e := range sel.MatchExpressions {
			add(e.Key)
		}
	}
	sort.Strings(keys)
	return keys
}

func selectsOwnPods(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

// serviceAddr is the ClusterIP:port of the intercepted Service port: the
// only address a sidecar's probe may request.
func serviceAddr(svc *corev1.Service, p *corev1.ServicePort) string {
	if svc == nil || p == nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return ""
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(p.Port)))
}

// noTokenVolume is the empty directory mounted over the sidecar's service
// account token path.
const noTokenVolume = "intercept-no-token"

// sidecar is the proxy container: one process, a listener and a control
// port for each intercepted Service port. It passes Pod Security
// "restricted", has no CPU limit (throttling it would throttle the whole
// Service) and no liveness probe (a restart would cut every developer's
// tunnel).
func sidecar(image string, plans []PortPlan, svc *corev1.Service, ports []*corev1.ServicePort, upstream func(i int, plan PortPlan) string) corev1.Container {
	first := plans[0]
	args := []string{
		"--listen=:" + strconv.Itoa(int(first.SidecarPort)),
		"--upstream=" + upstream(0, first),
		"--control=127.0.0.1:" + strconv.Itoa(int(first.ControlPort)),
		"--peer=:" + strconv.Itoa(int(first.PeerPort)),
	}
	if speaksH2C(ports[0]) {
		args = append(args, "--h2c")
	}
	if addr := serviceAddr(svc, ports[0]); addr != "" {
		args = append(args, "--service-addr="+addr)
	}
	var containerPorts []corev1.ContainerPort
	for i, plan := range plans {
		name := plan.TargetPortName
		if name == "" {
			name = "intercept"
			if i > 0 {
				name += "-" + strconv.Itoa(i+1)
			}
		}
		containerPorts = append(containerPorts, corev1.ContainerPort{Name: name, ContainerPort: plan.SidecarPort, Protocol: corev1.ProtocolTCP})
		if i == 0 {
			continue
		}
		also := fmt.Sprintf("listen=:%d,upstream=%s,control=127.0.0.1:%d,peer=:%d", plan.SidecarPort, upstream(i, plan), plan.ControlPort, plan.PeerPort)
		if speaksH2C(ports[i]) {
			also += ",h2c"
		}
		if addr := serviceAddr(svc, ports[i]); addr != "" {
			also += ",service-addr=" + addr
		}
		args = append(args, "--also="+also)
	}
	return corev1.Container{
		Name:  SidecarName,
		Image: image,
		Args:  args,
		Env: []corev1.EnvVar{{
			Name:      "POD_NAME",
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}, {
			// The sidecar sizes its budget of connections from its own
			// memory limit, so that no caller can take it past it.
			Name: "MEMORY_LIMIT",
			ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				ContainerName: SidecarName, Resource: "limits.memory", Divisor: resource.MustParse("1")}},
		}},
		Ports: containerPorts,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path:        "/",
				Port:        intstr.FromInt32(first.SidecarPort),
				HTTPHeaders: []corev1.HTTPHeader{{Name: wire.ProbeHeader, Value: "kubelet"}},
			}},
			PeriodSeconds:    2,
			FailureThreshold: 2,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("32Mi"),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		ImagePullPolicy: corev1.PullIfNotPresent,
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(int64(65532)),
			RunAsGroup:               ptr.To(int64(65532)),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts:             []corev1.VolumeMount{{Name: noTokenVolume, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}},
	}
}

// loopbackUpstream is the copy's upstream: the app in the same pod.
func loopbackUpstream(_ int, plan PortPlan) string {
	return "127.0.0.1:" + strconv.Itoa(int(plan.AppPort))
}

// speaksH2C reports whether the Service port declares HTTP/2 without TLS.
func speaksH2C(p *corev1.ServicePort) bool {
	s, _ := PortSpeaks(p)
	return s == SpeaksH2C
}
