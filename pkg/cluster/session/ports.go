package session

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cluster/workload"
)

func portKey(p *corev1.ServicePort) string { return workload.PortKey(p) }

func portKeys(ports []*corev1.ServicePort) []string {
	keys := make([]string, len(ports))
	for i, p := range ports {
		keys[i] = portKey(p)
	}
	return keys
}

// selectPorts resolves the requested Service ports (names or numbers; none:
// the Service's only port), refusing one asked for twice.
func selectPorts(svc *corev1.Service, want []string) ([]*corev1.ServicePort, error) {
	if len(want) == 0 {
		want = []string{""}
	}
	var out []*corev1.ServicePort
	seen := map[string]string{}
	for _, w := range want {
		p, err := workload.SelectPort(svc, w)
		if err != nil {
			return nil, err
		}
		if earlier, ok := seen[portKey(p)]; ok {
			return nil, fmt.Errorf("service %s port %s is given twice (as %q and %q): give each port once", svc.Name, portKey(p), earlier, w)
		}
		seen[portKey(p)] = w
		out = append(out, p)
	}
	return out, nil
}

// joinedPorts are the session ports a joining developer takes: those asked
// for, or every port of the session when none was.
func joinedPorts(rec *Record, want []string) []string {
	if len(want) == 0 {
		return rec.PortKeys()
	}
	return want
}

// joinablePorts refuses to join a session for a port its copy has no
// listener for.
func joinablePorts(svc *corev1.Service, rec *Record, want []string) error {
	if len(want) == 0 && len(rec.More) > 0 {
		return fmt.Errorf("service %s is intercepted on ports %s: say which with -r, or -p LOCAL:REMOTE for each", svc.Name, strings.Join(rec.PortKeys(), ", "))
	}
	for _, w := range want {
		i := workload.PortIndex(svc, w)
		if i >= 0 {
			if _, ok := rec.PortEntryOf(portKey(&svc.Spec.Ports[i])); ok {
				continue
			}
		}
		return fmt.Errorf("service %s is already intercepted on port(s) %s, and its copy has no listener for port %s: "+
			"intercept among those ports, or wait until the others have closed theirs", svc.Name, strings.Join(rec.PortKeys(), ", "), w)
	}
	return nil
}
