//go:build !e2ehooks

package factory

import "k8s.io/client-go/rest"

// injectFault does nothing in the release build: the crash tests' hook
// (fault.go) exists only in a plugin built with the e2ehooks tag.
func injectFault(*rest.Config) {}
