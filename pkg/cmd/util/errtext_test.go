package util

import (
	"errors"
	"testing"
)

// A sidecar's or the cluster's words inside an error cannot drive the
// terminal: escapes, carriage returns and invalid bytes come out escaped,
// the message's own lines and tabs stay.
func TestErrorTextEscapesWhatCameFromOutside(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain\n\twhat to do", "plain\n\twhat to do"},
		{"pod \x1b]0;owned\x07 refused", `pod \x1b]0;owned\a refused`},
		{"over\rwrite", `over\rwrite`},
		{"bad \xff byte", `bad \xff byte`},
	} {
		if got := ErrorText(errors.New(c.in)); got != c.want {
			t.Errorf("ErrorText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
