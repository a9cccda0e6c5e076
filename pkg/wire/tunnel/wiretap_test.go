package tunnel

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// A wiretap is never installed by a sidecar that predates it (it would
// take the requests as an intercept): registering fails, saying what to
// do; a current sidecar installs it as sent.
func TestRegisterWiretapNeedsASidecarThatTaps(t *testing.T) {
	r := route.Route{Header: "x-dev", Value: "alice", Wiretap: true}
	old := &unnarrowedSidecar{}
	a, b := net.Pipe()
	go old.serve(t, a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(r)
	c.Close()
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "web-copy-old is older than this kubectl-intercept: it has no wiretap") {
		t.Fatalf("wiretap on an old sidecar: %v", err)
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	if len(old.installed) > 0 {
		t.Fatalf("the old sidecar installed %q", old.installed)
	}

	table := &fakeTable{routes: map[string]DialFunc{}}
	srv := &Server{Pod: "p1", Routes: table}
	a, b = net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err = NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Register(r); err != nil {
		t.Fatalf("wiretap on a current sidecar: %v", err)
	}
	if got := table.List(); len(got) != 1 || got[0] != r {
		t.Fatalf("a current sidecar holds %v", got)
	}
}
