package inspect

import (
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// A credential the sidecar held back from a copy is as redacted in a
// record as one the inspector redacted: replay leaves it out and names it
// (kept with --inspect-show-secrets, the sidecar's placeholder would
// otherwise be sent as the credential).
func TestReplayCountsTheSidecarsPlaceholderAsRedacted(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{[]string{Redacted}, true},
		{[]string{tap.Redacted}, true},
		{[]string{tap.Redacted, Redacted}, true},
		{[]string{"Bearer x"}, false},
		{[]string{tap.Redacted, "Bearer x"}, false},
		{nil, false},
	} {
		if got := allRedacted(c.values); got != c.want {
			t.Errorf("allRedacted(%q) = %v, want %v", c.values, got, c.want)
		}
	}
}
