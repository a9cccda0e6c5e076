// Package version holds what the build stamps into the binaries.
package version

// Set at build time with -ldflags "-X ...".
var (
	// Version is the release, e.g. v0.1.0; "dev" for a local build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
	// ProxyImageRepository is where the sidecar image of each release is
	// published; the tag is the version.
	ProxyImageRepository = "ghcr.io/kubectl-intercept/intercept-proxy"
)

// ProxyImage is the sidecar image of this version.
func ProxyImage() string {
	tag := Version
	if tag == "dev" {
		tag = "latest"
	}
	return ProxyImageRepository + ":" + tag
}
