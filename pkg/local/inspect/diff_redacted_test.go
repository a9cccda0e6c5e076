package inspect

import (
	"net/http"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// The sidecar's copy holds the cluster's Set-Cookie redacted: the local
// build's own cookie is not a difference, and other headers still are.
func TestWiretapDiffSkipsCredentialsTheSidecarRedacted(t *testing.T) {
	c := Answer{Status: 200, Header: http.Header{"Set-Cookie": {tap.Redacted}, "X-Version": {"1"}}}
	l := Answer{Status: 200, Header: http.Header{"Set-Cookie": {"session=local"}, "X-Version": {"1"}}}
	if d := Compare(c, l, Ignore{}); d.Differs() {
		t.Fatalf("a redacted Set-Cookie differs: %+v", d)
	}
	l.Header.Set("X-Version", "2")
	d := Compare(c, l, Ignore{})
	if !d.Differs() || len(d.Headers) != 1 || d.Headers[0].Name != "X-Version" {
		t.Fatalf("diff %+v, want X-Version alone", d)
	}
}
