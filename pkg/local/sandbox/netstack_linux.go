package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/netproxy"
)

// netStack is the userspace TCP/IP stack on the sandbox's TUN device: it
// answers every TCP connection the command opens, to any address, and
// joins it to a connection dialed from the pod (or, for --local, from
// this machine); it answers DNS on the nameserver's address.
type netStack struct {
	s      *stack.Stack
	ctx    context.Context
	cancel context.CancelFunc
	dial   netproxy.Dialer
	dns    *dnsForwarder
	// clients serves the command's DNS clients, over UDP and TCP.
	clients dnsClients
	local   []Local
	logf    func(string, ...any)
}

// maxPendingDials bounds the connections the command may have waiting
// for the pod's answer at once (each a SYN the stack holds).
const maxPendingDials = 1024

func newNetStack(fd int, cfg Config, local []Local) (*netStack, error) {
	// One processor goroutine for the device's one queue: each packet
	// read is handed to it, and a second one (the default on two cores)
	// was more wake-ups for no more throughput (docs/architecture.md,
	// "The sandbox").
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: mtu, RXChecksumOffload: true, ProcessorsPerChannel: 1})
	if err != nil {
		return nil, err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	// Windows as large as a loopback's, so one connection is not held to
	// gVisor's small defaults.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &netStack{s: s, ctx: ctx, cancel: cancel, dial: cfg.Dial, local: local, logf: logf,
		dns: newDNSForwarder(cfg.DNS, cfg.Dial, local, logf)}
	fwd := tcp.NewForwarder(s, 0, maxPendingDials, n.acceptTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, fwd.HandlePacket)
	ufwd := udp.NewForwarder(s, n.acceptUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if n.isDNS(id) {
			return ufwd.HandlePacket(id, pkt)
		}
		// Other UDP goes nowhere: returning false has the stack answer
		// with ICMP port unreachable, so the client's socket is refused
		// at once rather than waiting for a timeout.
		return false
	})
	// The NIC last: its link starts delivering packets as it is created,
	// so the handlers above must be in place before.
	if terr := s.CreateNIC(1, ep); terr != nil {
		cancel()
		s.Close()
		return nil, fmt.Errorf("%v", terr)
	}
	// Every address is the stack's: the command may connect anywhere.
	s.SetPromiscuousMode(1, true)
	s.SetSpoofing(1, true)
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	return n, nil
}

func (n *netStack) close() {
	n.cancel()
	n.dns.pool.close()
	n.s.Close()
}

func addrOf(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip.Unmap()
}

func (n *netStack) isDNS(id stack.TransportEndpointID) bool {
	return id.LocalPort == 53 && addrOf(id.LocalAddress) == n.dns.cfg.Nameserver
}

// dialTimeout bounds a dial, so a SYN the stack holds is answered.
const dialTimeout = 30 * time.Second

// acceptTCP takes a connection only once the far end has answered: one
// the pod cannot make (refused, not allowed by a NetworkPolicy, no such
// name) is refused to the command with a reset, as it would be in the pod.
func (n *netStack) acceptTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	dst, port := addrOf(id.LocalAddress), id.LocalPort
	if dst == n.dns.cfg.Nameserver && port == 53 {
		n.clients.serveTCP(n, r)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	target, err := n.dialFor(ctx, dst, port)
	if err != nil {
		n.logf("sandbox: connection to %s: %v", net.JoinHostPort(dst.String(), strconv.Itoa(int(port))), err)
		r.Complete(true)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		target.Close()
		return
	}
	r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	conn := gonet.NewTCPConn(&wq, ep)
	// Both ends go with the stack: the pod's side is not left open.
	stop := context.AfterFunc(n.ctx, func() { conn.Close(); target.Close() })
	defer stop()
	pipe(conn, target)
}

// dialFor connects to dst:port from where it belongs.
func (n *netStack) dialFor(ctx context.Context, dst netip.Addr, port uint16) (net.Conn, error) {
	addr := net.JoinHostPort(dst.String(), strconv.Itoa(int(port)))
	for _, l := range n.local {
		if l.matches(dst, port) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if dst == n.dns.cfg.Nameserver && port == 53 && n.dns.cfg.Upstream != "" {
		addr = n.dns.cfg.Upstream
	}
	return n.dial(ctx, addr)
}

// acceptUDP serves one client socket's DNS queries (dnsClients).
func (n *netStack) acceptUDP(r *udp.ForwarderRequest) { n.clients.serve(n, r) }
