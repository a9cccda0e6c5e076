package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// ListOwned makes the fake table mark routes as a sidecar's does.
func (f *fakeTable) ListOwned(key string) []route.Route {
	out := f.List()
	for i := range out {
		out[i].Mine = key != "" && subtle.ConstantTimeCompare([]byte(out[i].Client), []byte(key)) == 1
		out[i].Client, out[i].Secret = "", ""
	}
	return out
}

// tap is the pod network between a relay and a peer, recording every
// byte both ways.
type tap struct {
	addr string
	mu   sync.Mutex
	up   bytes.Buffer // relay to peer
	down bytes.Buffer // peer to relay
}

func newTap(t *testing.T, to string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	tp := &tap{addr: ln.Addr().String()}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			cp := func(dst, src net.Conn, rec *bytes.Buffer) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						tp.mu.Lock()
						rec.Write(buf[:n])
						tp.mu.Unlock()
						if _, err := dst.Write(buf[:n]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			go cp(out, in, &tp.up)
			go cp(in, out, &tp.down)
		}
	}()
	return tp
}

func (tp *tap) seen() string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.up.String() + tp.down.String()
}

// The relay carries a developer's route to a peer without putting on the
// pod network anything that works twice or elsewhere: not the owner key,
// not the relay's pod key, not the peer's, not the ngrok secret. The peer
// files the route under its own pod key, which the relay never held, and
// a replay of the proof the wire carried is refused.
func TestRelayCarriesNoKeyOnThePodNetwork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const owner = "alice-raw-owner-key-0123456789abcdef0123456789"
	relayKey, peerKey := PodKey(owner, "uid-of-the-relay", 7001), PodKey(owner, "uid-of-the-peer", 7001)
	if relayKey == peerKey || len(peerKey) < route.MinClient || PodKey(owner, "uid-of-the-peer", 7002) == peerKey ||
		PodKey("bob-raw-owner-key-0123456789abcdef0123456789", "uid-of-the-peer", 7001) == peerKey {
		t.Fatal("pod keys are not per pod, port and owner")
	}
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	wire := newTap(t, peer.addr)
	const secret = "ngrok-secret-0123456789abcdef"
	r := route.Route{Header: "X-Dev", Value: "alice", Owner: "alice@laptop", Client: relayKey,
		Remote: "https://alice.ngrok.example", Secret: secret}

	if err := peer.connect(t, ctx).Admit(peerKey); err != nil {
		t.Fatal(err)
	}
	c := relay.connect(t, ctx)
	if _, err := c.RegisterTagged(r, OwnerTag(owner)); err != nil {
		t.Fatal(err)
	}
	link, err := c.Relay(ctx, "peer", wire.addr, peerKey)
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	defer link.Close()
	routes, err := link.Routes()
	if err != nil || len(routes) != 1 || !routes[0].Mine {
		t.Fatalf("the peer's routes through the link: %+v %v", routes, err)
	}
	seen := wire.seen()
	for name, v := range map[string]string{"the owner key": owner, "the relay's pod key": relayKey, "the peer's pod key": peerKey,
		"the ngrok secret": secret, "the ngrok endpoint": r.Remote} {
		if strings.Contains(seen, v) {
			t.Errorf("%s crossed the pod network", name)
		}
	}
	held := peer.table.List()
	if len(held) != 1 || held[0].Client != peerKey || held[0].Secret != "" || held[0].Remote != "" {
		t.Fatalf("the peer holds %+v, want the route under its own pod key, without the remote endpoint", held)
	}

	// Someone who read the wire replays the proof it carried.
	var proof string
	for _, line := range strings.Split(seen, "\n") {
		if strings.HasPrefix(line, `{"mac":`) {
			proof = line
		}
	}
	if proof == "" {
		t.Fatal("no proof on the wire")
	}
	conn, err := net.Dial("tcp", peer.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, proof+"\n")
	if answer, _ := br.ReadString('\n'); !strings.Contains(answer, "not admitted") {
		t.Fatalf("a replayed proof got %q", answer)
	}
}

// A relay of an older CLI, which cannot answer the peer's challenge
// itself, is refused rather than served with a key.
func TestRelayWithoutTheCLIsProofIsRefused(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay, peer := newPeerPod(t, ctx, "relay"), newPeerPod(t, ctx, "peer")
	c := relay.connect(t, ctx)
	if _, err := c.Register(route.Route{Header: "X-Dev", Value: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	st, err := c.sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cd := newCodec(st)
	cd.write(DialRequest{Op: "relay", Addr: peer.addr, Pod: "peer"})
	var resp DialResponse
	if err := cd.read(&resp); err != nil || resp.Reason != DialNotAllowed {
		t.Fatalf("a relay request without the CLI's proof: %+v %v", resp, err)
	}
}

// `routes` marks a developer's own routes by the tag of their owner key:
// the key itself is not sent, and a teammate's route is not marked.
func TestRoutesMineWithoutTheKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const alice, bob = "alice-raw-owner-key-0123456789abcdef0123456789", "bob-raw-owner-key-0123456789abcdef0123456789"
	pod := newPeerPod(t, ctx, "p1")
	ca := pod.connect(t, ctx)
	if _, err := ca.RegisterTagged(route.Route{Header: "X-Dev", Value: "alice", Client: PodKey(alice, "uid-1", 7001)}, OwnerTag(alice)); err != nil {
		t.Fatal(err)
	}
	cb := pod.connect(t, ctx)
	if _, err := cb.RegisterTagged(route.Route{Header: "X-Dev", Value: "bob", Client: PodKey(bob, "uid-1", 7001)}, OwnerTag(bob)); err != nil {
		t.Fatal(err)
	}

	// status asks on a session of its own, recorded.
	a, b := net.Pipe()
	go pod.srv.ServeConn(ctx, a)
	rec := &recordingConn{Conn: b}
	cs, err := NewClient(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	routes, err := cs.RoutesOf(alice)
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, r := range routes {
		mine[r.Value] = r.Mine
		if r.Client != "" {
			t.Errorf("routes lists a key: %+v", r)
		}
	}
	if !mine["alice"] || mine["bob"] || len(routes) != 2 {
		t.Fatalf("alice's view: %+v", routes)
	}
	if strings.Contains(rec.sent(), alice) || strings.Contains(rec.sent(), PodKey(alice, "uid-1", 7001)) {
		t.Fatal("asking for one's routes sent a key")
	}

}

type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.out.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordingConn) sent() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}
