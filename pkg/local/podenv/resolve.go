package podenv

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Var is one variable of the environment and where its value came from.
type Var struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// From says where the value came from: "env", "configmap/NAME",
	// "secret/NAME", "field metadata.name", "resource limits.cpu",
	// "service links".
	From string `json:"from"`
}

// Objects reads the ConfigMaps and Secrets of the pod's namespace.
type Objects interface {
	ConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, name string) (*corev1.Secret, error)
}

// Input is what a container's environment is made from.
type Input struct {
	// Pod is the pod whose fields fieldRefs read: a running copy pod, or,
	// to check the references before anything exists, the template's.
	Pod       *corev1.Pod
	Container *corev1.Container
	// Services are the Services of the pod's namespace and Service
	// kubernetes of namespace default: the Service-link variables.
	Services []corev1.Service
	// Allocatable is the node's allocatable resources: what a
	// resourceFieldRef to an unset limit reads.
	Allocatable corev1.ResourceList
	Objects     Objects
}

// Resolve returns the container's environment in the order the pod
// declares it (envFrom's keys sorted within each source), then the
// Service-link variables the container does not set itself.
func Resolve(ctx context.Context, in Input) ([]Var, error) {
	r := &resolver{in: in, cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, index: map[string]int{}}
	c := in.Container
	for _, from := range c.EnvFrom {
		if err := r.envFrom(ctx, from); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	links := ServiceLinks(in.Services, in.Pod.Namespace, in.Pod.Spec.EnableServiceLinks == nil || *in.Pod.Spec.EnableServiceLinks)
	lookup := func(name string) (string, bool) {
		if i, ok := r.index[name]; ok {
			return r.vars[i].Value, true
		}
		v, ok := links[name]
		return v, ok
	}
	for _, e := range c.Env {
		switch {
		case e.Value != "" || e.ValueFrom == nil:
			r.set(e.Name, Expand(e.Value, lookup), "env")
		default:
			v, from, ok, err := r.valueFrom(ctx, e)
			if err != nil {
				return nil, fmt.Errorf("container %s, variable %s: %w", c.Name, e.Name, err)
			}
			if ok {
				r.set(e.Name, v, from)
			}
		}
	}
	names := make([]string, 0, len(links))
	for k := range links {
		if _, ok := r.index[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		r.vars = append(r.vars, Var{Name: k, Value: links[k], From: "service links"})
	}
	return r.vars, nil
}

type resolver struct {
	in      Input
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
	vars    []Var
	index   map[string]int
}

// set defines a variable; a later definition replaces the value where the
// name first appeared.
func (r *resolver) set(name, value, from string) {
	if i, ok := r.index[name]; ok {
		r.vars[i].Value, r.vars[i].From = value, from
		return
	}
	r.index[name] = len(r.vars)
	r.vars = append(r.vars, Var{Name: name, Value: value, From: from})
}

func (r *resolver) envFrom(ctx context.Context, from corev1.EnvFromSource) error {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := r.configMap(ctx, from.ConfigMapRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(from.ConfigMapRef.Optional) {
				return nil
			}
			return fmt.Errorf("envFrom: %w", err)
		}
		for _, k := range sortedKeys(cm.Data) {
			r.set(from.Prefix+k, cm.Data[k], "configmap/"+cm.Name)
		}
	case from.SecretRef != nil:
		s, err := r.secret(ctx, from.SecretRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(from.SecretRef.Optional) {
				return nil
			}
			return fmt.Errorf("envFrom: %w", err)
		}
		for _, k := range sortedKeys(s.Data) {
			r.set(from.Prefix+k, string(s.Data[k]), "secret/"+s.Name)
		}
	}
	return nil
}

// valueFrom resolves a valueFrom; ok is false when an optional reference
// is missing (the variable is left out).
func (r *resolver) valueFrom(ctx context.Context, e corev1.EnvVar) (value, from string, ok bool, err error) {
	src := e.ValueFrom
	switch {
	case src.FieldRef != nil:
		v, err := FieldValue(r.in.Pod, src.FieldRef.FieldPath)
		return v, "field " + src.FieldRef.FieldPath, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := r.resourceValue(src.ResourceFieldRef)
		return v, "resource " + src.ResourceFieldRef.Resource, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := r.configMap(ctx, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", "", false, nil
			}
			return "", "", false, err
		}
		v, found := cm.Data[ref.Key]
		if !found {
			if optional(ref.Optional) {
				return "", "", false, nil
			}
			return "", "", false, fmt.Errorf("configmap %s has no key %q (and the reference is not optional)", ref.Name, ref.Key)
		}
		return v, "configmap/" + ref.Name, true, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := r.secret(ctx, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", "", false, nil
			}
			return "", "", false, err
		}
		v, found := s.Data[ref.Key]
		if !found {
			if optional(ref.Optional) {
				return "", "", false, nil
			}
			return "", "", false, fmt.Errorf("secret %s has no key %q (and the reference is not optional)", ref.Name, ref.Key)
		}
		return string(v), "secret/" + ref.Name, true, nil
	}
	return "", "", false, fmt.Errorf("valueFrom names no source")
}

