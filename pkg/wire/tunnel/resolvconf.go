package tunnel

import (
	"bytes"
	"errors"
	"fmt"
)

// OpResolvConf asks the sidecar for its pod's /etc/resolv.conf (the
// sidecar container shares the pod's): the nameservers, search path and
// options the kubelet gave the pod, whatever its dnsPolicy, node-local
// caches included. The sandbox gives its command the same resolver. A
// sidecar older than this operation answers CodeUnsupported.
const OpResolvConf = "resolvConf"

// MaxResolvConf bounds the resolv.conf a sidecar sends and a CLI takes: a
// kubelet's is a few hundred bytes (three nameservers, six search domains).
const MaxResolvConf = 8 << 10

// ResolvConf returns the pod's /etc/resolv.conf as its sidecar reads it,
// cut to MaxResolvConf bytes. The text comes from the pod: the caller
// checks every field before using it. A sidecar too old to read it gives
// ErrUnsupported.
func (c *Client) ResolvConf() (string, error) {
	resp, err := c.call(Request{Op: OpResolvConf})
	if errors.Is(err, ErrUnsupported) {
		return "", fmt.Errorf("%w: the sidecar in pod %s is older than this kubectl-intercept: it cannot read the pod's resolv.conf", ErrUnsupported, resp.Pod)
	}
	if err != nil {
		return "", err
	}
	return cutResolvConf([]byte(resp.ResolvConf)), nil
}

// resolvConf answers OpResolvConf.
func (s *Server) resolvConf(resp *Response) {
	if s.ResolvConf == nil {
		resp.fail(coded(CodeUnsupported, "this sidecar cannot read the pod's resolv.conf"))
		return
	}
	b, err := s.ResolvConf()
	if err != nil {
		resp.fail(coded(CodeFailed, "reading the pod's resolv.conf: %v", err))
		return
	}
	resp.ResolvConf = cutResolvConf(b)
}

// cutResolvConf cuts b to MaxResolvConf bytes, at the end of a line when
// it is longer, so no line arrives half read.
func cutResolvConf(b []byte) string {
	if len(b) <= MaxResolvConf {
		return string(b)
	}
	b = b[:MaxResolvConf]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	return string(b)
}
