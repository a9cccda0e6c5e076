package tunnel

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// peerPod is a sidecar with a control session (the port-forward, a pipe
// here) and a peer port on loopback (the pod network here).
type peerPod struct {
	srv   *Server
	table *fakeTable
	addr  string
}

func newPeerPod(t *testing.T, ctx context.Context, name string) *peerPod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peerPod{table: &fakeTable{routes: map[string]DialFunc{}}, addr: ln.Addr().String()}
	p.srv = &Server{Pod: name, Routes: p.table, Admitted: &Admissions{}}
	go p.srv.ServePeers(ctx, ln)
	return p
}

// connect opens the developer's own tunnel to the pod.
func (p *peerPod) connect(t *testing.T, ctx context.Context) *Client {
	t.Helper()
	a, b := net.Pipe()
	go p.srv.ServeConn(ctx, a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const aliceKey = "alice-owner-key-0123456789abcdef0123"

// The relay carries the developer's route to a peer that admitted them:
// the peer routes to the developer through the relay, lists the route, and
// drops it as soon as the developer's tunnel to the relay closes.
func TestRelayCarriesTheRouteAndDropsIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	r := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: aliceKey}

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
	if err != nil || len(routes) != 1 || routes[0].Value != "alice" {
		t.Fatalf("the peer's routes through the link: %v %v", routes, err)
	}

	// A connection the peer sends to the developer reaches the developer's
	// local port through the relay.
	local, _ := net.Listen("tcp", "127.0.0.1:0")
	defer local.Close()
	go func() {
		conn, err := local.Accept()
		if err != nil {
			return
		}
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Write([]byte("laptop got " + line))
		conn.Close()
	}()
	go c.Serve(ctx, func(ctx context.Context) (net.Conn, error) { return net.Dial("tcp", local.Addr().String()) }, nil)
	dial := peer.table.dial(r.String())
	if dial == nil {
		t.Fatal("the peer holds no route")
	}
	conn, err := dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("hello\n"))
	got, _ := bufio.NewReader(conn).ReadString('\n')
	if got != "laptop got hello\n" {
		t.Fatalf("through the relay: %q", got)
	}
	conn.Close()

	// The developer goes (kill -9 closes the port-forward): the peer drops
	// the route at once.
	c.Close()
	waitFor(t, 2*time.Second, func() bool { return len(peer.table.List()) == 0 }, "the peer still holds the route")
	select {
	case <-link.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the link did not end with the tunnel")
	}
}

// Nobody reaches a peer port without an admitted key: not a caller that
// never admitted, not a relay for another developer, and a relay may
// register nobody's route but the one it proved.
func TestPeerPortRefusesTheUnadmitted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	mallory := route.Route{Header: "X-Dev", Value: "mallory", Client: "mallory-owner-key-0123456789abcdef"}

	c := relay.connect(t, ctx)
	if _, err := c.Register(mallory); err != nil {
		t.Fatal(err)
	}
	_, err := c.Relay(ctx, "peer", peer.addr, mallory.Client)
	var de *DialError
	if !errors.As(err, &de) || de.Reason != DialNotAllowed {
		t.Fatalf("relay without admission: %v, want not-allowed", err)
	}

	// A raw caller on the pod network with a wrong proof.
	conn, err := net.Dial("tcp", peer.addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(`{"mac":"00"}` + "\n"))
	answer, _ := br.ReadString('\n')
	if !strings.Contains(answer, "not admitted") {
		t.Fatalf("a wrong proof got %q", answer)
	}
	conn.Close()

	// A caller that sends an endless line is cut off after a few KiB.
	conn, err = net.Dial("tcp", peer.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	junk := []byte(strings.Repeat("x", 64<<10))
	sent := 0
	for sent < 64<<20 {
		n, err := conn.Write(junk)
		sent += n
		if err != nil {
			break // the sidecar hung up
		}
	}
	if sent >= 64<<20 {
		t.Fatalf("the peer port read %d bytes of one line", sent)
	}
	conn.Close()

	// Admitted as alice, a relay session may not register mallory's route
	// nor admit keys or dial.
	if err := peer.connect(t, ctx).Admit(aliceKey); err != nil {
		t.Fatal(err)
	}
	pc, err := dialPeer(ctx, peer.addr, func(nonce []byte) ([]byte, error) { return peerMAC([]byte(aliceKey), nonce), nil })
	if err != nil {
		t.Fatal(err)
	}
	rc, err := NewClient(pc)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Register(mallory); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a relay registering another developer's route: %v", err)
	}
	if err := rc.Admit(mallory.Client); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("a relay admitting a key: %v", err)
	}
	if _, err := rc.DialCluster(ctx, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "may not dial") {
		t.Fatalf("a relay dialing through a peer: %v", err)
	}
	if len(peer.table.List()) != 0 {
		t.Fatalf("the peer holds %v", peer.table.List())
	}
}

// A peer nobody listens on comes back as a dial failure the CLI can tell
// from a refusal: it falls back to a tunnel of its own.
func TestRelayToAnUnreachablePeer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay := newPeerPod(t, ctx, "relay")
	c := relay.connect(t, ctx)
	if _, err := c.Register(route.Route{Header: "X-Dev", Value: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := c.Relay(ctx, "gone", addr, aliceKey)
	var de *DialError
	if !errors.As(err, &de) || de.Reason != DialRefused {
		t.Fatalf("relay to a closed port: %v, want refused", err)
	}
	if _, err := c.Relay(ctx, "name", "peer.example:80", aliceKey); !errors.As(err, &de) || de.Reason != DialFailed {
		t.Fatalf("relay to a name: %v, want failed", err)
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A flood of admits (anyone who may port-forward) pushes out only keys no
// live relay uses: the developer whose relay holds a route through the
// peer keeps it, and can link again under the same key.
func TestAdmitFloodKeepsKeysInUse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	r := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: aliceKey}
	if err := peer.connect(t, ctx).Admit(aliceKey); err != nil {
		t.Fatal(err)
	}
	c := relay.connect(t, ctx)
	if _, err := c.Register(r); err != nil {
		t.Fatal(err)
	}
	link, err := c.Relay(ctx, "peer", peer.addr, aliceKey)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	flooder := peer.connect(t, ctx)
	for i := range 2 * MaxAdmissions {
		if err := flooder.Admit(strings.Repeat("f", 40) + strconv.Itoa(i)); err != nil {
			t.Fatalf("admit #%d: %v", i, err)
		}
	}
	if routes, err := link.Routes(); err != nil || len(routes) != 1 {
		t.Fatalf("the relayed route after the flood: %v, %v", routes, err)
	}
	// The link drops (a relay restarting): the developer links again
	// under the key the flood did not push out.
	link.Close()
	waitFor(t, 5*time.Second, func() bool { return len(peer.table.List()) == 0 }, "the relayed route gone with its link")
	if _, err := c.Relay(ctx, "peer", peer.addr, aliceKey); err != nil {
		t.Fatalf("relaying again after the flood: %v", err)
	}
}
