package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// dialSession is a sidecar and a CLI's session to it; registered says
// whether the CLI holds a route there. The pod's network is loopback seen
// through a documentation address: the sidecar dials 192.0.2.1 (TEST-NET)
// on 127.0.0.1, since it refuses loopback itself. Its resolver knows a
// few names, without depending on this machine's.
func dialSession(t *testing.T, registered bool) *Client {
	t.Helper()
	table := &fakeTable{routes: map[string]DialFunc{}}
	names := map[string][]netip.Addr{
		"svc.test":      {netip.MustParseAddr("192.0.2.1")},
		"metadata.test": {netip.MustParseAddr("169.254.169.254")},
		"self.test":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"both.test":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.1")},
	}
	srv := &Server{Pod: "p1", Routes: table,
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			if a, ok := names[host]; ok {
				return a, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != "192.0.2.1" {
				return nil, fmt.Errorf("the test's pod network has only 192.0.2.1, not %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		}}
	a, b := net.Pipe()
	go srv.ServeConn(context.Background(), a)
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if registered {
		if _, err := c.Register(route.Route{Header: "x-dev", Value: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// podAddr is a loopback listener's address as the test's pod network
// names it.
func podAddr(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort("192.0.2.1", port)
}

// A server that speaks first (as databases and SSH do) and then echoes.
func speaksFirst(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.Write([]byte("hello from the pod's network\n"))
				io.Copy(conn, conn)
			}()
		}
	}()
	return podAddr(ln.Addr().String())
}

// A developer with a live route reaches HOST:PORT from the pod: bytes both
// ways, the server's greeting first, a half-close passed on.
func TestDialThroughTheSidecar(t *testing.T) {
	c := dialSession(t, true)
	addr := speaksFirst(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.DialCluster(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if greeting, _ := r.ReadString('\n'); greeting != "hello from the pod's network\n" {
		t.Fatalf("greeting %q", greeting)
	}
	conn.Write([]byte("ping\n"))
	if echo, _ := r.ReadString('\n'); echo != "ping\n" {
		t.Fatalf("echo %q", echo)
	}
}

// Failures come back with their reason; the session stays usable.
func TestDialFailures(t *testing.T) {
	c := dialSession(t, true)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := podAddr(closed.Addr().String())
	closed.Close()
	for addr, want := range map[string]DialFailure{
		refused:                   DialRefused,
		"no-such-name.invalid:80": DialUnresolvable,
		"not an address":          DialFailed,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.DialCluster(ctx, addr)
		cancel()
		var de *DialError
		if !errors.As(err, &de) || de.Reason != want {
			t.Errorf("dial %s: %v, want reason %s", addr, err, want)
		}
	}
	if _, err := c.DialCluster(context.Background(), speaksFirst(t)); err != nil {
		t.Errorf("a dial after the failures: %v", err)
	}
}

// A session without a live route (a doctor, a stranger with
// pods/portforward) cannot make the sidecar connect anywhere.
func TestDialNeedsALiveRoute(t *testing.T) {
	c := dialSession(t, false)
	_, err := c.DialCluster(context.Background(), speaksFirst(t))
	var de *DialError
	if !errors.As(err, &de) || de.Reason != DialNotAllowed {
		t.Fatalf("dial without a route: %v, want not-allowed", err)
	}
	if _, err := c.Register(route.Route{Header: "x-dev", Value: "bob"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DialCluster(context.Background(), speaksFirst(t)); !errors.As(err, &de) || de.Reason != DialNotAllowed {
		t.Fatalf("dial after leaving: %v, want not-allowed", err)
	}
}

// A developer with a live route still cannot make the sidecar connect to
// the pod's own loopback (the app's admin ports, the sidecar's control
// port), a link-local address (a cloud's metadata endpoint) or an
// unspecified or multicast one, by address or by a name that resolves to
// one; a name with an address of the cluster's network as well is dialed
// there.
func TestDialRefusesThePodAndMetadata(t *testing.T) {
	c := dialSession(t, true)
	server := speaksFirst(t)
	_, port, _ := net.SplitHostPort(server)
	for _, host := range []string{"127.0.0.1", "::1", "169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
		"::ffff:127.0.0.1", "self.test", "metadata.test"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.DialCluster(ctx, net.JoinHostPort(host, port))
		cancel()
		var de *DialError
		if !errors.As(err, &de) || de.Reason != DialNotAllowed {
			t.Errorf("dial %s: %v, want not-allowed", host, err)
		}
	}
	for _, host := range []string{"both.test", "svc.test"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := c.DialCluster(ctx, net.JoinHostPort(host, port))
		cancel()
		if err != nil {
			t.Errorf("dial %s: %v", host, err)
			continue
		}
		if greeting, _ := bufio.NewReader(conn).ReadString('\n'); greeting != "hello from the pod's network\n" {
			t.Errorf("dial %s: greeting %q", host, greeting)
		}
		conn.Close()
	}
}

// Clouds' metadata endpoints outside link-local space, and link-local or
// loopback IPv4 reached through a NAT64 prefix, are refused like
// 169.254.169.254; the cluster's own addresses, also through NAT64, are
// not.
func TestDialableRefusesMetadataEverywhere(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"169.254.169.254", false},
		{"100.100.100.200", false},        // Alibaba Cloud
		{"168.63.129.16", false},          // Azure's WireServer
		{"fd00:ec2::254", false},          // AWS, over IPv6
		{"192.0.0.192", false},            // Oracle Cloud
		{"::ffff:100.100.100.200", false}, // IPv4-mapped
		{"64:ff9b::a9fe:a9fe", false},     // 169.254.169.254 through the well-known NAT64 prefix
		{"64:ff9b::169.254.169.254", false},
		{"64:ff9b::6464:64c8", false},         // 100.100.100.200 through NAT64
		{"64:ff9b::7f00:1", false},            // 127.0.0.1 through NAT64
		{"64:ff9b:1::a9fe:a9fe", false},       // local-use prefix, /96
		{"64:ff9b:1:a9fe:a9:fe00::", false},   // local-use prefix, /48
		{"64:ff9b:1:a9:fea9:fe00::", false},   // local-use prefix, /56
		{"64:ff9b:1:0:a9:fea9:fe00:0", false}, // local-use prefix, /64
		{"::ffff:64:ff9b:0:0", true},          // IPv4-mapped 0.100.255.155: no NAT64 inside
		{"10.96.0.10", true},                  // a ClusterIP
		{"100.100.100.201", true},             // next to Alibaba's, a cluster may use it (CGNAT space)
		{"fd00:ec2::253", true},               // next to AWS's
		{"64:ff9b::a00:1", true},              // 10.0.0.1 through NAT64
		{"64:ff9b:1::a00:1", true},            // 10.0.0.1 through the local-use prefix
		{"2001:db8::1", true},
	} {
		if got := Dialable(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Dialable(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// The sidecar refuses to dial them, by address or by name.
	c := dialSession(t, true)
	for _, host := range []string{"100.100.100.200", "fd00:ec2::254", "192.0.0.192", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.DialCluster(ctx, net.JoinHostPort(host, "80"))
		cancel()
		var de *DialError
		if !errors.As(err, &de) || de.Reason != DialNotAllowed {
			t.Errorf("dial %s: %v, want not-allowed", host, err)
		}
	}
}
