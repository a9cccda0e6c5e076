// Package wire holds what the two binaries agree on without a tunnel between
// them: the headers of the kubelet's probe and of the entry check. Its
// subpackages are the rest of the wire: the control protocol (tunnel), what
// marks a developer's requests (route) and the HTTP plumbing both ends of an
// intercepted request share (httpwire).
package wire

// ProbeHeader marks a request a sidecar answers itself (204, naming its pod
// in ProbePodHeader) instead of routing it: it proves that traffic sent to
// the Service's ClusterIP reaches a sidecar.
const (
	ProbeHeader    = "X-Kubectl-Intercept-Probe"
	ProbePodHeader = "X-Kubectl-Intercept-Pod"
)
