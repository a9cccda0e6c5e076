//go:build !linux

package sandbox

import "runtime"

// Check tells that the sandbox needs Linux, and what this platform gets.
func Check(initArgs []string) error {
	what := "macOS"
	if runtime.GOOS == "windows" {
		what = "Windows"
	}
	if runtime.GOOS != "darwin" && runtime.GOOS != "windows" {
		what = runtime.GOOS
	}
	return &Unavailable{
		Reason: "it needs Linux's user and network namespaces, which " + what + " does not have",
		Remedy: "without --sandbox the command gets the pod's environment, its files under $KUBECTL_INTERCEPT_ROOT (--mount) and the cluster's network through HTTP_PROXY/ALL_PROXY and --forward; or run the plugin in a Linux VM or WSL 2, where --sandbox works",
	}
}
