package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/httpwire"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// copied is a copy as the sidecar sends it: a request and the cluster's
// JSON answer.
func copied(method, target, proto, reqBody string, status int, clusterBody string) *tap.Exchange {
	return &tap.Exchange{
		Time: time.Unix(1765000000, 0), Duration: 3 * time.Millisecond,
		Route: tap.Route{Owner: "c0ffee", Marker: "X-Dev:alice"},
		Request: tap.Request{
			Method: method, Target: target, Proto: proto,
			Header: http.Header{"Host": {"orders.shop"}, "X-Dev": {"alice"}, "Authorization": {"Bearer s3cret"}, "Content-Type": {"application/json"}},
			Body:   tap.CapBody([]byte(reqBody), int64(len(reqBody))),
		},
		Response: tap.Response{
			Status: status,
			Header: http.Header{"Content-Type": {"application/json"}, "Date": {"Mon, 07 Dec 2026 10:00:00 GMT"}},
			Body:   tap.CapBody([]byte(clusterBody), int64(len(clusterBody))),
		},
	}
}

// stream encodes copies as a tap stream.
func stream(t *testing.T, exs ...*tap.Exchange) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	w := tap.NewWriter(&buf)
	for _, ex := range exs {
		if err := w.Write(ex); err != nil {
			t.Fatal(err)
		}
	}
	return &buf
}

// orderApp is the local build: it answers a price one higher than the
// cluster's for order 2, and records what it was sent.
func orderApp(t *testing.T, seen chan<- *http.Request) string {
	return app(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if seen != nil {
			seen <- r
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		price := 10
		if strings.HasSuffix(r.URL.Path, "/2") {
			price = 11
		}
		json.NewEncoder(w).Encode(map[string]any{"id": r.URL.Path, "price": price, "timestamp": time.Now().UnixNano()})
	})
}

// Each copy reaches the local app as the caller sent it; the inspector's
// API shows the cluster's answer beside the local one, the diff, and the
// count of answers that differ.
func TestWiretapComparesTheLocalAnswer(t *testing.T) {
	seen := make(chan *http.Request, 4)
	local := orderApp(t, seen)
	store := NewStore(0)
	ig := mustIgnore(t, "$..timestamp")
	wt := NewWiretap(NewForwarder(local, testRoute, store), store, WiretapOptions{Ignore: ig})

	err := wt.ServeStream(context.Background(), stream(t,
		copied("POST", "/orders/1?x=1", "HTTP/1.1", `{"n":1}`, 200, `{"timestamp":1,"price":10,"id":"/orders/1"}`),
		copied("GET", "/orders/2", "HTTP/1.1", "", 200, `{"id":"/orders/2","price":10,"timestamp":2}`),
	))
	if err != nil {
		t.Fatal(err)
	}
	r := <-seen
	if r.Method != "POST" || r.URL.RequestURI() != "/orders/1?x=1" || r.Host != "orders.shop" || r.Header.Get("X-Dev") != "alice" {
		t.Fatalf("the app got %s %s Host %s X-Dev %q", r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("X-Dev"))
	}
	if b, _ := io.ReadAll(r.Body); string(b) != `{"n":1}` {
		t.Fatalf("the app got body %q", b)
	}

	ui := httptest.NewServer(NewUI(store, nil))
	defer ui.Close()
	var counts WiretapCounts
	getJSON(t, ui.URL+"/api/wiretap", &counts)
	if counts != (WiretapCounts{Copies: 2, Compared: 2, Differ: 1}) {
		t.Fatalf("/api/wiretap = %+v, want 2 copies, 2 compared, 1 differs", counts)
	}
	var list []summaryJSON
	getJSON(t, ui.URL+"/api/exchanges", &list)
	if len(list) != 2 || !list[0].Wiretap || list[0].Differs == nil || !*list[0].Differs || list[0].Diff != "body $.price" ||
		list[1].Differs == nil || *list[1].Differs {
		t.Fatalf("list %+v", list)
	}
	var d detailJSON
	getJSON(t, ui.URL+"/api/exchanges/2", &d)
	if d.Cluster == nil || d.Cluster.Status != 200 || !strings.Contains(d.Cluster.Body.Text, `"price":10`) ||
		!strings.Contains(d.ResponseBody.Text, `"price":11`) {
		t.Fatalf("detail: cluster %+v, local body %q", d.Cluster, d.ResponseBody.Text)
	}
	if p := d.DiffDetail.Body.Paths; len(p) != 1 || p[0].Cluster != "10" || p[0].Local != "11" {
		t.Fatalf("diff paths %+v", p)
	}
	if got := d.RequestHeader.Get("Authorization"); got != Redacted {
		t.Fatalf("Authorization shown as %q", got)
	}

	// The page shows both answers and the diff.
	code, page := get(t, ui.URL+"/exchanges/2")
	for _, want := range []string{"Cluster's answer", "Local answer", "body $.price", "1 differ", `class="badge tap differs"`} {
		if code != 200 || !strings.Contains(page, want) {
			t.Errorf("page (%d) lacks %q", code, want)
		}
	}
}

