package tunnel

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// resolvConfClient is a client of a sidecar whose ResolvConf is read.
func resolvConfClient(t *testing.T, read func() ([]byte, error)) *Client {
	t.Helper()
	srv := &Server{Pod: "p1", Routes: &fakeTable{routes: map[string]DialFunc{}}, ResolvConf: read}
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.ServeConn(ctx, a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The CLI gets the pod's resolv.conf as the sidecar reads it; a sidecar
// older than the operation says so with ErrUnsupported (the CLI then
// falls back to guessing the cluster's DNS); a read that fails is
// ErrFailed with the reason.
func TestResolvConf(t *testing.T) {
	const conf = "search ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
	got, err := resolvConfClient(t, func() ([]byte, error) { return []byte(conf), nil }).ResolvConf()
	if err != nil || got != conf {
		t.Fatalf("ResolvConf() = %q, %v; want %q", got, err, conf)
	}

	_, err = resolvConfClient(t, nil).ResolvConf()
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "older than this kubectl-intercept") {
		t.Fatalf("an older sidecar: %v, want ErrUnsupported saying it is older", err)
	}

	_, err = resolvConfClient(t, func() ([]byte, error) { return nil, errors.New("permission denied") }).ResolvConf()
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a failed read: %v, want ErrFailed with the reason", err)
	}
}

// A resolv.conf past MaxResolvConf arrives cut at a line's end, whichever
// end cut it: a sidecar of this version cuts it, a CLI cuts what an
// altered sidecar sends.
func TestResolvConfIsBounded(t *testing.T) {
	line := "search " + strings.Repeat("a", 90) + "\n"
	big := strings.Repeat(line, 2*MaxResolvConf/len(line))
	got, err := resolvConfClient(t, func() ([]byte, error) { return []byte(big), nil }).ResolvConf()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > MaxResolvConf || !strings.HasSuffix(got, "\n") || len(got) < MaxResolvConf-len(line) {
		t.Fatalf("got %d bytes ending %q, want at most %d ending at a line's end", len(got), got[len(got)-5:], MaxResolvConf)
	}
	if s := cutResolvConf([]byte(strings.Repeat("x", MaxResolvConf+1))); s != "" {
		t.Fatalf("one line past the bound: got %d bytes, want none", len(s))
	}
}
