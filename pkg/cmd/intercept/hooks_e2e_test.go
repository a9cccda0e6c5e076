//go:build e2ehooks

package intercept

import (
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

// The e2e build has the hidden --ngrok-connect-url the ngrok test needs.
func TestE2EBuildHasNgrokConnectURL(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdIntercept(factory.NewFor(fake.NewClientset(), nil, "default"), streams)
	fl := cmd.Flags().Lookup("ngrok-connect-url")
	if fl == nil || !fl.Hidden {
		t.Fatalf("--ngrok-connect-url in the e2ehooks build: %+v, want a hidden flag", fl)
	}
}
