package demo

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// connect opens a tunnel through ln's ServeTunnel to addr, with extra
// bytes sent right behind the CONNECT head; it returns the answer and the
// connection.
func connect(t *testing.T, tunnel, addr, extra string) (*http.Response, *bufio.Reader, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", tunnel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "CONNECT "+addr+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"+extra); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	return resp, br, c
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// The tunnel joins the client to the address it names: the line echo
// answers lines sent at once behind the CONNECT head and after it, and a
// half-close reaches the echo, whose answer ends the tunnel's read side.
func TestTunnelCarriesBytesBothWays(t *testing.T) {
	s := NewServer(Config{Pod: "p"})
	echo, tunnel := listen(t), listen(t)
	go func() { _ = s.ServeLineEcho(echo) }()
	go func() { _ = s.ServeTunnel(tunnel) }()

	resp, br, c := connect(t, tunnel.Addr().String(), echo.Addr().String(), "early\n")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT answered %s", resp.Status)
	}
	if _, err := io.WriteString(c, "late\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "p: early\np: late\n" {
		t.Fatalf("through the tunnel: %q", rest)
	}
}

// An address nobody listens on is answered 502 with the dial's error, so
// the client can tell a refused connection from a tunnel that failed.
func TestTunnelReportsARefusedDial(t *testing.T) {
	s := NewServer(Config{Pod: "p"})
	tunnel, closed := listen(t), listen(t)
	addr := closed.Addr().String()
	closed.Close()
	go func() { _ = s.ServeTunnel(tunnel) }()

	resp, _, _ := connect(t, tunnel.Addr().String(), addr, "")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "connection refused") {
		t.Fatalf("CONNECT to a closed port answered %s %q; want 502 with the refusal", resp.Status, body)
	}
}
