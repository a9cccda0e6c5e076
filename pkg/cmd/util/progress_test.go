package util

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// progress, which every command's steps, warnings and lines go through,
// escapes what a sidecar or the cluster put in them.
func TestProgressEscapesWhatItPrints(t *testing.T) {
	var out, errOut bytes.Buffer
	p := NewProgress(&out, &errOut, false)
	p.Step("asking pod evil\x1b[2J")(nil)
	p.Step("asking pod evil\x1b[2J")(errors.New("x"))
	p.Warn("pod p: remote error: \x1b]0;title\x07 done\nforged")
	p.Infof("Ended your intercept of service %s; %d intercept(s) by others are live (%s).", "shop/web", 1, "eve\x1b[31m")
	p.Infof("remote says %v", errors.New("\x9bbad\xc2\x9b"))
	got := out.String() + errOut.String()
	if strings.ContainsAny(got, "\x1b\x07") || strings.Contains(got, "\xc2\x9b") || strings.Contains(got, "\nforged") {
		t.Fatalf("a control character reached the terminal:\n%q", got)
	}
	for _, want := range []string{`evil\x1b[2J`, `remote error: \x1b]0;title\a done\nforged`, `"eve\x1b[31m"`, `shop/web;`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in:\n%s", want, got)
		}
	}
}
