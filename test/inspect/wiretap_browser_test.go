package inspect_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/inspect"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// A developer wiretapping sees each copy arrive live, marked when the
// local answer differs, and opens it: the local answer beside the
// cluster's, the differences listed below.
func TestBrowserWiretap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium; run without -short")
	}
	bin := chromium(t)

	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":7,"price":11}`)
	})
	store := inspect.NewStore(0)
	fwd := inspect.NewForwarder(local, testRoute, store)
	wt := inspect.NewWiretap(fwd, store, inspect.WiretapOptions{})
	inspector := "http://" + serveBoth(t, inspect.NewUI(store, fwd))
	copyOf := func(target, clusterBody string) *tap.Exchange {
		return &tap.Exchange{
			Time: time.Now(), Duration: 2 * time.Millisecond, Route: tap.Route{Marker: "X-Dev:alice"},
			Request: tap.Request{Method: "GET", Target: target, Proto: "HTTP/1.1", Header: http.Header{"Host": {"shop"}}},
			Response: tap.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: tap.CapBody([]byte(clusterBody), int64(len(clusterBody)))},
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1440, 860))
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
	until := func(what, js string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(15*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	}

	do("open the inspector", chromedp.Navigate(inspector+"/"), chromedp.WaitVisible(chromedp.CSS("#empty")))
	until("the list to follow the store", `document.getElementById('live').dataset.state === 'on'`)
	wt.Handle(ctx, copyOf("/same", `{"price":11,"id":7}`))
	wt.Handle(ctx, copyOf("/changed", `{"id":7,"price":10}`))
	until("both copies, one marked as differing", `(() => {
		const same = document.querySelector('tr.exchange[data-path="/same"] .badge.tap');
		const changed = document.querySelector('tr.exchange[data-path="/changed"] .badge.tap.differs');
		return same !== null && !same.classList.contains('differs') && changed !== null;
	})()`)

	do("open the differing one", chromedp.Click(chromedp.CSS(`tr.exchange[data-path="/changed"] .c-path a`)),
		chromedp.WaitVisible(chromedp.CSS("#cluster .cluster-body")))
	until("the answers side by side and the diff below", `(() => {
		const local = document.getElementById('response').getBoundingClientRect();
		const cluster = document.getElementById('cluster').getBoundingClientRect();
		const diff = document.querySelector('#diff table.diff');
		return Math.abs(local.top - cluster.top) < 2 && cluster.left > local.right - 1 &&
			document.querySelector('#cluster .cluster-body').textContent.includes('"price": 10') &&
			document.querySelector('#response .resp-body').textContent.includes('"price": 11') &&
			diff !== null && diff.textContent.includes('body $.price');
	})()`)
}
