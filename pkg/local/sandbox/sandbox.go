// Package sandbox runs the developer's command where it sees what the pod
// sees, without root: in user, mount, network, UTS and PID namespaces the
// plugin creates as the developer. Inside, the only route leaves through a
// TUN device whose packets a userspace TCP/IP stack (gVisor's netstack) in
// the plugin takes apart: every TCP connection is dialed from a copy pod
// through the tunnel, DNS queries go to the cluster's DNS the same way, the
// hostname is the pod's, and the container's volume files are bind-mounted
// at their mountPaths. When the plugin ends, by any means, the namespaces
// end with it: the namespace's first process dies with the plugin, and
// with it every process, mount and device inside.
package sandbox

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/netproxy"
)

// Config is what the sandbox runs and what it gives the command.
type Config struct {
	// Argv is the command; Env its environment; Dir its working directory
	// (the plugin's when empty).
	Argv []string
	Env  []string
	Dir  string
	// Stdin, Stdout and Stderr are the command's.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Hostname is what the command's hostname says (the pod's).
	Hostname string
	// Dial connects from the cluster's side; every TCP connection of the
	// command that no Local rule keeps on this machine goes through it.
	Dial netproxy.Dialer
	// DNS is the resolver the command is given.
	DNS DNS
	// Local are the destinations dialed from this machine instead.
	Local []Local
	// Resolver resolves Local's names on this machine when the sandbox
	// starts (net.DefaultResolver when nil).
	Resolver *net.Resolver
	// Mounts are bind-mounted read-only inside, Source (a directory or a
	// file of this machine) at Target, as PlanMounts plans them.
	Mounts []Mount
	// Cover are the mountPaths the developer lets cover a path of this
	// machine (--sandbox-cover): PlanMounts leaves the others out.
	Cover []string
	// InitArgs re-executes the plugin as the namespaces' first process
	// (which calls RunInit); by default /proc/self/exe InitCommand.
	InitArgs []string
	// User, when set, runs the namespaces as that user (tests that run as
	// root give an ordinary user's).
	User *User
	// Log is told about each connection that could not be made.
	Log func(format string, args ...any)
}

// User is a user and group id on this machine.
type User struct{ UID, GID uint32 }

// InitCommand is the hidden argument that makes the plugin the sandbox's
// first process.
const InitCommand = "__sandbox-init"

// DNS is the resolver configuration inside the sandbox.
type DNS struct {
	// Nameserver is the address /etc/resolv.conf names inside; the stack
	// answers it (the cluster DNS Service's ClusterIP, as in the pod).
	Nameserver netip.Addr
	// Upstream is the HOST:PORT each query is sent to over TCP, dialed from
	// the pod.
	Upstream string
	// Fallback are further HOST:PORTs (the pod's other nameservers), asked
	// in turn when Upstream cannot be reached.
	Fallback []string
	// Search and Options are the pod's search path and resolver options.
	Search  []string
	Options []string
}

// ResolvConf is the resolv.conf the command reads.
func (d DNS) ResolvConf() string {
	var b strings.Builder
	b.WriteString("# written by kubectl-intercept --sandbox: the pod's resolver, reached through the cluster\n")
	fmt.Fprintf(&b, "nameserver %s\n", d.Nameserver)
	if len(d.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	return b.String()
}

// Mount is one read-only bind mount inside the sandbox.
type Mount struct {
	Source, Target string
}

// Local is one --local HOST|CIDR[:PORT]: connections to it are made from
// this machine.
type Local struct {
	// Prefix is the addresses (a single one as /32 or /128); Host the name
	// it was given as, when it was one (resolved when the sandbox starts).
	Prefix netip.Prefix
	Host   string
	// Port is 0 for every port.
	Port uint16
}

func (l Local) String() string {
	where := l.Host
	if where == "" {
		where = l.Prefix.String()
		if l.Prefix.IsSingleIP() {
			where = l.Prefix.Addr().String()
		}
	}
	if l.Port != 0 {
		return net.JoinHostPort(where, strconv.Itoa(int(l.Port)))
	}
	return where
}

// ParseLocal reads --local HOST|CIDR[:PORT] (an IPv6 address or CIDR with
// a port in brackets: [fd00::/8]:5432).
func ParseLocal(s string) (Local, error) {
	bad := fmt.Errorf("--local %q: want HOST, IP, CIDR, each with an optional :PORT (e.g. --local 192.168.1.0/24, --local db.lan:5432)", s)
	where, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		where, port = h, p
	} else if strings.Count(s, ":") == 1 {
		return Local{}, bad
	}
	var l Local
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Local{}, bad
		}
		l.Port = uint16(n)
	}
	switch {
	case where == "":
		return Local{}, bad
	case strings.Contains(where, "/"):
		p, err := netip.ParsePrefix(where)
		if err != nil {
			return Local{}, bad
		}
		l.Prefix = p.Masked()
	default:
		if a, err := netip.ParseAddr(where); err == nil {
			l.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			break
		}
		if strings.ContainsAny(where, " /\\") {
			return Local{}, bad
		}
		l.Host = where
	}
	return l, nil
}

// matches tells whether a connection to addr:port stays on this machine.
func (l Local) matches(addr netip.Addr, port uint16) bool {
	return l.Prefix.IsValid() && l.Prefix.Contains(addr.Unmap()) && (l.Port == 0 || l.Port == port)
}
