package proxy

import (
	"io"
	"os"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// resolvConfPath is the pod's resolver configuration as the kubelet
// writes it; every container of the pod, the sidecar's too, has the same.
const resolvConfPath = "/etc/resolv.conf"

// readResolvConf reads the pod's resolv.conf for a developer's sandbox
// (tunnel.OpResolvConf).
func readResolvConf() ([]byte, error) { return readResolvConfAt(resolvConfPath) }

// readResolvConfAt reads no more of path than a CLI takes (the tunnel
// cuts the rest at a line's end).
func readResolvConfAt(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, tunnel.MaxResolvConf+1))
}
