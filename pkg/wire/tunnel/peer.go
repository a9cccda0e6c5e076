package tunnel

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// One tunnel per developer, whatever the copy's replica count: the CLI
// holds a port-forward to one sidecar, the relay, and asks it to carry its
// route to every other pod of the copy over the pod network. The relay
// dials the other sidecar's peer port, proves it speaks for the developer
// and then runs an ordinary tunnel session over that connection: it
// registers the developer's route there, and every connection the other
// sidecar sends to the developer comes to the relay, which opens a stream
// to the developer's machine for it.
//
// The peer port listens on the pod network, so it trusts nobody by
// default. A developer admits themselves on each pod through the
// port-forward (what today's Role already grants), handing the sidecar
// the pod key derived for that pod (keys.go); a relay must then answer a
// fresh challenge with an HMAC under that key, which it gets from the
// developer's CLI through its tunnel, and may register only that
// developer's routes, which the peer files under the key proved. Neither
// the owner key nor a pod key crosses the pod network, and the relay
// holds no key of its peers.

// Admissions holds the pod keys developers admitted on this sidecar.
type Admissions struct {
	mu   sync.Mutex
	keys [][]byte // oldest first, at most MaxAdmissions
	// inUse counts the live relay sessions proved under each key: those
	// keys are never pushed out, so a flood of admits cannot cut a
	// developer's relay.
	inUse map[string]int
}

// MaxAdmissions bounds the keys a sidecar keeps; the oldest key that no
// live relay session uses goes first.
const MaxAdmissions = 256

func (a *Admissions) admit(key string) error {
	if len(key) < route.MinClient {
		return coded(CodeBadRequest, "admit: an owner key has at least %d characters", route.MinClient)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range a.keys {
		if subtle.ConstantTimeCompare(k, []byte(key)) == 1 {
			return nil
		}
	}
	if len(a.keys) >= MaxAdmissions {
		i := slices.IndexFunc(a.keys, func(k []byte) bool { return a.inUse[string(k)] == 0 })
		if i < 0 {
			return coded(CodeBadRequest, "admit: this sidecar holds %d keys, all in use by relays; try again once one leaves", MaxAdmissions)
		}
		a.keys = slices.Delete(a.keys, i, i+1)
	}
	a.keys = append(a.keys, []byte(key))
	return nil
}

// use marks key in use by a live relay session until the returned func.
func (a *Admissions) use(key []byte) func() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inUse == nil {
		a.inUse = map[string]int{}
	}
	a.inUse[string(key)]++
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.inUse[string(key)]--; a.inUse[string(key)] <= 0 {
			delete(a.inUse, string(key))
		}
	}
}

// match returns the admitted key under which mac answers nonce.
func (a *Admissions) match(nonce, mac []byte) ([]byte, bool) {
	a.mu.Lock()
	keys := a.keys
	a.mu.Unlock()
	var found []byte
	for _, k := range keys {
		if hmac.Equal(peerMAC(k, nonce), mac) {
			found = k
		}
	}
	return found, found != nil
}

// peerMAC answers a peer port's challenge under key.
func peerMAC(key, nonce []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kubectl-intercept peer v1\x00"))
	m.Write(nonce)
	return m.Sum(nil)
}

// peerHello and peerProof are the two lines of the handshake.
type peerHello struct {
	Nonce string `json:"nonce"`
}

type peerProof struct {
	MAC string `json:"mac"`
}

// Peer handshake bounds: a connection that does not prove itself in time
// is closed; a relay gives up on a pod it cannot reach after PeerDialTimeout
// (and the CLI falls back to a tunnel of its own to that pod).
const (
	peerHandshakeTimeout = 5 * time.Second
	PeerDialTimeout      = 3 * time.Second
	peerHandshakeMax     = 4 << 10
)

