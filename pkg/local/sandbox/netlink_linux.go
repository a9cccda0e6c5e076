package sandbox

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setUpNetwork brings the loopback up and creates the TUN device eth0 (as
// in a pod), with the sandbox's addresses and the default routes through
// it; it returns the device's descriptor for the plugin's stack.
func setUpNetwork(cfg *initConfig) (int, error) {
	nl, err := newNetlink()
	if err != nil {
		return -1, fmt.Errorf("netlink: %w", err)
	}
	defer nl.close()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return -1, fmt.Errorf("the loopback device: %w", err)
	}
	if err := nl.linkUp(lo.Index, 0); err != nil {
		return -1, fmt.Errorf("bringing the loopback up: %w", err)
	}
	fd, err := openTUN("eth0")
	if err != nil {
		return -1, fmt.Errorf("creating the TUN device: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	eth, err := net.InterfaceByName("eth0")
	if err != nil {
		return fail("the TUN device", err)
	}
	if err := nl.linkUp(eth.Index, uint32(cfg.MTU)); err != nil {
		return fail("bringing the TUN device up", err)
	}
	for _, a := range []string{cfg.Address, cfg.Address6} {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return fail("the sandbox's address", err)
		}
		if err := nl.addAddr(eth.Index, addr); err != nil {
			return fail("the sandbox's address "+a, err)
		}
		if err := nl.addDefaultRoute(eth.Index, addr.Is4()); err != nil {
			return fail("the default route", err)
		}
	}
	return fd, nil
}

// openTUN creates a TUN device (IP packets, no packet information header).
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

type netlink struct {
	fd  int
	seq uint32
}

func newNetlink() (*netlink, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &netlink{fd: fd}, nil
}

func (n *netlink) close() { unix.Close(n.fd) }

func attr(typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func asBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// request sends one message and waits for its acknowledgement.
func (n *netlink) request(typ uint16, flags uint16, body []byte) error {
	n.seq++
	h := unix.NlMsghdr{
		Len:   uint32(unix.SizeofNlMsghdr + len(body)),
		Type:  typ,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_ACK | flags,
		Seq:   n.seq,
	}
	msg := append(append([]byte{}, asBytes(&h)...), body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		k, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:k])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Seq != n.seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return fmt.Errorf("short netlink answer")
			}
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
}

func (n *netlink) linkUp(index int, mtu uint32) error {
	ifi := unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index), Flags: unix.IFF_UP, Change: unix.IFF_UP}
	body := append([]byte{}, asBytes(&ifi)...)
	if mtu != 0 {
		body = append(body, attr(unix.IFLA_MTU, u32(mtu))...)
	}
	return n.request(unix.RTM_NEWLINK, 0, body)
}

func (n *netlink) addAddr(index int, a netip.Addr) error {
	family := uint8(unix.AF_INET)
	if a.Is6() {
		family = unix.AF_INET6
	}
	ifa := unix.IfAddrmsg{Family: family, Prefixlen: uint8(a.BitLen()), Index: uint32(index)}
	body := append([]byte{}, asBytes(&ifa)...)
	body = append(body, attr(unix.IFA_LOCAL, a.AsSlice())...)
	body = append(body, attr(unix.IFA_ADDRESS, a.AsSlice())...)
	if a.Is6() {
		// No duplicate address detection: nothing else is on the link,
		// and a tentative address could not be used for a second.
		body = append(body, attr(unix.IFA_FLAGS, u32(unix.IFA_F_NODAD))...)
	}
	return n.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}

func (n *netlink) addDefaultRoute(index int, v4 bool) error {
	family := uint8(unix.AF_INET)
	if !v4 {
		family = unix.AF_INET6
	}
	rt := unix.RtMsg{Family: family, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT, Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST}
	body := append([]byte{}, asBytes(&rt)...)
	body = append(body, attr(unix.RTA_OIF, u32(uint32(index)))...)
	return n.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
}