// A copy made over HTTP/2 (gRPC, an h2c port) reaches the app over HTTP/2.
func TestWiretapH2(t *testing.T) {
	protos := make(chan string, 1)
	local := serveBoth(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	store := NewStore(0)
	wt := NewWiretap(NewForwarder(local, testRoute, store), store, WiretapOptions{})
	if d := wt.Handle(context.Background(), copied("GET", "/h", "HTTP/2.0", "", 200, `{"ok":true}`)); d.Differs() {
		t.Fatalf("diff %s", d.Summary())
	}
	if p := <-protos; p != "HTTP/2.0" {
		t.Fatalf("the app was asked over %s", p)
	}
}

// A request whose body was copied only in part is not sent to the app
// (it would not be the caller's request), and the inspector says why.
func TestWiretapDoesNotSendAPartialBody(t *testing.T) {
	called := make(chan bool, 1)
	local := app(t, func(http.ResponseWriter, *http.Request) { called <- true })
	store := NewStore(0)
	wt := NewWiretap(NewForwarder(local, testRoute, store), store, WiretapOptions{})
	ex := copied("POST", "/upload", "HTTP/1.1", "", 201, `{}`)
	ex.Request.Body = tap.CapBody(make([]byte, tap.BodyCap), tap.BodyCap+1)
	if d := wt.Handle(context.Background(), ex); d != nil {
		t.Fatalf("diff %v for a request not sent", d)
	}
	if c := store.WiretapCounts(); c.NotSent != 1 || c.Compared != 0 {
		t.Fatalf("counts %+v", c)
	}
	got := store.List()[0]
	if !strings.Contains(got.Error, "not sent to the local app") || got.Wiretap == nil || got.Wiretap.Status != 201 {
		t.Fatalf("exchange %+v", got)
	}
	select {
	case <-called:
		t.Fatal("the app was sent a partial body")
	default:
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s = %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// --record keeps the pairs (credentials redacted); replay sends them to
// another build and reports what differs, leaving out the redacted
// headers unless given again.
func TestRecordAndReplay(t *testing.T) {
	local := orderApp(t, nil)
	path := filepath.Join(t.TempDir(), "pairs.jsonl")
	rec, err := OpenRecorder(path, false)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(0)
	wt := NewWiretap(NewForwarder(local, testRoute, store), store, WiretapOptions{Record: rec, Ignore: mustIgnore(t, "$..timestamp")})
	err = wt.ServeStream(context.Background(), stream(t,
		copied("POST", "/orders/1", "HTTP/1.1", `{"n":1}`, 200, `{"id":"/orders/1","price":10,"timestamp":1}`),
		copied("GET", "/orders/2", "HTTP/1.1", "", 200, `{"id":"/orders/2","price":10,"timestamp":2}`),
	))
	if err != nil || wt.RecordErr() != nil {
		t.Fatal(err, wt.RecordErr())
	}
	rec.Close()
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("s3cret")) {
		t.Fatal("the record holds a credential")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("record file mode %v", fi.Mode())
	}

	var records []Record
	var lines []int
	f, _ := os.Open(path)
	defer f.Close()
	if err := ReadRecords(f, func(line int, r Record) error {
		records, lines = append(records, r), append(lines, line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 || records[1].Diff == nil || records[1].Local == nil || records[0].Request.Body.Text != `{"n":1}` {
		t.Fatalf("records %+v", records)
	}

	// Replay against the local build: the second request differs, as it
	// did live; Authorization was not sent, and is named.
	auths := make(chan string, 4)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
		http.StripPrefix("/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Host = local
			rp, _ := url.Parse("http://" + local + r.URL.RequestURI())
			resp, err := http.Get(rp.String())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			io.Copy(w, resp.Body)
		})).ServeHTTP(w, r)
	}))
	defer target.Close()
	base, _ := url.Parse(target.URL + "/base")
	rt := NewReplayTarget(base, mustIgnore(t, "$..timestamp"), nil, 10*time.Second)
	r0 := rt.Send(context.Background(), lines[0], records[0])
	r1 := rt.Send(context.Background(), lines[1], records[1])
	if r0.Differs() || !r1.Differs() || r1.Diff.Summary() != "body $.price" {
		t.Fatalf("replay: %+v / %+v", r0, r1.Diff)
	}
	if len(r0.Redacted) != 1 || r0.Redacted[0] != "Authorization" || <-auths != "" {
		t.Fatalf("redacted headers %v", r0.Redacted)
	}
	<-auths
	// -H gives the credential back.
	rt = NewReplayTarget(base, mustIgnore(t, "$..timestamp"), http.Header{"Authorization": {"Bearer again"}}, 10*time.Second)
	if r := rt.Send(context.Background(), 1, records[0]); len(r.Redacted) != 0 || <-auths != "Bearer again" {
		t.Fatalf("with -H: %+v", r)
	}
}

func TestReadRecordsRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"other kind":    `{"apiVersion":"intercept.kubectl.dev/v1alpha1","kind":"Intercept"}`,
		"other version": `{"apiVersion":"v9","kind":"WiretapExchange"}`,
		"not json":      `GET / HTTP/1.1`,
		"long line":     strings.Repeat("x", MaxRecordLine+1),
	} {
		t.Run(name, func(t *testing.T) {
			err := ReadRecords(strings.NewReader("\n"+in+"\n"), func(int, Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), "line 2") {
				t.Fatalf("ReadRecords: %v, want an error naming line 2", err)
			}
		})
	}
}

// The tunnel hands the developer's end every stream the sidecar opens: a
// stream of copies goes to the wiretap, never to the local port, and is
// closed unread where no wiretap was asked for.
func TestTapTellsCopiesFromCallers(t *testing.T) {
	hits := make(chan string, 4)
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"price":10}`)
	})
	store := NewStore(0)
	fwd := NewForwarder(local, testRoute, store)
	serve := func(tp *Tap, path string) {
		sidecar, cli := net.Pipe()
		go tp.ServeConn(cli)
		// A tap that takes no copies closes the stream: the write may fail.
		_ = tap.NewWriter(sidecar).Write(copied("GET", path, "HTTP/1.1", "", 200, `{"price":10}`))
		sidecar.Close()
	}

	without := NewTap(local, testRoute, store, httpwire.NewHTTPServer(fwd))
	defer without.Close()
	serve(without, "/without")

	with := NewTap(local, testRoute, store, httpwire.NewHTTPServer(fwd))
	defer with.Close()
	with.SetWiretap(NewWiretap(fwd, store, WiretapOptions{}))
	serve(with, "/copied")
	if p := <-hits; p != "/copied" {
		t.Fatalf("the app got %s", p)
	}
	ex := waitFor(t, store, "the copy compared", func(exs []Exchange) bool {
		return len(exs) == 1 && exs[0].Wiretap != nil && exs[0].Wiretap.Diff != nil
	})
	if ex[0].Wiretap.Diff.Differs() {
		t.Fatalf("diff %s", ex[0].Wiretap.Diff.Summary())
	}
	if c := store.WiretapCounts(); c.Copies != 1 {
		t.Fatalf("counts %+v: the tap without a wiretap took a copy", c)
	}
}
