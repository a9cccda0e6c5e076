package tunnel

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/yamux"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// unnarrowedSidecar answers control calls as a sidecar from before routes were
// narrowed by path or method: it knows register, and installs what it
// reads of the route; every other operation is unknown to it.
type unnarrowedSidecar struct {
	mu        sync.Mutex
	installed []string
}

func (o *unnarrowedSidecar) serve(t *testing.T, conn net.Conn) {
	sess, err := yamux.Server(conn, Config())
	if err != nil {
		t.Error(err)
		return
	}
	defer sess.Close()
	st, err := sess.AcceptStream()
	if err != nil {
		return
	}
	c := newCodec(st)
	for {
		var req Request
		if err := c.read(&req); err != nil {
			return
		}
		resp := Response{Pod: "web-copy-old"}
		switch req.Op {
		case "register":
			// What it knows of a route: the marker, not the narrowing.
			r := route.Route{Header: req.Route.Header, Value: req.Route.Value, All: req.Route.All}
			o.mu.Lock()
			o.installed = append(o.installed, r.String())
			o.mu.Unlock()
		default:
			resp.fail(coded(CodeUnsupported, "unknown operation %q", req.Op))
		}
		if err := c.write(resp); err != nil {
			return
		}
	}
}

// A route narrowed by path or method is never installed whole by a
// sidecar too old to narrow it (an --all route with a path would take
// every connection): registering fails, saying what to do, and the old
// sidecar holds nothing. A route not narrowed registers there as before.
func TestRegisterNarrowedNeedsASidecarThatNarrows(t *testing.T) {
	for _, tc := range []struct {
		r        route.Route
		narrowed bool
	}{
		{route.Route{All: true, PathPrefix: "/hooks/"}, true},
		{route.Route{Header: "x-dev", Value: "alice", Methods: "POST"}, true},
		{route.Route{Header: "x-dev", Value: "alice", PathRegex: "/api/v[0-9]+"}, true},
		{route.Route{Header: "x-dev", Value: "alice"}, false},
	} {
		old := &unnarrowedSidecar{}
		a, b := net.Pipe()
		go old.serve(t, a)
		c, err := NewClient(b)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Register(tc.r)
		c.Close()
		old.mu.Lock()
		installed := old.installed
		old.mu.Unlock()
		switch {
		case !tc.narrowed && (err != nil || len(installed) != 1):
			t.Errorf("%s on an old sidecar: %v, installed %q", tc.r, err, installed)
		case tc.narrowed && (!errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "web-copy-old is older than this kubectl-intercept") ||
			!strings.Contains(err.Error(), "--path-prefix")):
			t.Errorf("%s on an old sidecar: %v, want ErrUnsupported saying it is older and what to do", tc.r, err)
		case tc.narrowed && len(installed) > 0:
			t.Errorf("%s: the old sidecar installed %q", tc.r, installed)
		}

		// A current sidecar installs it as sent.
		table := &fakeTable{routes: map[string]DialFunc{}}
		srv := &Server{Pod: "p1", Routes: table}
		a, b = net.Pipe()
		go srv.ServeConn(context.Background(), a)
		c, err = NewClient(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Register(tc.r); err != nil {
			t.Errorf("%s on a current sidecar: %v", tc.r, err)
		}
		if got := table.List(); len(got) != 1 || got[0] != tc.r {
			t.Errorf("%s: a current sidecar holds %v", tc.r, got)
		}
		c.Close()
	}
}

// A relay carries a narrowed route to its peer as the developer sent it.
func TestRelayCarriesTheNarrowing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	r := route.Route{All: true, PathPrefix: "/hooks/", Methods: "POST", Owner: "alice@laptop", Client: aliceKey}
	if err := peer.connect(t, ctx).Admit(aliceKey); err != nil {
		t.Fatalf("admit: %v", err)
	}
	c := relay.connect(t, ctx)
	if _, err := c.Register(r); err != nil {
		t.Fatal(err)
	}
	link, err := c.Relay(ctx, "peer", peer.addr, aliceKey)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	routes, err := link.Routes()
	if err != nil || len(routes) != 1 || routes[0].String() != "all traffic path /hooks/* POST" {
		t.Fatalf("the peer's routes through the link: %v %v", routes, err)
	}
}
