package util

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/session"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/portforward"
)

// CutServicePrefix removes the resource prefix a Service argument may carry
// (svc/, service/, services/, service.v1/, and the names `list -o name`
// prints: an intercept and a candidate are named after their Service), the
// one list of them every command and completion reads.
func CutServicePrefix(arg string) (name, prefix string, ok bool) {
	for _, p := range [...]string{"svc/", "service/", "services/", "service.v1/", InterceptNamePrefix, CandidateNamePrefix} {
		if rest, found := strings.CutPrefix(arg, p); found {
			return rest, p, true
		}
	}
	return arg, "", false
}

// ResolveServiceName reads svc/NAME, service/NAME or NAME without asking the
// cluster, so close and status work when the Service is gone.
func ResolveServiceName(f *factory.Factory, arg string) (string, string, error) {
	name, _, _ := CutServicePrefix(arg)
	switch {
	case name == "":
		return "", "", fmt.Errorf("%q names no Service: give svc/NAME", arg)
	case strings.Contains(name, "/"):
		return "", "", fmt.Errorf("%s is not a Service: kubectl intercept works on Services (svc/NAME)", arg)
	}
	return f.Namespace, name, nil
}

// ResolveService turns svc/NAME, service/NAME or NAME into a namespace and
// a Service name the way kubectl resolves resource arguments (it asks the
// cluster, so it runs after Validate).
func ResolveService(f *factory.Factory, arg string) (string, string, error) {
	if name, p, ok := CutServicePrefix(arg); ok && (p == InterceptNamePrefix || p == CandidateNamePrefix) {
		arg = "svc/" + name
	}
	r := resource.NewBuilder(f.ConfigFlags).
		WithScheme(scheme.Scheme, scheme.Scheme.PrioritizedVersionsAllGroups()...).
		NamespaceParam(f.Namespace).DefaultNamespace().
		ResourceNames("services", arg).
		SingleResourceType().
		Do()
	infos, err := r.Infos()
	if err != nil {
		return "", "", fmt.Errorf("finding %s: %w", arg, err)
	}
	if len(infos) != 1 {
		return "", "", fmt.Errorf("%s names %d objects; give one Service", arg, len(infos))
	}
	info := infos[0]
	if kind := info.Mapping.GroupVersionKind.Kind; kind != "Service" {
		return "", "", fmt.Errorf("%s is a %s: kubectl intercept works on Services (svc/NAME)", arg, kind)
	}
	return info.Namespace, info.Name, nil
}

// The prefixes of the names `-o name` prints (kind.group/), which every
// command takes back as a Service argument:
// `kubectl intercept list -o name | xargs -n1 kubectl intercept status`.
const (
	InterceptNamePrefix = "intercept.intercept.kubectl.dev/"
	CandidateNamePrefix = "candidate.intercept.kubectl.dev/"
)

// ClusterOf is the intercept state of the factory's cluster, its sidecars
// asked through pods/portforward.
func ClusterOf(f *factory.Factory) session.Cluster {
	return session.Cluster{Client: f.Client, Dynamic: f.Dynamic, Dial: DialPod(f)}
}

// DialPod reaches a port on a pod's loopback through pods/portforward.
func DialPod(f *factory.Factory) session.PodDialer {
	return func(ctx context.Context, ns, pod string, port int) (io.ReadWriteCloser, error) {
		return portforward.DialPod(ctx, f.RESTConfig, ns, pod, port)
	}
}

// FirstLine is the first line of a message, for a table cell.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Printable makes a string read from the cluster safe for a terminal: one
// with a character that is not Printable (an escape sequence, a newline) is
// shown quoted, with those characters escaped.
func Printable(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return strconv.Quote(s)
		}
	}
	return s
}
