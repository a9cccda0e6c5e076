//go:build e2ehooks

package factory

import (
	"testing"

	"k8s.io/client-go/rest"
)

// In a build with the e2ehooks tag, KUBECTL_INTERCEPT_FAULT_AFTER wraps the
// API transport (the crash tests in test/e2e exercise what it does).
func TestE2EBuildHasFaultHook(t *testing.T) {
	t.Setenv(EnvFaultAfter, "1")
	cfg := &rest.Config{}
	injectFault(cfg)
	if cfg.WrapTransport == nil {
		t.Fatal("KUBECTL_INTERCEPT_FAULT_AFTER=1 left the transport unwrapped in the e2ehooks build")
	}
}
