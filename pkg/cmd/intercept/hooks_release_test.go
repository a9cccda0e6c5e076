//go:build !e2ehooks

package intercept

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/cmd/factory"
)

// The release build refuses the e2e suite's --ngrok-connect-url: nobody can
// point a released plugin's ngrok agent at another service.
func TestReleaseBuildRefusesNgrokConnectURL(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmdIntercept(factory.NewFor(fake.NewClientset(), nil, "default"), streams)
	cmd.SetArgs([]string{"svc/demo", "-l", "3000", "--ngrok-connect-url", "127.0.0.1:1"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --ngrok-connect-url") {
		t.Fatalf("--ngrok-connect-url: %v, want unknown flag", err)
	}
}
