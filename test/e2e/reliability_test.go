//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadGen sends GETs at a fixed rate until stopped and counts failures.
type loadGen struct {
	name      string
	client    *http.Client
	url       string
	header    http.Header
	sent, bad atomic.Int64
	mu        sync.Mutex
	errs      []string
}

func (g *loadGen) run(ctx context.Context, perSecond int, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	sem := make(chan struct{}, 64) // bounded concurrency
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sem <- struct{}{}
		inflight.Add(1)
		go func() {
			defer func() { <-sem; inflight.Done() }()
			g.sent.Add(1)
			req, _ := http.NewRequest(http.MethodGet, g.url, nil)
			req.Header = g.header.Clone()
			resp, err := g.client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				g.bad.Add(1)
				g.mu.Lock()
				if len(g.errs) < 3 || !strings.Contains(strings.Join(g.errs, "\n"), err.Error()[max(0, len(err.Error())-30):]) && len(g.errs) < 8 {
					g.errs = append(g.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
				}
				g.mu.Unlock()
			}
		}()
	}
}

// Under a steady load through the ClusterIP, starting an intercept and
// closing it fails no request: new connections, and kept-alive connections
// of clients that honor Connection: close and retry idempotent requests
// (Go's client), with and without the header.
//
// The load goes from this host, not from the client pod: each new
// connection through the pod is a port-forward of its own, and on a node
// busy starting the copy's pods new port-forwards stalled for 10 s while
// the Service answered, which failed ~200 requests that no caller in the
// cluster would have seen.
func TestZeroDowntimeUnderLoad(t *testing.T) {
	requireLocalCluster(t, "it opens 100 new connections a second from this host to the ClusterIP, more than a port-forward per connection carries without stalls")
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")
	port := laptop(t, laptopPod)
	url := serviceURL(svc)
	waitFor(t, 30*time.Second, "the Service to answer", func() bool {
		_, code, err := get(url, nil)
		return err == nil && code == 200
	})
	fresh := &http.Transport{DisableKeepAlives: true}
	pooled := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second}
	gens := []*loadGen{
		{name: "new connections, no header", client: &http.Client{Transport: fresh, Timeout: 10 * time.Second}, url: url, header: http.Header{}},
		{name: "new connections, header", client: &http.Client{Transport: fresh, Timeout: 10 * time.Second}, url: url, header: header("X-C6O-INTERCEPT", "yes")},
		{name: "kept-alive, no header", client: &http.Client{Transport: pooled, Timeout: 10 * time.Second}, url: url, header: http.Header{}},
		{name: "kept-alive, header", client: &http.Client{Transport: pooled, Timeout: 10 * time.Second}, url: url, header: header("X-C6O-INTERCEPT", "yes")},
	}
	ctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	var wg sync.WaitGroup
	loadStart := time.Now()
	for _, g := range gens {
		wg.Add(1)
		go g.run(ctx, 50, &wg) // 4 x 50 = 200 requests/s
	}
	time.Sleep(3 * time.Second)

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	time.Sleep(10 * time.Second)
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
	}
	time.Sleep(5 * time.Second)
	stop()
	wg.Wait()

	var report []string
	failed := int64(0)
	for _, g := range gens {
		report = append(report, fmt.Sprintf("%-28s sent %5d failed %d\n    %s", g.name, g.sent.Load(), g.bad.Load(), strings.Join(g.errs, "\n    ")))
		failed += g.bad.Load()
	}
	t.Logf("load during start and close (%s):\n%s", time.Since(loadStart).Round(time.Second), strings.Join(report, "\n"))
	if failed > 0 {
		t.Errorf("%d requests failed during the switch", failed)
	}
	assertRestored(t, ns, "demo", before)
}

// A laptop gone to sleep (SIGSTOP: its sockets stay open, only the tunnel's
// heartbeat can tell) loses its route within 5 s; others never notice; on
// SIGCONT the CLI re-establishes the route.
func TestFailOpenAfterSIGSTOP(t *testing.T) {
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	port := laptop(t, laptopPod)
	p := startPlugin(t, "svc/demo", "-n", ns, "-l", strconv.Itoa(port))
	p.waitOutput(t, "Intercepting service", 2*time.Minute)
	if got := routedTo(t, svc, header("X-C6O-INTERCEPT", "yes")); got != laptopPod {
		t.Fatalf("header request reached %q before the stop", got)
	}
	p.cmd.Process.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	waitFailedOpen(t, svc, 5*time.Second)
	t.Logf("fail-open after SIGSTOP: %s", time.Since(stopped).Round(time.Millisecond))
	if got := routedTo(t, svc, nil); !strings.HasPrefix(got, "demo-") {
		t.Fatalf("a request without header reached %q", got)
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	waitFor(t, 30*time.Second, "the route to come back after SIGCONT", func() bool {
		e, code, err := get(serviceURL(svc), header("X-C6O-INTERCEPT", "yes"))
		return err == nil && code == 200 && e.Pod == laptopPod
	})
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept after SIGCONT: %v", err)
	}
}