// ServePeers accepts relays' connections on ln (the pod network) until ctx
// ends. Each must answer the challenge under an admitted key; at most
// maxHandshakes answer at once (anyone on the pod network can connect),
// and at most MaxRelaySessions sessions live at once.
func (s *Server) ServePeers(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	handshakes := make(chan struct{}, maxHandshakes)
	sessions := make(chan struct{}, MaxRelaySessions)
	var pause time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if acceptBackoff(ctx, err, &pause) {
				continue
			}
			return fmt.Errorf("accepting relays' connections: %w", err)
		}
		pause = 0
		select {
		case handshakes <- struct{}{}:
		default:
			conn.Close()
			continue
		}
		go func() {
			key, err := s.challenge(conn)
			<-handshakes
			if err != nil {
				conn.Close()
				return
			}
			select {
			case sessions <- struct{}{}:
				defer func() { <-sessions }()
				s.serveSession(ctx, conn, newControlSession(key))
			default:
				conn.Close()
			}
		}()
	}
}

// Bounds on the peer port: handshakes in progress, and relay sessions (one
// per developer and relay; a relay that moved keeps its old sessions while
// its pod drains).
const (
	maxHandshakes    = 32
	MaxRelaySessions = 512
)

// challenge asks conn to prove it holds an admitted key, and returns it.
func (s *Server) challenge(conn net.Conn) ([]byte, error) {
	_ = conn.SetDeadline(time.Now().Add(peerHandshakeTimeout))
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	// Anyone on the pod network may connect: the handshake reads at most
	// peerHandshakeMax bytes, however long a line they send.
	c := &codec{r: bufio.NewReaderSize(io.LimitReader(conn, peerHandshakeMax), 512), w: conn}
	if err := c.write(peerHello{Nonce: hex.EncodeToString(nonce)}); err != nil {
		return nil, err
	}
	var p peerProof
	if err := c.read(&p); err != nil {
		return nil, err
	}
	mac, err := hex.DecodeString(p.MAC)
	var key []byte
	ok := false
	if err == nil && s.Admitted != nil {
		key, ok = s.Admitted.match(nonce, mac)
	}
	if !ok {
		_ = c.write(Response{Pod: s.Pod, Error: "not admitted: the developer has not admitted themselves on this pod", Code: CodeBadRequest})
		return nil, fmt.Errorf("not admitted")
	}
	if err := c.write(Response{Pod: s.Pod}); err != nil {
		return nil, err
	}
	if c.r.Buffered() > 0 {
		return nil, fmt.Errorf("bytes ahead of the session") // yamux starts only after our answer
	}
	_ = conn.SetDeadline(time.Time{})
	return key, nil
}

// dialPeer connects to a peer port at addr and proves, through prove, a
// key admitted there: prove answers the peer's challenge.
func dialPeer(ctx context.Context, addr string, prove func(nonce []byte) ([]byte, error)) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsValid() || ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return nil, &DialError{Addr: addr, Reason: DialFailed, Message: "a peer is a pod's IP:PORT"}
	}
	dctx, cancel := context.WithTimeout(ctx, PeerDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Reason: dialFailure(err), Message: err.Error()}
	}
	_ = conn.SetDeadline(time.Now().Add(peerHandshakeTimeout))
	c := &codec{r: bufio.NewReaderSize(io.LimitReader(conn, peerHandshakeMax), 512), w: conn}
	var hello peerHello
	var resp Response
	nonce, err := func() ([]byte, error) {
		if err := c.read(&hello); err != nil {
			return nil, err
		}
		return hex.DecodeString(hello.Nonce)
	}()
	if err == nil && (len(nonce) < 16 || len(nonce) > 64) {
		err = fmt.Errorf("a challenge of %d bytes", len(nonce))
	}
	var mac []byte
	if err == nil {
		mac, err = prove(nonce)
	}
	if err == nil {
		err = c.write(peerProof{MAC: hex.EncodeToString(mac)})
	}
	if err == nil {
		err = c.read(&resp)
	}
	if err == nil {
		err = resp.err()
	}
	if err != nil {
		conn.Close()
		return nil, &DialError{Addr: addr, Reason: DialNotAllowed, Message: "the peer sidecar refused the relay: " + err.Error()}
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}

