package sandbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The sandbox's own cost: the same HTTP client run on this machine
// against a server on its loopback ("direct"), and inside the sandbox,
// where every connection crosses the TUN device and the netstack and is
// "dialed from the pod" by a dialer that connects to that same server
// ("sandbox"). The tunnel to the pod is not in it: docs/performance.md
// sets these figures beside the tunnel's.
//
//	go test -run '^$' -bench BenchmarkSandbox -benchtime 2000x ./pkg/local/sandbox
func BenchmarkSandbox(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	small, big := []byte("ok\n"), make([]byte, 64<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := small
		if r.URL.Path == "/64k" {
			body = big
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// Inside, the client asks for the "Service" 10.96.0.20:80; the dialer
	// stands in for the pod and connects to the server.
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	for _, where := range []string{"direct", "sandbox"} {
		for _, load := range []struct {
			name  string
			args  func(n int) []string
			unit  string
			scale float64
		}{
			{"1conn-small", func(n int) []string { return []string{"load", "/small", strconv.Itoa(n), "1"} }, "req/s", 1},
			{"16conns-small", func(n int) []string { return []string{"load", "/small", strconv.Itoa(n), "16"} }, "req/s", 1},
			{"1conn-64KiB", func(n int) []string { return []string{"load", "/64k", strconv.Itoa(n), "1"} }, "req/s", 1},
			{"16conns-64KiB", func(n int) []string { return []string{"load", "/64k", strconv.Itoa(n), "16"} }, "req/s", 1},
			{"first-byte", func(n int) []string { return []string{"firstbyte", "/small", strconv.Itoa(n)} }, "µs-p50", 1},
		} {
			b.Run(where+"/"+load.name, func(b *testing.B) {
				host := "127.0.0.1:" + strconv.Itoa(port)
				if where == "sandbox" {
					host = "10.96.0.20:80"
				}
				args := append([]string{clientCommand, "bench", host}, load.args(b.N)...)
				var out string
				if where == "direct" {
					o, err := exec.Command(testBinary(b), args...).CombinedOutput()
					if err != nil {
						b.Fatalf("%v: %s", err, o)
					}
					out = string(o)
				} else {
					out = benchInSandbox(b, dial, args)
				}
				var v float64
				if _, err := fmt.Sscanf(out, "result %g", &v); err != nil {
					b.Fatalf("the client said %q", out)
				}
				b.ReportMetric(v*load.scale, load.unit)
			})
		}
	}
}

func benchInSandbox(b *testing.B, dial func(context.Context, string) (net.Conn, error), args []string) string {
	b.Helper()
	bin := testBinary(b)
	var out syncBuffer
	sb, err := Start(context.Background(), Config{
		Argv: append([]string{bin}, args...), Env: []string{"PATH=/usr/bin:/bin"},
		Stdout: &out, Stderr: &out, Hostname: "bench", Dial: dial, DNS: testDNS(),
		InitArgs: []string{bin, InitCommand}, User: ordinaryUser(),
	})
	if err != nil {
		b.Fatalf("starting the sandbox: %v\n%s", err, out.String())
	}
	if err := sb.Wait(); err != nil {
		b.Fatalf("the client in the sandbox: %v\n%s", err, out.String())
	}
	return out.String()
}

// benchClient is the client both runs use: "load PATH N CONNS" sends N
// GETs over CONNS kept-alive connections and prints requests per second;
// "firstbyte PATH N" opens a new connection for each of N GETs and prints
// the median time to the first byte of the answer, in microseconds.
func benchClient(host string, args []string) int {
	n, _ := strconv.Atoi(args[2])
	switch args[0] {
	case "load":
		conns, _ := strconv.Atoi(args[3])
		tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
		c := &http.Client{Transport: tr}
		url := "http://" + host + args[1]
		// Warm the connections up.
		get(c, url)
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		left, failed := n, 0
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					if left == 0 {
						mu.Unlock()
						return
					}
					left--
					mu.Unlock()
					if !get(c, url) {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if failed > 0 {
			fmt.Printf("%d requests failed\n", failed)
			return 1
		}
		fmt.Printf("result %.0f\n", float64(n)/time.Since(start).Seconds())
		return 0
	case "firstbyte":
		var times []time.Duration
		for range n {
			start := time.Now()
			conn, err := net.Dial("tcp", host)
			if err != nil {
				fmt.Println(err)
				return 1
			}
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", args[1], host)
			if _, err := conn.Read(make([]byte, 1)); err != nil {
				fmt.Println(err)
				return 1
			}
			times = append(times, time.Since(start))
			conn.Close()
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		fmt.Printf("result %.1f\n", float64(times[len(times)/2].Nanoseconds())/1e3)
		return 0
	}
	return 2
}

func get(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}
