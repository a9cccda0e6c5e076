package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The cluster's DNS, as kubeadm, kind, k3s and the managed clusters name
// its Service (CoreDNS kept kube-dns's name), and the kubelet's default
// cluster domain.
const (
	dnsNamespace  = "kube-system"
	dnsService    = "kube-dns"
	defaultDomain = "cluster.local"
)

// placeholderNameserver is the address resolv.conf names when the cluster
// DNS Service's ClusterIP cannot be read: the stack answers it all the same.
var placeholderNameserver = netip.MustParseAddr("198.18.0.53")

// ClusterDNS is the ClusterIP of the cluster's DNS Service, when the
// developer may read it: kube-system/kube-dns, else the Service there
// labeled k8s-app=kube-dns (as CoreDNS's charts label theirs under other
// names), else the one there that serves port 53. Invalid when there is
// none or it may not be read: the sandbox then names a placeholder
// address and the pod resolves kube-dns by name, which needs that
// Service too. (A cluster whose kubelets give pods another nameserver,
// such as a node-local cache, is not found this way: the copy pod's own
// resolv.conf would be the exact answer.)
func ClusterDNS(ctx context.Context, client kubernetes.Interface) (netip.Addr, error) {
	svc, err := client.CoreV1().Services(dnsNamespace).Get(ctx, dnsService, metav1.GetOptions{})
	switch {
	case err == nil:
		return clusterIP(svc), nil
	case apierrors.IsForbidden(err):
		return netip.Addr{}, nil
	case !apierrors.IsNotFound(err):
		return netip.Addr{}, fmt.Errorf("reading service %s/%s (the cluster's DNS): %w", dnsNamespace, dnsService, err)
	}
	list, err := client.CoreV1().Services(dnsNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return netip.Addr{}, nil // not the developer's to list: the placeholder
	}
	for i := range list.Items {
		if list.Items[i].Labels["k8s-app"] == dnsService {
			if a := clusterIP(&list.Items[i]); a.IsValid() {
				return a, nil
			}
		}
	}
	for i := range list.Items {
		for _, p := range list.Items[i].Spec.Ports {
			if p.Port == 53 {
				if a := clusterIP(&list.Items[i]); a.IsValid() {
					return a, nil
				}
			}
		}
	}
	return netip.Addr{}, nil
}

func clusterIP(svc *corev1.Service) netip.Addr {
	a, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// PodDNS is the resolver the pod has, as the kubelet writes its
// resolv.conf: for ClusterFirst (the default) the cluster's DNS, the
// search path NAMESPACE.svc.DOMAIN svc.DOMAIN DOMAIN and ndots:5, with
// the pod's dnsConfig added; for None, the pod's dnsConfig alone. Default
// (the node's resolver) cannot be copied: the sandbox uses the cluster's
// DNS without a search path, and says so in note.
func PodDNS(pod *corev1.Pod, clusterDNS netip.Addr) (dns DNS, note string) {
	domain := defaultDomain
	dns.Nameserver = clusterDNS
	if clusterDNS.IsValid() {
		dns.Upstream = net.JoinHostPort(clusterDNS.String(), "53")
	} else {
		dns.Nameserver = placeholderNameserver
		dns.Upstream = net.JoinHostPort(dnsService+"."+dnsNamespace+".svc."+domain, "53")
	}
	policy := pod.Spec.DNSPolicy
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault // as the kubelet does
	}
	switch policy {
	case corev1.DNSNone:
		dns.Search, dns.Options = nil, nil
	case corev1.DNSDefault:
		note = "the pod uses its node's resolver (dnsPolicy " + string(pod.Spec.DNSPolicy) + "), which cannot be copied: the sandbox asks the cluster's DNS, without a search path"
	default:
		ns := pod.Namespace
		dns.Search = []string{ns + ".svc." + domain, "svc." + domain, domain}
		dns.Options = []string{"ndots:5"}
	}
	if c := pod.Spec.DNSConfig; c != nil {
		if len(c.Nameservers) > 0 {
			if a, err := netip.ParseAddr(c.Nameservers[0]); err == nil {
				dns.Nameserver, dns.Upstream = a, net.JoinHostPort(a.String(), "53")
			}
		}
		for _, s := range c.Searches {
			if !containsString(dns.Search, s) {
				dns.Search = append(dns.Search, s)
			}
		}
		for _, o := range c.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			dns.Options = setOption(dns.Options, o.Name, opt)
		}
	}
	return dns, note
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// setOption replaces the option called name, or adds it.
func setOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if o == name || strings.HasPrefix(o, name+":") {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

// VolumeMounts are the container's volumes, as podfiles wrote them under
// root, mounted at their mountPaths; a mount whose files are not there
// (a volume podfiles could not copy) is left out.
func VolumeMounts(root string, c *corev1.Container) []Mount {
	var mounts []Mount
	for _, m := range c.VolumeMounts {
		target := filepath.Clean("/" + m.MountPath)
		src := filepath.Join(root, strings.TrimPrefix(target, "/"))
		if !exists(src) {
			continue
		}
		mounts = append(mounts, Mount{Source: src, Target: target})
	}
	return mounts
}
