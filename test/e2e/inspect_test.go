//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser: $CHROMIUM, else chromium on the PATH. A
// machine without it fails the test: it must not pass by testing less.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("the inspector test needs Chromium: apt-get install -y chromium, or set CHROMIUM")
	}
	return p
}

// A request intercepted through the cluster shows up live on the
// inspector's page in a browser, and replaying it from the page reaches the
// developer's service again.
func TestInspectorShowsAndReplaysInterceptedRequests(t *testing.T) {
	t.Parallel()
	bin := chromiumPath(t)
	ns := newNamespace(t)
	svc := deployDemo(t, ns, demoOptions{})
	before := takeSnapshot(t, ns, "demo")

	var orders atomic.Int32
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/orders" {
			orders.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"pod":"laptop","got":"`+string(body)+`"}`)
	}))
	defer local.Close()
	_, port, _ := net.SplitHostPort(local.Listener.Addr().String())

	p := startPlugin(t, "svc/demo", "-n", ns, "-l", port, "--inspect", "127.0.0.1:0")
	p.waitOutput(t, "Press Ctrl-C", 2*time.Minute)
	m := regexp.MustCompile(`See each intercepted request at (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(p.output())
	if m == nil {
		t.Fatalf("no inspector address in the output:\n%s", p.output())
	}
	page := m[1]

	req, _ := http.NewRequest(http.MethodPost, serviceURL(svc)+"orders?from=e2e", strings.NewReader("tea=2"))
	req.Header.Set("X-C6O-INTERCEPT", "yes")
	resp, err := httpClient(30 * time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"pod":"laptop"`) {
		t.Fatalf("the header request was answered by %s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	until := func(what, js string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	}

	row := `#exchanges tbody tr.exchange[data-path="/orders?from=e2e"]`
	do("open the inspector", chromedp.Navigate(page))
	until("the intercepted request to be listed", `document.querySelector('`+row+`[data-status="200"]') !== null`)
	do("open it", chromedp.Click(chromedp.CSS(row+" .c-path a")), chromedp.WaitVisible(chromedp.CSS("#exchange .req-headers")))
	shown, err := chromedp.Run(browser, chromedp.TextContent(chromedp.CSS("#request .req-headers")))
	if err != nil || !strings.Contains(strings.ToLower(shown), "x-c6o-intercept") {
		t.Errorf("request headers shown: %q (%v)", shown, err)
	}
	do("replay it", chromedp.Click(chromedp.CSS("#replay")))
	until("the replay to be listed", `document.querySelector('#exchanges tbody tr.exchange.replay[data-path="/orders?from=e2e"][data-status="200"]') !== null`)
	if n := orders.Load(); n != 2 {
		t.Errorf("the local service got /orders %d times, want 2 (the request, then its replay)", n)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("kubectl-intercept: %v\n%s", err, p.output())
	}
	assertRestored(t, ns, "demo", before)
}
