// Command sandboxclient is what the e2e suite runs inside `kubectl intercept
// --sandbox`: a static Go binary (built with CGO_ENABLED=0, so it resolves
// names with Go's own resolver and makes its syscalls itself, as a proxy-
// unaware client does) that speaks raw TCP, HTTP, gRPC and DNS over UDP,
// and serves HTTP as the developer's service.
//
//	sandboxclient tcp HOST:PORT LINE   send LINE, print the answer's first line
//	sandboxclient http URL             GET URL, print the body
//	sandboxclient grpc HOST:PORT       call demo.Echo, print the answering pod
//	sandboxclient dns NAME             resolve NAME over UDP only, print the addresses
//	sandboxclient serve ADDR NAME      answer every HTTP request with {"pod":NAME}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/demo"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: sandboxclient tcp|http|grpc|dns|serve ARGS")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

func run(what string, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch what {
	case "tcp":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", args[0])
		if err != nil {
			return err
		}
		defer c.Close()
		line := "ping"
		if len(args) > 1 {
			line = args[1]
		}
		if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		answer, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && answer == "" {
			return err
		}
		fmt.Print(answer)
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		fmt.Println(strings.TrimSpace(string(b)))
	case "grpc":
		conn, err := grpc.NewClient("passthrough:///"+args[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		m, err := demo.NewEchoClient(conn).Echo(ctx, &demo.Message{Message: "from the sandbox"})
		if err != nil {
			return err
		}
		fmt.Println("grpc answered by", m.Pod)
	case "dns":
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, address string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", address) // UDP only: no fallback to TCP
		}}
		addrs, err := r.LookupHost(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
	case "serve":
		name := args[1]
		return http.ListenAndServe(args[0], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"pod": name, "headers": map[string]string{"x-dev": r.Header.Get("X-Dev")}})
		}))
	default:
		return fmt.Errorf("unknown %q", what)
	}
	return nil
}
