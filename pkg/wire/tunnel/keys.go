package tunnel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// A developer's owner key never leaves their CLI. What a pod gets is
// derived from it for that pod alone:
//
//   - PodKey(key, pod UID, control port) owns the developer's routes on
//     that pod (a route's Client there) and is what a relay proves on it
//     (admit). It is sent only over the developer's own port-forward to
//     that pod, which the CLI chose by its owner chain; it works on no
//     other pod (another UID) and in no other intercept (another key).
//   - OwnerTag(key) names the developer across pods, so `status` and the
//     last one out can tell their own routes (Mine) without a key. It
//     proves nothing: no registration, replacement or admission takes it.
//
// A relay proves a pod key to a peer by passing the peer's challenge to
// the CLI, which answers it (peerMAC): the relay itself holds no key of
// another pod, and the pod network carries a fresh challenge and its
// answer, nothing that works twice.

// PodKey is the owner key of a developer's routes on the pod whose UID is
// podUID, for the sidecar's control port port.
func PodKey(key, podUID string, port int) string {
	if key == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("kubectl-intercept pod key v1\x00"))
	m.Write([]byte(podUID))
	m.Write([]byte{0})
	m.Write([]byte(strconv.Itoa(port)))
	return hex.EncodeToString(m.Sum(nil))
}

// OwnerTag is the name of an owner key that `routes` marks Mine by.
func OwnerTag(key string) string {
	if key == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("kubectl-intercept owner tag v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// maxTag bounds the tag a sidecar keeps per session.
const maxTag = 128
