package preview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

// Via is an entry point given as --preview-via: svc/NAME[.NAMESPACE][:PORT]
// or ingress/NAME[.NAMESPACE].
type Via struct {
	Kind, Name, Namespace, Port string
}

// ParseVia reads --preview-via.
func ParseVia(s string) (Via, error) {
	kind, rest, ok := strings.Cut(s, "/")
	switch kind {
	case "svc", "service", "services":
		kind = "service"
	case "ingress", "ingresses", "ing":
		kind = "ingress"
	default:
		ok = false
	}
	if !ok {
		return Via{}, fmt.Errorf("--preview-via %q: give svc/NAME[.NAMESPACE][:PORT] or ingress/NAME[.NAMESPACE]", s)
	}
	target, port, hasPort := strings.Cut(rest, ":")
	name, ns, _ := strings.Cut(target, ".")
	switch {
	case len(validation.IsDNS1123Label(name)) > 0:
		return Via{}, fmt.Errorf("--preview-via %q: %q is not a name", s, name)
	case ns != "" && len(validation.IsDNS1123Label(ns)) > 0:
		return Via{}, fmt.Errorf("--preview-via %q: %q is not a namespace", s, ns)
	case hasPort && (port == "" || kind == "ingress"):
		return Via{}, fmt.Errorf("--preview-via %q: a port goes only with svc/NAME, as svc/NAME:PORT", s)
	}
	return Via{Kind: kind, Name: name, Namespace: ns, Port: port}, nil
}

// ServiceTarget is a preview into a Service: each connection is a
// port-forward to a ready pod behind it, at the port's targetPort, and the
// Host header is what a caller inside the cluster sends (or host, when
// given).
func ServiceTarget(cs kubernetes.Interface, dial session.PodDialer, ns, name, port, host string) Target {
	if host == "" {
		host = name + "." + ns + ".svc"
	}
	return Target{Host: host, Dial: func(ctx context.Context) (io.ReadWriteCloser, error) {
		pod, target, err := servingPod(ctx, cs, ns, name, port)
		if err != nil {
			return nil, err
		}
		return dial(ctx, ns, pod, target)
	}}
}

// IngressTarget resolves an Ingress to the Service its first rule sends to,
// with the rule's host as the Host header.
func IngressTarget(ctx context.Context, cs kubernetes.Interface, dial session.PodDialer, ns, name string) (Target, error) {
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Target{}, fmt.Errorf("reading ingress %s/%s for --preview-via: %w", ns, name, err)
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if b := p.Backend.Service; b != nil {
				port := b.Port.Name
				if port == "" {
					port = strconv.Itoa(int(b.Port.Number))
				}
				return ServiceTarget(cs, dial, ns, b.Name, port, r.Host), nil
			}
		}
	}
	if b := ing.Spec.DefaultBackend; b != nil && b.Service != nil {
		port := b.Service.Port.Name
		if port == "" {
			port = strconv.Itoa(int(b.Service.Port.Number))
		}
		return ServiceTarget(cs, dial, ns, b.Service.Name, port, ""), nil
	}
	return Target{}, fmt.Errorf("ingress %s/%s sends to no Service: give the entry point as --preview-via svc/NAME", ns, name)
}

// servingPod picks a ready pod behind the Service and the pod port the
// Service's port reaches on it.
func servingPod(ctx context.Context, cs kubernetes.Interface, ns, name, port string) (string, int, error) {
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("reading service %s/%s: %w", ns, name, err)
	}
	sp, err := workload.SelectPort(svc, port)
	if err != nil {
		return "", 0, err
	}
	if len(svc.Spec.Selector) == 0 {
		return "", 0, fmt.Errorf("service %s/%s has no selector: no pod to reach it through", ns, name)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return "", 0, fmt.Errorf("listing the pods of service %s/%s: %w", ns, name, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || !session.PodReady(p) {
			continue
		}
		if n, ok := podPort(p, sp.TargetPort, sp.Port); ok {
			return p.Name, n, nil
		}
	}
	return "", 0, errors.New("service " + ns + "/" + name + " has no ready pod")
}

// podPort is the port number a targetPort means on a pod.
func podPort(p *corev1.Pod, tp intstr.IntOrString, servicePort int32) (int, bool) {
	switch {
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return int(tp.IntVal), true
	case tp.Type == intstr.Int:
		return int(servicePort), true
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal {
				return int(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// Listen opens the preview's local address: 127.0.0.1:port (0: any free).
func Listen(port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("opening the preview's address: %w; pick another with --preview-port", err)
	}
	return ln, nil
}
