package tunnel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

// The developer's machine reaches the cluster's network through a copy
// pod: the CLI opens a stream of its own on the tunnel session, asks the
// sidecar to dial HOST:PORT (resolved and dialed inside the pod, so cluster
// DNS names, ClusterIPs, pod IPs, NetworkPolicies and egress are as the
// pod sees them), and the stream then carries the connection's bytes. Only
// a session that holds a live route may dial: the sidecar connects on
// behalf of a developer who intercepts through it, nobody else.

// DialRequest opens a dial stream: one JSON line, then the bytes.
type DialRequest struct {
	Op   string `json:"op"` // "dial", or "relay" (see peer.go)
	Addr string `json:"addr"`
	// Pod names the peer of a relay.
	Pod string `json:"pod,omitempty"`
	// Prove, on a relay, says the CLI answers the peer's challenge itself
	// (a relay holds no key of the peer's); MAC is its answer, on the
	// "prove" line that follows the relay's Challenge.
	Prove bool   `json:"prove,omitempty"`
	MAC   string `json:"mac,omitempty"`
}

// DialResponse answers it, before the first byte of the connection.
type DialResponse struct {
	Error string `json:"error,omitempty"`
	// Reason classifies Error: see the DialFailure constants.
	Reason DialFailure `json:"reason,omitempty"`
	// Code, on a relay's answer, is the peer's refusal of the route.
	Code Code `json:"code,omitempty"`
	// Challenge, on a relay's first answer, is the peer's challenge for
	// the CLI to answer under the peer's pod key.
	Challenge string `json:"challenge,omitempty"`
}

// DialFailure says why a dial failed, for a SOCKS or HTTP answer.
type DialFailure string

// Why a dial fails.
const (
	DialUnresolvable DialFailure = "unresolvable" // the name does not resolve in the pod
	DialRefused      DialFailure = "refused"      // nothing listens there
	DialUnreachable  DialFailure = "unreachable"  // no route, or a policy drops it
	DialTimeout      DialFailure = "timeout"
	DialNotAllowed   DialFailure = "not-allowed" // this session holds no live route
	DialUnsupported  DialFailure = "unsupported" // the sidecar cannot dial (older image)
	DialFailed       DialFailure = "failed"
)

// DialError is a dial the sidecar could not make.
type DialError struct {
	Addr    string
	Reason  DialFailure
	Message string
}

func (e *DialError) Error() string {
	return fmt.Sprintf("dialing %s from the pod: %s", Printable(e.Addr), Printable(e.Message))
}

// MaxDialsPerSession bounds the connections one developer holds through a
// sidecar at once; beyond it new dials are refused.
const MaxDialsPerSession = 256

// dialTimeout bounds a dial made in the pod.
const dialTimeout = 10 * time.Second

// serveDials accepts the dial streams the CLI opens after the control
// stream, for as long as the session lives.
func (s *Server) serveDials(ctx context.Context, sess *yamux.Session, cs *controlSession) {
	var open sync.WaitGroup
	defer open.Wait()
	slots := make(chan struct{}, MaxDialsPerSession)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			_ = newCodec(st).write(DialResponse{Error: fmt.Sprintf("this developer already holds %d connections through this pod", MaxDialsPerSession), Reason: DialFailed})
			st.Close()
			continue
		}
		open.Add(1)
		go func() {
			defer open.Done()
			defer func() { <-slots }()
			s.serveDial(ctx, st, cs)
		}()
	}
}

func (s *Server) serveDial(ctx context.Context, st net.Conn, cs *controlSession) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(dialTimeout))
	br := bufio.NewReaderSize(st, 1024)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	c := newCodec(st)
	var req DialRequest
	if err := json.Unmarshal(line, &req); err != nil || (req.Op != "dial" && req.Op != "relay") {
		_ = c.write(DialResponse{Error: "not a dial request", Reason: DialFailed})
		return
	}
	if cs.peerKey != nil {
		_ = c.write(DialResponse{Error: "a relay may not dial or relay through a peer", Reason: DialNotAllowed})
		return
	}
	if req.Op == "relay" {
		s.serveRelay(ctx, st, br, cs, req)
		return
	}
	if s.Dial == nil {
		_ = c.write(DialResponse{Error: "this sidecar cannot dial (its image is older than this CLI)", Reason: DialUnsupported})
		return
	}
	if !cs.live() {
		_ = c.write(DialResponse{Error: "only a developer who holds a live route on this pod may dial through it", Reason: DialNotAllowed})
		return
	}
	host, port, err := net.SplitHostPort(req.Addr)
	if err != nil {
		_ = c.write(DialResponse{Error: fmt.Sprintf("%q is not HOST:PORT", req.Addr), Reason: DialFailed})
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	ip, err := s.resolve(dctx, host)
	if err != nil {
		_ = c.write(DialResponse{Error: err.Error(), Reason: dialFailure(err)})
		return
	}
	if !ip.IsValid() {
		_ = c.write(DialResponse{Error: fmt.Sprintf("%s is the pod's own, a cloud's metadata endpoint (link-local, or one such as 100.100.100.200, also behind NAT64), unspecified or multicast address: "+
			"the sidecar dials only the cluster's network", host), Reason: DialNotAllowed})
		return
	}
	conn, err := s.Dial(dctx, net.JoinHostPort(ip.String(), port))
	cancel()
	if err != nil {
		_ = c.write(DialResponse{Error: err.Error(), Reason: dialFailure(err)})
		return
	}
	if err := c.write(DialResponse{}); err != nil {
		conn.Close()
		return
	}
	// Bytes the CLI sent behind its request line are the connection's.
	Pipe(WithReader(st, br), conn)
}

