package netproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// cluster is a stand-in for the cluster's network: names only it resolves.
type cluster struct {
	mu    *sync.Mutex
	hosts map[string]string
}

func newCluster(hosts map[string]string) cluster { return cluster{mu: &sync.Mutex{}, hosts: hosts} }

func (c cluster) forget(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.hosts, addr)
}

func (c cluster) dial(ctx context.Context, addr string) (net.Conn, error) {
	c.mu.Lock()
	target, ok := c.hosts[addr]
	c.mu.Unlock()
	if !ok {
		return nil, &tunnel.DialError{Addr: addr, Reason: tunnel.DialUnresolvable, Message: "lookup " + addr + ": no such host"}
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}

func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s answers %s %s", name, r.Method, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func startProxy(t *testing.T, c cluster) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &Proxy{Dial: c.dial, Log: t.Logf}
	go p.Serve(ctx, ln)
	return ln.Addr().String()
}

func body(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// One port serves HTTP proxy requests (plain and CONNECT) and SOCKS5 with
// the name resolved at the far end; names only the cluster knows work.
func TestProxyReachesClusterNames(t *testing.T) {
	c := newCluster(map[string]string{"backend.shop:80": backend(t, "backend")})
	addr := startProxy(t, c)

	viaHTTP := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}, Timeout: 5 * time.Second}
	resp, err := viaHTTP.Get("http://backend.shop/hello")
	if got := body(t, resp, err); got != "200 backend answers GET /hello" {
		t.Errorf("HTTP_PROXY: %s", got)
	}

	socks, err := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	viaSOCKS := &http.Client{Transport: &http.Transport{DialContext: socks.(proxy.ContextDialer).DialContext}, Timeout: 5 * time.Second}
	resp, err = viaSOCKS.Get("http://backend.shop/hi")
	if got := body(t, resp, err); got != "200 backend answers GET /hi" {
		t.Errorf("ALL_PROXY=socks5h: %s", got)
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT backend.shop:80 HTTP/1.1\r\nHost: backend.shop:80\r\n\r\nGET /tunnelled HTTP/1.1\r\nHost: backend.shop\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("CONNECT answered %q", status)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n"; line, _ = br.ReadString('\n') {
	}
	resp, err = http.ReadResponse(br, nil)
	if got := body(t, resp, err); got != "200 backend answers GET /tunnelled" {
		t.Errorf("through CONNECT: %s", got)
	}
}

// A name the cluster does not resolve is an error with its reason, on
// each protocol; the proxy keeps serving.
func TestProxyFailuresSayWhy(t *testing.T) {
	addr := startProxy(t, newCluster(map[string]string{}))
	viaHTTP := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}, Timeout: 5 * time.Second}
	resp, err := viaHTTP.Get("http://nowhere.shop/")
	if got := body(t, resp, err); !strings.HasPrefix(got, "502 ") || !strings.Contains(got, "no such host") {
		t.Errorf("HTTP proxy to an unknown name: %s", got)
	}
	socks, _ := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	_, err = socks.Dial("tcp", "nowhere.shop:80")
	if err == nil || !strings.Contains(err.Error(), "host unreachable") {
		t.Errorf("SOCKS5 to an unknown name: %v", err)
	}
}

// A forward connects every local connection to HOST:PORT; one that cannot
// be made is reported and the forward keeps running.
func TestForward(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	c := newCluster(map[string]string{"echo.shop:7": echo.Addr().String()})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	errs := make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target := "echo.shop:7"
	go Forward(ctx, ln, c.dial, target, func(err error) { errs <- err })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "ping\n")
	if line, _ := bufio.NewReader(conn).ReadString('\n'); line != "ping\n" {
		t.Errorf("echo through the forward: %q", line)
	}
	conn.Close()

	c.forget(target) // the name stops resolving
	conn, _ = net.Dial("tcp", ln.Addr().String())
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("a connection the pod could not make stayed open")
	}
	var de *tunnel.DialError
	if err := <-errs; !errors.As(err, &de) || de.Reason != tunnel.DialUnresolvable {
		t.Errorf("reported %v", err)
	}
}
