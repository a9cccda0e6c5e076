package version

import "testing"

// A release that knows its sidecar image's digest references the image by
// it; a malformed digest is never written into a pod spec.
func TestProxyImage(t *testing.T) {
	defer func(v, d string) { Version, ProxyImageDigest = v, d }(Version, ProxyImageDigest)
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ version, digest, want string }{
		{"dev", "", ProxyImageRepository + ":latest"},
		{"v0.3.0", "", ProxyImageRepository + ":v0.3.0"},
		{"v0.3.0", digest, ProxyImageRepository + ":v0.3.0@" + digest},
		{"v0.3.0", "sha256:short", ProxyImageRepository + ":v0.3.0"},
		{"v0.3.0", "md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ProxyImageRepository + ":v0.3.0"},
	} {
		Version, ProxyImageDigest = tc.version, tc.digest
		if got := ProxyImage(); got != tc.want {
			t.Errorf("version %s digest %q: %s, want %s", tc.version, tc.digest, got, tc.want)
		}
	}
}