// resolve turns host into the address to dial, as the pod resolves it:
// the first of its addresses that is Dialable (not loopback, not a cloud's
// metadata endpoint, not unspecified or multicast); the zero
// Addr when it has none other. The name is resolved once and the address
// dialed, so a name cannot resolve to another address between the check
// and the dial.
func (s *Server) resolve(ctx context.Context, host string) (netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		lookup := s.Resolve
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		if addrs, err = lookup(ctx, host); err != nil {
			return netip.Addr{}, err
		}
	}
	for _, ip := range addrs {
		if Dialable(ip) {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, nil
}

// Dialable says whether the sidecar may dial ip for a developer: not the
// pod's own loopback, not link-local (unicast or multicast: a cloud's
// metadata endpoint), not another cloud metadata address (metadataAddrs),
// not unspecified, not multicast. An IPv4 address inside an IPv6 one
// (IPv4-mapped, or behind a NAT64 prefix) is checked as the IPv4 address
// it reaches.
func Dialable(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, v4 := range embeddedIPv4(ip) {
		if podOrMetadata(v4) {
			return false
		}
	}
	return !podOrMetadata(ip) && !ip.IsLinkLocalMulticast() && !ip.IsInterfaceLocalMulticast() &&
		!ip.IsUnspecified() && !ip.IsMulticast()
}

// podOrMetadata says whether ip is the pod's own (loopback) or a cloud's
// metadata endpoint (link-local, or one of metadataAddrs).
func podOrMetadata(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || slices.Contains(metadataAddrs, ip)
}

// metadataAddrs are clouds' metadata endpoints outside link-local space
// (169.254.169.254 and fe80::/10 are link-local already).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS, over IPv6
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure's WireServer (the node's agent and its certificates)
}

// NAT64 prefixes (RFC 6052, RFC 8215): a pod in an IPv6 cluster reaches
// IPv4 address A at PREFIX+A.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
)

// embeddedIPv4 returns the IPv4 addresses ip may reach through a NAT64
// prefix: the last 32 bits under 64:ff9b::/96; under the local-use
// 64:ff9b:1::/48, whose operator picks the prefix's length, the address
// as each length RFC 6052 allows there (/48, /56, /64, /96) embeds it.
// Only one of those is the real one, so Dialable refuses on the pod's own
// or a metadata address among them, never on an unspecified one.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	b := ip.As16()
	v4 := func(i ...int) netip.Addr { return netip.AddrFrom4([4]byte{b[i[0]], b[i[1]], b[i[2]], b[i[3]]}) }
	switch {
	case nat64WellKnown.Contains(ip):
		return []netip.Addr{v4(12, 13, 14, 15)}
	case nat64Local.Contains(ip):
		// Byte 8 (bits 64-71) is skipped by every embedding.
		return []netip.Addr{v4(6, 7, 9, 10), v4(7, 9, 10, 11), v4(9, 10, 11, 12), v4(12, 13, 14, 15)}
	}
	return nil
}

// dialFailure classifies a dial's error.
func dialFailure(err error) DialFailure {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && (dns.IsNotFound || !dns.IsTimeout):
		return DialUnresolvable
	case errors.Is(err, syscall.ECONNREFUSED):
		return DialRefused
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return DialUnreachable
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return DialTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return DialTimeout
	}
	return DialFailed
}

// DialCluster opens a connection to addr (HOST:PORT) from the sidecar's
// pod, through this session. The session must hold a live route.
func (c *Client) DialCluster(ctx context.Context, addr string) (net.Conn, error) {
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("opening a stream to the pod: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.SetDeadline(time.Now()) })
	defer stop()
	if err := newCodec(st).write(DialRequest{Op: "dial", Addr: addr}); err != nil {
		st.Close()
		return nil, fmt.Errorf("asking the pod to dial %s: %w", addr, err)
	}
	br := bufio.NewReaderSize(st, 1024)
	line, err := br.ReadSlice('\n')
	if err != nil {
		st.Close()
		if ctx.Err() != nil {
			return nil, &DialError{Addr: addr, Reason: DialTimeout, Message: ctx.Err().Error()}
		}
		return nil, fmt.Errorf("reading the pod's answer to dial %s: %w", addr, err)
	}
	var resp DialResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		st.Close()
		return nil, fmt.Errorf("reading the pod's answer to dial %s: %w", addr, err)
	}
	if resp.Error != "" {
		st.Close()
		return nil, &DialError{Addr: addr, Reason: resp.Reason, Message: resp.Error}
	}
	_ = st.SetDeadline(time.Time{})
	return WithReader(st, br), nil
}

// WithReader is conn reading through r, which holds its first bytes
// already (read ahead with an answer, or peeked); conn itself when r holds
// nothing. It keeps conn's half-close, so Pipe passes an EOF on.
func WithReader(conn net.Conn, r *bufio.Reader) net.Conn {
	if r.Buffered() == 0 {
		return conn
	}
	return &readerConn{Conn: conn, r: r}
}

type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *readerConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
