// Package version holds what the build stamps into the binaries.
package version

import "strings"

// Set at build time with -ldflags "-X ...".
var (
	// Version is the release, e.g. v0.1.0; "dev" for a local build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
	// ProxyImageRepository is where the sidecar image of each release is
	// published; the tag is the version.
	ProxyImageRepository = "ghcr.io/kubectl-intercept/intercept-proxy"
	// ProxyImageDigest is the digest (sha256:…) of this release's sidecar
	// image, when the build knows it: the release computes it before
	// building the plugin (`mkimage digest`). Empty in local builds.
	ProxyImageDigest = ""
)

// ProxyImage is the sidecar image of this version: by tag and, when the
// build knows it, by digest, so a tag moved in the registry cannot put
// another image in the copy's pods.
func ProxyImage() string {
	tag := Version
	if tag == "dev" {
		tag = "latest"
	}
	ref := ProxyImageRepository + ":" + tag
	if validDigest(ProxyImageDigest) {
		ref += "@" + ProxyImageDigest
	}
	return ref
}

// validDigest tells whether d is a sha256 digest as registries write it.
func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
