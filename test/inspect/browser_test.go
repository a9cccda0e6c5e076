package inspect_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
)

// chromium finds the browser for the page test: $CHROMIUM, else chromium on
// the PATH. Missing, the test is skipped with the reason, so `go test ./...`
// passes on a machine without a browser; `make unit` sets
// KUBECTL_INTERCEPT_BROWSER=required (and installs Chromium), so there a
// missing browser fails the test rather than testing less.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "the inspector's page test needs Chromium: install it (Debian: apt-get update && apt-get install -y chromium) " +
		"or set CHROMIUM to its path"
	if os.Getenv("KUBECTL_INTERCEPT_BROWSER") == "required" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// A developer watching the page sees requests arrive live, opens one, replays
// it, and filters the list.
func TestBrowserInspector(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium; run without -short")
	}
	bin := chromium(t)

	var hellos atomic.Int32
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/hello":
			hellos.Add(1)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "hello, "+r.URL.Query().Get("name")+" ("+string(body)+")")
		case "/api/orders":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": 1042, "status": "created", "items": json.RawMessage(body)})
		case "/logo.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"))
		case "/boom":
			http.Error(w, "database is down", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	})
	store := inspect.NewStore(0)
	fwd := inspect.NewForwarder(local, testRoute, store)
	base := "http://" + serveBoth(t, fwd)
	inspector := "http://" + serveBoth(t, inspect.NewUI(store, fwd))

	send := func(method, path, body string, header ...string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s through the forwarder: %v", method, path, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("%s %s through the forwarder: %v", method, path, err)
		}
		resp.Body.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1440, 860),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(browser, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// until waits for a condition in the page, which the page's script
	// reaches on its own (events, fetches).
	until := func(what, js string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.TextContent(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}

	do("open the inspector", chromedp.Navigate(inspector+"/"), chromedp.WaitVisible(chromedp.CSS("#empty")))
	until("the list to follow the store", `document.getElementById('live').dataset.state === 'on'`)
	// A mark on the window: it disappears if the page reloads.
	do("mark the page", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)(ctx, tg)
		return err
	}))

	send("POST", "/hello?name=ada", "first", "X-Dev", "alice")
	hello := `#exchanges tbody tr.exchange[data-path="/hello?name=ada"]`
	until("the request to appear live", `document.querySelector('`+hello+`[data-status="200"]') !== null && window.notReloaded === true`)
	if got := text(hello + " .c-route"); got != testRoute {
		t.Errorf("route cell %q, want %q", got, testRoute)
	}

	do("open its detail", chromedp.Click(chromedp.CSS(hello+" .c-path a")), chromedp.WaitVisible(chromedp.CSS("#exchange .req-headers")))
	if h := text("#request .req-headers"); !strings.Contains(h, "X-Dev") || !strings.Contains(h, "alice") {
		t.Errorf("request headers shown: %q", h)
	}
	if b := text("#response .resp-body"); !strings.Contains(b, "hello, ada (first)") {
		t.Errorf("response body shown: %q", b)
	}

	do("replay it", chromedp.Click(chromedp.CSS("#replay")))
	until("the replay to appear", `document.querySelector('#exchanges tbody tr.exchange.replay[data-path="/hello?name=ada"][data-status="200"]') !== null`)
	until("the detail to show the replay", `document.querySelector('#exchange .replay-of') !== null`)
	if n := hellos.Load(); n != 2 {
		t.Errorf("the app got /hello %d times, want 2 (the request, then its replay)", n)
	}

	send("POST", "/api/orders", `[{"sku":"tea","qty":2}]`, "Content-Type", "application/json", "X-Dev", "alice")
	send("GET", "/logo.png", "")
	send("GET", "/missing", "")
	send("GET", "/boom", "")
	until("all six in the list", `document.querySelectorAll('#exchanges tbody tr.exchange').length === 6`)

	do("filter on 4xx", chromedp.SendKeys(chromedp.CSS("#filter-status"), "4xx"))
	until("only the 404 to remain", `(() => {
		const rows = document.querySelectorAll('#exchanges tbody tr.exchange');
		return rows.length === 1 && rows[0].dataset.path === '/missing';
	})()`)
	send("GET", "/also-missing", "")
	send("GET", "/hello?name=bob", "")
	until("a new 404 to appear under the filter, and no 200", `(() => {
		const rows = [...document.querySelectorAll('#exchanges tbody tr.exchange')];
		return rows.length === 2 && rows.every(r => r.dataset.status === '404');
	})()`)
	do("filter on a path", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`(() => {
			const s = document.getElementById('filter-status');
			s.value = ''; s.dispatchEvent(new Event('input'));
		})()`)(ctx, tg)
		return err
	}), chromedp.SendKeys(chromedp.CSS("#filter-path"), "hello"))
	until("only the three /hello requests to remain", `(() => {
		const rows = [...document.querySelectorAll('#exchanges tbody tr.exchange')];
		return rows.length === 3 && rows.every(r => r.dataset.path.startsWith('/hello'));
	})()`)

	if path := os.Getenv("INSPECT_SCREENSHOT"); path != "" {
		screenshot(t, browser, do, until, path)
	}
}

// screenshot saves the page with every exchange listed and an order's
// detail open, for the docs: INSPECT_SCREENSHOT=docs/images/inspector.png.
func screenshot(t *testing.T, browser context.Context, do func(string, ...chromedp.Action[chromedp.Void]), until func(string, string), path string) {
	t.Helper()
	do("clear the filter", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`(() => {
			const p = document.getElementById('filter-path');
			p.value = ''; p.dispatchEvent(new Event('input'));
		})()`)(ctx, tg)
		return err
	}))
	until("the whole list", `document.querySelectorAll('#exchanges tbody tr.exchange').length === 8`)
	do("open the order", chromedp.Click(chromedp.CSS(`tr.exchange[data-path="/api/orders"] .c-path a`)),
		chromedp.WaitVisible(chromedp.CSS(`#exchange .resp-body pre`)))
	png, err := chromedp.Run(browser, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("saving the screenshot: %v", err)
	}
	t.Logf("saved %s", path)
}
