package local

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/podenv"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/sandbox"
)

// objects reads ConfigMaps and Secrets for podenv, with errors that say
// which optional rule of docs/rbac.yaml a forbidden read needs.
type objects struct {
	cs kubernetes.Interface
	ns string
}

func (o objects) ConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	cm, err := o.cs.CoreV1().ConfigMaps(o.ns).Get(ctx, name, metav1.GetOptions{})
	return cm, readError(err, "configmaps", name)
}

func (o objects) Secret(ctx context.Context, name string) (*corev1.Secret, error) {
	s, err := o.cs.CoreV1().Secrets(o.ns).Get(ctx, name, metav1.GetOptions{})
	return s, readError(err, "secrets", name)
}

// readError keeps NotFound as it is (an optional reference may be
// missing) and names the rule a forbidden read needs.
func readError(err error, resource, name string) error {
	if err == nil || apierrors.IsNotFound(err) {
		return err
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%w (the container's environment reads %s %q: add the optional rule \"get %s\" of docs/rbac.yaml to your Role)", err, resource, name, resource)
	}
	return err
}

// container picks the container whose environment the local process gets:
// --container, or the one serving the intercepted port.
func (o *Options) container(spec *corev1.PodSpec, svc *corev1.Service) (*corev1.Container, error) {
	if o.Container != "" {
		var names []string
		for i := range spec.Containers {
			c := &spec.Containers[i]
			if c.Name == o.Container && c.Name != workload.SidecarName {
				return c, nil
			}
			if c.Name != workload.SidecarName {
				names = append(names, c.Name)
			}
		}
		return nil, fmt.Errorf("--container %s: the workload behind service %s has no such container (it has %s)", o.Container, o.Service, strings.Join(names, ", "))
	}
	sp, err := workload.SelectPort(svc, o.RemotePort)
	if err != nil {
		return nil, err
	}
	c := workload.ServingContainer(spec, sp)
	if c == nil {
		return nil, fmt.Errorf("the workload behind service %s has no container", o.Service)
	}
	return c, nil
}

// CheckEnv resolves the environment against the template before anything
// changes: a missing required ConfigMap key, Secret or --container is
// reported while nothing has been made.
func (o *Options) CheckEnv(ctx context.Context) error {
	if !o.WantsEnv() {
		return nil
	}
	tmpl, svc, err := session.EnvTemplate(ctx, o.Client, o.Dynamic, o.Namespace, o.Service)
	if err != nil {
		return err
	}
	c, err := o.container(&tmpl.Spec, svc)
	if err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Namespace = o.Namespace
	if o.Sandbox && pod.Spec.Hostname != "" {
		if err := sandbox.CheckHostname(podHostname(pod)); err != nil {
			return fmt.Errorf("--sandbox: %w; nothing was changed in the cluster", err)
		}
	}
	_, err = podenv.Resolve(ctx, podenv.Input{Pod: pod, Container: c, Allocatable: corev1.ResourceList{}, Objects: objects{o.Client, o.Namespace}})
	if err != nil {
		return fmt.Errorf("the environment of the intercepted container: %w; nothing was changed", err)
	}
	return nil
}

// resolveEnv resolves the environment with the verified copy's template
// and a copy pod's fields; the variables that could run code or change
// tools on this machine are left out (podenv.Withhold) unless --env-allow
// names them. It returns the pod and the container.
func (o *Options) resolveEnv(ctx context.Context, st *session.Started, podName string, ls *Setup) (*corev1.Pod, *corev1.Container, error) {
	cs := o.Client
	pod, err := session.EnvPod(ctx, cs, o.Namespace, st.Record, podName)
	if err != nil {
		return nil, nil, err
	}
	c, err := o.container(&pod.Spec, st.Service)
	if err != nil {
		return nil, nil, err
	}
	in := podenv.Input{Pod: pod, Container: c, Objects: objects{cs, o.Namespace}}
	if in.Services, err = linkedServices(ctx, cs, pod); err != nil {
		return nil, nil, err
	}
	if needsAllocatable(c) {
		node, err := cs.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("reading node %s: the container's environment reads a resource limit it does not set, which is the node's allocatable: %w (add the optional ClusterRole of docs/rbac.yaml for nodes)", pod.Spec.NodeName, err)
		}
		in.Allocatable = node.Status.Allocatable
	}
	vars, err := podenv.Resolve(ctx, in)
	if err != nil {
		return nil, nil, fmt.Errorf("the environment of container %s: %w", c.Name, err)
	}
	ls.podEnv = vars
	ls.env, ls.Withheld = podenv.Withhold(vars, o.EnvAllow)
	ls.EnvFrom = describeSources(c.Name, pod.Name, ls.env)
	return pod, c, nil
}