// serveRelay carries the session's routes to the peer the CLI names on st,
// for as long as st stays open: the CLI's calls on st (routes, unregister)
// go to the peer; st closes when the peer goes.
func (s *Server) serveRelay(ctx context.Context, st net.Conn, br *bufio.Reader, cs *controlSession, req DialRequest) {
	c := &codec{r: br, w: st}
	routes, tag := cs.registered()
	if len(routes) == 0 {
		_ = c.write(DialResponse{Error: "only a developer who holds a live route on this pod may relay through it", Reason: DialNotAllowed})
		return
	}
	if !req.Prove {
		_ = c.write(DialResponse{Error: "this kubectl-intercept is older than the sidecar and cannot prove itself to its peers; upgrade it", Reason: DialNotAllowed})
		return
	}
	// The CLI answers the peer's challenge: it alone holds the key.
	prove := func(nonce []byte) ([]byte, error) {
		if err := c.write(DialResponse{Challenge: hex.EncodeToString(nonce)}); err != nil {
			return nil, err
		}
		_ = st.SetReadDeadline(time.Now().Add(peerHandshakeTimeout))
		defer func() { _ = st.SetReadDeadline(time.Time{}) }()
		var p DialRequest
		if err := c.read(&p); err != nil {
			return nil, fmt.Errorf("the developer's answer to the challenge: %w", err)
		}
		if p.Op != "prove" {
			return nil, fmt.Errorf("the developer did not answer the challenge")
		}
		return hex.DecodeString(p.MAC)
	}
	conn, err := dialPeer(ctx, req.Addr, prove)
	var de *DialError
	if errors.As(err, &de) {
		_ = c.write(DialResponse{Error: fmt.Sprintf("reaching pod %s at %s from pod %s: %s", req.Pod, req.Addr, s.Pod, de.Message), Reason: de.Reason})
		return
	}
	if err != nil {
		_ = c.write(DialResponse{Error: err.Error(), Reason: DialFailed})
		return
	}
	peer, err := NewClient(conn)
	if err != nil {
		conn.Close()
		_ = c.write(DialResponse{Error: err.Error(), Reason: DialFailed})
		return
	}
	defer peer.Close()
	for _, r := range routes {
		if _, err := peer.RegisterTagged(r, tag); err != nil {
			_ = c.write(DialResponse{Error: err.Error(), Reason: DialFailed, Code: codeOf(err)})
			return
		}
	}
	if err := c.write(DialResponse{}); err != nil {
		return
	}
	go func() {
		_ = peer.Serve(ctx, cs.dial, nil) // each connection the peer sends, to the developer
		st.Close()
	}()
	for {
		var call Request
		if err := c.read(&call); err != nil {
			return // the CLI closed the link (the pod went, or the developer left)
		}
		resp := Response{Pod: req.Pod}
		switch call.Op {
		case "routes":
			resp.Routes, err = peer.Routes() // the peer marks Mine by the key proved
		case "unregister":
			err = peer.Unregister()
		default:
			err = coded(CodeUnsupported, "unknown operation %q on a relay link", call.Op)
		}
		if err != nil {
			resp.fail(err)
		}
		if err := c.write(resp); err != nil {
			return
		}
	}
}

// Link is the CLI's handle on one peer a relay carries its route to.
type Link struct {
	Pod  string
	st   net.Conn
	c    *codec
	mu   sync.Mutex // one call at a time
	resp chan Response
	done chan struct{}
}