func (r *resolver) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := r.cms[name]; ok {
		return cm, nil
	}
	cm, err := r.in.Objects.ConfigMap(ctx, name)
	if err != nil {
		return nil, err
	}
	r.cms[name] = cm
	return cm, nil
}

func (r *resolver) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := r.secrets[name]; ok {
		return s, nil
	}
	s, err := r.in.Objects.Secret(ctx, name)
	if err != nil {
		return nil, err
	}
	r.secrets[name] = s
	return s, nil
}

// FieldValue is what a fieldRef reads from the pod, as the kubelet gives
// it to a container's environment.
func FieldValue(p *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return p.Status.HostIP, nil
	case "status.hostIPs":
		return joinIPs(p.Status.HostIPs), nil
	case "status.podIP":
		return p.Status.PodIP, nil
	case "status.podIPs":
		var ips []string
		for _, ip := range p.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	case "spec.terminationGracePeriodSeconds":
		if t := p.Spec.TerminationGracePeriodSeconds; t != nil {
			return strconv.FormatInt(*t, 10), nil
		}
		return "30", nil
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels", p.Labels}, {"metadata.annotations", p.Annotations}} {
		if key, ok := subscript(path, m.prefix); ok {
			return m.values[key], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not a field the kubelet gives to an environment variable", path)
}

// subscript reads prefix['key'] (or prefix["key"]).
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"[")
	if !ok || !strings.HasSuffix(rest, "]") || len(rest) < 3 {
		return "", false
	}
	inner := rest[:len(rest)-1]
	if q := inner[0]; (q == '\'' || q == '"') && len(inner) >= 2 && inner[len(inner)-1] == q {
		return inner[1 : len(inner)-1], true
	}
	return "", false
}

func joinIPs(ips []corev1.HostIP) string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.IP)
	}
	return strings.Join(out, ",")
}

// resourceValue is what a resourceFieldRef reads: a limit (the node's
// allocatable when the container sets none) or a request, divided by the
// divisor and rounded up.
func (r *resolver) resourceValue(ref *corev1.ResourceFieldSelector) (string, error) {
	c := r.in.Container
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		found := false
		for i := range r.in.Pod.Spec.Containers {
			if r.in.Pod.Spec.Containers[i].Name == ref.ContainerName {
				c, found = &r.in.Pod.Spec.Containers[i], true
			}
		}
		if !found {
			return "", fmt.Errorf("resourceFieldRef names container %q, which the pod does not have", ref.ContainerName)
		}
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not limits.NAME or requests.NAME", ref.Resource)
	}
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q, set := list[corev1.ResourceName(name)]
	if !set && kind == "limits" {
		q, set = r.in.Allocatable[corev1.ResourceName(name)]
	}
	if !set {
		q = resource.Quantity{}
	}
	divisor := resource.MustParse("1")
	if !ref.Divisor.IsZero() {
		divisor = ref.Divisor
	}
	if name == string(corev1.ResourceCPU) {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// ServiceLinks are the variables the kubelet gives every container for
// the Services of its namespace (when the pod enables service links) and
// for Service kubernetes of namespace default (always): NAME_SERVICE_HOST,
// NAME_SERVICE_PORT, NAME_SERVICE_PORT_PORTNAME and Docker's link
// variables NAME_PORT, NAME_PORT_80_TCP, _PROTO, _PORT and _ADDR.
func ServiceLinks(services []corev1.Service, ns string, links bool) map[string]string {
	out := map[string]string{}
	for i := range services {
		s := &services[i]
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		master := s.Namespace == "default" && s.Name == "kubernetes"
		if !master && (s.Namespace != ns || !links) {
			continue
		}
		prefix := linkName(s.Name)
		out[prefix+"_SERVICE_HOST"] = ip
		out[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out[prefix+"_SERVICE_PORT_"+linkName(p.Name)] = strconv.Itoa(int(p.Port))
			}
		}
		for j, p := range s.Spec.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			port := strconv.Itoa(int(p.Port))
			url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, port)
			if j == 0 {
				out[prefix+"_PORT"] = url
			}
			pp := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
			out[pp] = url
			out[pp+"_PROTO"] = strings.ToLower(proto)
			out[pp+"_PORT"] = port
			out[pp+"_ADDR"] = ip
		}
	}
	return out
}

// linkName is a Service or port name as a variable name: upper case, - and
// . as _, and a leading digit behind an _.
func linkName(s string) string {
	n := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(s))
	if n != "" && n[0] >= '0' && n[0] <= '9' {
		n = "_" + n
	}
	return n
}

func optional(b *bool) bool { return b != nil && *b }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
