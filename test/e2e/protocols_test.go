//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/demo"
)

// laptopDemo runs the demo app on this machine as the developer's service,
// answering as "laptop": every protocol the cluster's demo speaks.
func laptopDemo(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := demo.NewServer(demo.Config{Pod: laptopPod}).HTTPServer("")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// Every protocol, through a live intercept, for the route to the laptop
// (header x-dev: alice, or gRPC metadata) and for everyone else.
func TestProtocolsThroughIntercept(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(laptopDemo(t)), "-x", "x-dev:alice")
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	addr := net.JoinHostPort(svc.Spec.ClusterIP, "80")
	isLaptop := func(pod string) bool { return pod == laptopPod }
	isCluster := func(pod string) bool { return strings.HasPrefix(pod, "demo-") }
	routes := []struct {
		name   string
		header http.Header
		want   func(string) bool
	}{
		{"to laptop", header("x-dev", "alice"), isLaptop},
		{"to cluster", header("x-dev", "bob"), isCluster},
	}

	t.Run("h2c streams routed one by one on one connection", func(t *testing.T) {
		c := h2cClient(t)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			r := routes[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
				req.Header = r.header.Clone()
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				var e echo
				json.NewDecoder(resp.Body).Decode(&e)
				if resp.ProtoMajor != 2 || !r.want(e.Pod) {
					errs <- fmt.Errorf("%s: proto %s answered by %q", r.name, resp.Proto, e.Pod)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("gRPC unary and bidi streaming by metadata", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialGRPC))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := demo.NewEchoClient(conn)
		for _, r := range routes {
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-dev", r.header.Get("x-dev")), 10*time.Second)
			var md metadata.MD
			reply, err := client.Echo(ctx, &demo.Message{Message: "hi"}, grpc.Header(&md))
			if err != nil || !r.want(reply.Pod) || reply.Message != "hi" {
				t.Errorf("%s: unary answered %+v, %v", r.name, reply, err)
			}
			stream, err := client.Chat(ctx)
			if err != nil {
				t.Fatalf("%s: chat: %v", r.name, err)
			}
			for i := 0; i < 3; i++ {
				if err := stream.Send(&demo.Message{Message: strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
				m, err := stream.Recv()
				if err != nil || m.Message != strconv.Itoa(i) || !r.want(m.Pod) {
					t.Errorf("%s: chat message %d: %+v, %v", r.name, i, m, err)
				}
			}
			stream.CloseSend()
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("%s: chat end: %v, want EOF (grpc-status OK in trailers)", r.name, err)
			}
			cancel()
		}
	})

	t.Run("large bodies stream both ways", func(t *testing.T) {
		const size = 100 << 20
		want := sha256.New()
		io.Copy(want, demo.Pattern(size))
		wantSum := hex.EncodeToString(want.Sum(nil))
		c := httpClient(2 * time.Minute)
		for _, r := range routes {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/bytes?n=%d", addr, size), nil)
			req.Header = r.header.Clone()
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("%s: download: %v", r.name, err)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			resp.Body.Close()
			if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != wantSum || !r.want(resp.Header.Get(demo.PodHeader)) {
				t.Errorf("%s: download got %d bytes from %q, %v", r.name, n, resp.Header.Get(demo.PodHeader), err)
			}
			t.Logf("%s: 100 MiB down in %s", r.name, time.Since(start).Round(time.Millisecond))

			start = time.Now()
			req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/upload", demo.Pattern(size))
			req.Header = r.header.Clone()
			req.ContentLength = size
			resp, err = c.Do(req)
			if err != nil {
				t.Fatalf("%s: upload: %v", r.name, err)
			}
			var up demo.UploadResponse
			json.NewDecoder(resp.Body).Decode(&up)
			resp.Body.Close()
			if up.Bytes != size || up.SHA256 != wantSum || !r.want(up.Pod) {
				t.Errorf("%s: upload answered %+v", r.name, up)
			}
			t.Logf("%s: 100 MiB up in %s", r.name, time.Since(start).Round(time.Millisecond))
		}
	})

	// Keep-alive, pipelining and every HTTP/1.1 framing on one connection:
	// responses come back in order, each from the right side.
	t.Run("HTTP/1.1 pipelined framing", func(t *testing.T) {
		for _, r := range routes {
			name, value := "x-dev", r.header.Get("x-dev")
			c, err := dialTimeout(addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(c, "GET /first HTTP/1.1\r\nHost: demo\r\n%s: %s\r\n\r\n", name, value)
			fmt.Fprintf(c, "HEAD / HTTP/1.1\r\nHost: demo\r\n%s: %s\r\n\r\n", name, value)
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: demo\r\n%s: %s\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+
				"3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Sum: 5\r\n\r\n", name, value)
			fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: demo\r\n%s: %s\r\nContent-Length: 5\r\n\r\nhello", name, value)
			fmt.Fprintf(c, "GET /last HTTP/1.1\r\nHost: demo\r\n%s: %s\r\nConnection: close\r\n\r\n", name, value)
			br := bufio.NewReader(c)
			for i, method := range []string{"GET", "HEAD", "POST", "POST", "GET"} {
				resp, err := http.ReadResponse(br, &http.Request{Method: method})
				if err != nil {
					t.Fatalf("%s: response %d: %v", r.name, i+1, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				pod := resp.Header.Get(demo.PodHeader)
				if resp.StatusCode != 200 || !r.want(pod) {
					t.Errorf("%s: response %d (%s): %d from %q", r.name, i+1, method, resp.StatusCode, pod)
				}
				if method == "HEAD" && len(body) != 0 {
					t.Errorf("%s: HEAD answered with a body of %d bytes", r.name, len(body))
				}
				if method == "POST" {
					var up demo.UploadResponse
					if json.Unmarshal(body, &up); up.Bytes != 5 {
						t.Errorf("%s: upload %d got %s", r.name, i+1, body)
					}
				}
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("%s: the connection stayed open after Connection: close (%v)", r.name, err)
			}
		}
	})

	t.Run("Expect 100-continue", func(t *testing.T) {
		tr := clusterTransport(&http.Transport{ExpectContinueTimeout: 5 * time.Second})
		defer tr.CloseIdleConnections()
		for _, r := range routes {
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", strings.NewReader("hello"))
			req.Header = r.header.Clone()
			req.Header.Set("Expect", "100-continue")
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("%s: %v", r.name, err)
			}
			var up demo.UploadResponse
			json.NewDecoder(resp.Body).Decode(&up)
			resp.Body.Close()
			if up.Bytes != 5 || !r.want(up.Pod) {
				t.Errorf("%s: answered %+v", r.name, up)
			}
		}
	})

	t.Run("status codes pass through", func(t *testing.T) {
		for _, r := range routes {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/status/503", nil)
			req.Header = r.header.Clone()
			resp, err := httpClient(5 * time.Second).Do(req)
			if err != nil || resp.StatusCode != 503 {
				t.Errorf("%s: %v %v", r.name, resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
	})

	// WebSocket and Server-Sent Events held open for a minute, both routes
	// at once. They wait out most of that minute, so the four take one
	// turn among the parallel tests: a goroutine each, not a parallel
	// subtest each.
	t.Run("long-lived", func(t *testing.T) {
		type check struct {
			name string
			run  func() error
		}
		var checks []check
		for _, r := range routes {
			checks = append(checks, check{"websocket " + r.name, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPHeader: r.header}) //nolint:bodyclose // Dial hands the body to ws (resp.Body is nil), or on failure leaves an in-memory copy
				if err != nil {
					return err
				}
				defer ws.CloseNow()
				_, first, err := ws.Read(ctx)
				if err != nil {
					return fmt.Errorf("first message: %w", err)
				}
				if !r.want(string(first)) {
					return fmt.Errorf("first message %q", first)
				}
				end := time.Now().Add(61 * time.Second)
				for i := 0; time.Now().Before(end); i++ {
					msg := fmt.Sprintf("ping %d", i)
					if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
						return fmt.Errorf("%s before the minute ended: %w", time.Until(end).Round(time.Second), err)
					}
					_, got, err := ws.Read(ctx)
					if err != nil {
						return fmt.Errorf("echo of %q: %w", msg, err)
					}
					if string(got) != msg {
						return fmt.Errorf("echo %q, want %q", got, msg)
					}
					time.Sleep(5 * time.Second)
				}
				ws.Close(websocket.StatusNormalClosure, "")
				return nil
			}})
			checks = append(checks, check{"sse " + r.name, func() error {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/sse?interval=1s&count=62", nil)
				req.Header = r.header.Clone()
				resp, err := httpClient(2 * time.Minute).Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				start, events := time.Now(), 0
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
						if !r.want(data) {
							return fmt.Errorf("event from %q", data)
						}
						events++
					}
				}
				if events != 62 || time.Since(start) < 60*time.Second {
					return fmt.Errorf("%d events in %s, want 62 over a minute", events, time.Since(start))
				}
				return nil
			}})
		}
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				if err := c.run(); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			})
		}
		wg.Wait()
	})
}