// Relay asks the sidecar to carry this session's routes to the pod named
// pod, whose peer port is at addr (IP:PORT on the pod network), and
// answers that peer's challenge under podKey, the pod key this CLI
// admitted there (PodKey). It returns once the peer holds the routes; the
// link lasts until Close, the peer's end or the session's. A peer the
// relay cannot reach is a *DialError (reason timeout, refused or
// unreachable: a NetworkPolicy, say).
func (c *Client) Relay(ctx context.Context, pod, addr, podKey string) (*Link, error) {
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("opening a relay stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })
	defer stop()
	cd := newCodec(st)
	if err := cd.write(DialRequest{Op: "relay", Addr: addr, Pod: pod, Prove: true}); err != nil {
		st.Close()
		return nil, fmt.Errorf("asking the relay to reach pod %s: %w", pod, err)
	}
	var resp DialResponse
	read := func() error {
		if err := cd.read(&resp); err != nil {
			st.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading the relay's answer for pod %s: %w", pod, err)
		}
		return nil
	}
	if err := read(); err != nil {
		return nil, err
	}
	if resp.Challenge != "" && resp.Error == "" {
		nonce, err := hex.DecodeString(resp.Challenge)
		if err != nil || len(nonce) < 16 || len(nonce) > 64 {
			st.Close()
			return nil, fmt.Errorf("the relay passed on a malformed challenge from pod %s", pod)
		}
		if err := cd.write(DialRequest{Op: "prove", MAC: hex.EncodeToString(peerMAC([]byte(podKey), nonce))}); err != nil {
			st.Close()
			return nil, fmt.Errorf("answering pod %s's challenge through the relay: %w", pod, err)
		}
		resp = DialResponse{}
		if err := read(); err != nil {
			return nil, err
		}
	}
	if resp.Error != "" {
		st.Close()
		if resp.Code != "" {
			return nil, (&Response{Error: resp.Error, Code: resp.Code}).err()
		}
		if resp.Reason == "" {
			resp.Reason = DialFailed
		}
		return nil, &DialError{Addr: addr, Reason: resp.Reason, Message: resp.Error}
	}
	l := &Link{Pod: pod, st: st, c: cd, resp: make(chan Response), done: make(chan struct{})}
	go l.read()
	return l, nil
}

func (l *Link) read() {
	defer close(l.done)
	for {
		var r Response
		if err := l.c.read(&r); err != nil {
			return
		}
		r.printable()
		select {
		case l.resp <- r:
		case <-time.After(linkCallTimeout):
			return // nobody waits: a call timed out, the link is out of step
		}
	}
}

// linkCallTimeout bounds a call on a relay link.
const linkCallTimeout = 10 * time.Second

func (l *Link) call(req Request) (Response, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.c.write(req); err != nil {
		return Response{}, fmt.Errorf("sending %s to pod %s through the relay: %w", req.Op, l.Pod, err)
	}
	select {
	case r := <-l.resp:
		return r, r.err()
	case <-l.done:
		return Response{}, fmt.Errorf("the relay's link to pod %s closed", l.Pod)
	case <-time.After(linkCallTimeout):
		l.Close()
		return Response{}, fmt.Errorf("no answer from pod %s through the relay within %s", l.Pod, linkCallTimeout)
	}
}

// Routes lists the peer's live routes, this developer's marked Mine (the
// peer knows them by the key the relay proved: nothing is sent).
func (l *Link) Routes() ([]route.Route, error) {
	r, err := l.call(Request{Op: "routes"})
	return r.Routes, err
}

// Unregister removes the developer's routes from the peer; the link stays
// for the connections in flight.
func (l *Link) Unregister() error {
	_, err := l.call(Request{Op: "unregister"})
	return err
}

// InFlight is zero: a relayed connection is counted on the relay's session.
func (l *Link) InFlight() int { return 0 }

// Done is closed when the link ends.
func (l *Link) Done() <-chan struct{} { return l.done }

// Close ends the link: the relay drops its session to the peer, and the
// peer the developer's routes.
func (l *Link) Close() error { return l.st.Close() }

// Admit hands the sidecar podKey, this CLI's pod key for the sidecar's
// pod (PodKey, never the owner key), so relays that prove it may register
// this CLI's routes here over the pod network.
func (c *Client) Admit(podKey string) error {
	key := podKey
	_, err := c.call(Request{Op: "admit", Key: key})
	return err
}