// DescribeWithheld is the line that names the variables left out.
func DescribeWithheld(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return fmt.Sprintf("Left out of the environment, as they could run code or change tools on this machine: %s (take one in with --env-allow NAME).", strings.Join(quoted, ", "))
}

// linkedServices are the Services whose link variables the kubelet gives
// the pod: its namespace's (when links are on) and default/kubernetes.
func linkedServices(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) ([]corev1.Service, error) {
	var out []corev1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, err := cs.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("listing the services of namespace %s (their link variables): %w", pod.Namespace, err)
		}
		out = append(out, list.Items...)
	}
	// Every pod gets Service kubernetes' variables; a Role in one namespace
	// may not read it: then they are left out, as for a static pod.
	if k, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		out = append(out, *k)
	}
	return out, nil
}

func needsAllocatable(c *corev1.Container) bool {
	for _, e := range c.Env {
		if r := e.ValueFrom; r != nil && r.ResourceFieldRef != nil && strings.HasPrefix(r.ResourceFieldRef.Resource, "limits.") {
			name := corev1.ResourceName(strings.TrimPrefix(r.ResourceFieldRef.Resource, "limits."))
			if _, set := c.Resources.Limits[name]; !set {
				return true
			}
		}
	}
	return false
}

// describeSources says how many variables came from where.
func describeSources(container, pod string, vars []podenv.Var) string {
	counts := map[string]int{}
	for _, v := range vars {
		from := v.From
		if strings.HasPrefix(from, "field ") || strings.HasPrefix(from, "resource ") {
			from = "the pod's fields"
		}
		counts[from]++
	}
	var parts []string
	for from, n := range counts {
		parts = append(parts, fmt.Sprintf("%d from %s", n, from))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d variables of container %s as in pod %s (%s)", len(vars), container, pod, strings.Join(parts, ", "))
}

// writeEnvFiles writes --env-file and --env-json, readable by the user
// only (they hold the pod's secrets), each replaced at once, never through
// a symbolic link.
func (o *Options) writeEnvFiles(log Log, vars []podenv.Var) error {
	if o.EnvFile != "" {
		var skipped []string
		err := podenv.WritePrivate(o.EnvFile, func(w io.Writer) (err error) {
			skipped, err = podenv.WriteEnvFile(w, vars)
			return err
		})
		if err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
		if len(skipped) > 0 {
			log.Warn(fmt.Sprintf("--env-file %s leaves out %s: docker's env-file format cannot hold a value with a line break; --env-json has them", o.EnvFile, strings.Join(skipped, ", ")))
		}
	}
	if o.EnvJSON != "" {
		if err := podenv.WritePrivate(o.EnvJSON, func(w io.Writer) error { return podenv.WriteJSON(w, vars) }); err != nil {
			return fmt.Errorf("--env-json: %w", err)
		}
	}
	return nil
}

// proxyEnv are the variables that send a process's connections through
// the local proxy, in the spellings programs read.
func proxyEnv(addr string) []string {
	httpURL, socksURL := "http://"+addr, "socks5h://"+addr
	noProxy := "localhost,127.0.0.1,::1"
	var out []string
	for _, kv := range [][2]string{{"HTTP_PROXY", httpURL}, {"HTTPS_PROXY", httpURL}, {"ALL_PROXY", socksURL}, {"NO_PROXY", noProxy}} {
		out = append(out, kv[0]+"="+kv[1], strings.ToLower(kv[0])+"="+kv[1])
	}
	return out
}

// CommandEnv is the local process's environment: this machine's, with the
// pod's variables over it, then the proxy's. When the proxy runs, its
// variables are the only ones of their names in any spelling (Windows
// reads Http_Proxy as HTTP_PROXY, and the one listed last wins there): a
// pod's value taken in with --env-allow, or this machine's, cannot send
// the command's traffic elsewhere or around the proxy.
func CommandEnv(base []string, vars []podenv.Var, proxy string) []string {
	set := map[string]string{}
	var order []string
	put := func(kv string) {
		k, v, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			order = append(order, k)
		}
		set[k] = v
	}
	for _, kv := range base {
		put(kv)
	}
	for _, kv := range podenv.Environ(vars) {
		put(kv)
	}
	ours := map[string]bool{}
	if proxy != "" {
		for _, kv := range proxyEnv(proxy) {
			k, _, _ := strings.Cut(kv, "=")
			ours[strings.ToUpper(k)] = true
		}
		kept := order[:0]
		for _, k := range order {
			if ours[strings.ToUpper(k)] {
				delete(set, k)
				continue
			}
			kept = append(kept, k)
		}
		order = kept
		for _, kv := range proxyEnv(proxy) {
			put(kv)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+set[k])
	}
	return out
}
