package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// A teammate's `-a --wiretap` copies a request with its credentials'
// names but none of their values: Authorization and Cookie on the way in,
// Set-Cookie on the way out; the rest as sent.
func TestWiretapCopiesCarryNoCredentials(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Set-Cookie", "session=alice-session; HttpOnly")
		w.Header().Set("X-Answered-By", "app")
		w.Write([]byte("welcome"))
	}))
	t.Cleanup(app.Close)
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
	eve := wiretap(t, <-ctrl, route.Route{All: true, Wiretap: true, Owner: "eve", Client: eveKey})
	req, _ := http.NewRequest("POST", "http://"+addr+"/login", strings.NewReader("user=alice"))
	req.Header.Set("Authorization", "Bearer alice-secret")
	req.Header.Set("Cookie", "session=alice-old")
	req.Header.Set("X-Api-Key", "alice-key")
	req.Header.Set("X-Request-Id", "42")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := resp.Header.Get("Set-Cookie"); got != "session=alice-session; HttpOnly" {
		t.Fatalf("the caller got Set-Cookie %q, want the app's", got)
	}
	ex := eve.waitCopies(t, 1)[0]
	for name, h := range map[string]http.Header{
		"Authorization": ex.Request.Header, "Cookie": ex.Request.Header, "X-Api-Key": ex.Request.Header,
		"Set-Cookie": ex.Response.Header,
	} {
		if vs := h.Values(name); !tap.AllRedacted(vs) {
			t.Errorf("the copy carries %s %q", name, vs)
		}
	}
	if ex.Request.Header.Get("X-Request-Id") != "42" || ex.Response.Header.Get("X-Answered-By") != "app" ||
		string(ex.Request.Body.Data) != "user=alice" || string(ex.Response.Body.Data) != "welcome" {
		t.Errorf("the copy lost what carries no credential: %+v", ex)
	}
}

// Alice intercepts her marker: eve's `-a --wiretap` gets no copy of her
// requests (nor of her laptop's answers), only of what the app answers;
// alice's own wiretap, under her owner key, still gets hers.
func TestWiretapNeverCopiesWhatATeammatesInterceptTakes(t *testing.T) {
	app, laptop := readingApp(t, "app", false), readingApp(t, "alice-laptop", false)
	ctrl := make(chan string, 1)
	addr := startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
	c := <-ctrl
	alice := controlClient(t, c)
	if _, err := alice.Register(route.Route{Header: "X-Dev", Value: "alice", Owner: "alice", Client: aliceKey}); err != nil {
		t.Fatal(err)
	}
	go alice.Serve(context.Background(), func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", hostOf(laptop))
	}, func(error) {})
	eve := wiretap(t, c, route.Route{All: true, Wiretap: true, Owner: "eve", Client: eveKey})
	aliceTap := wiretap(t, c, route.Route{Header: "X-Dev", Value: "alice", Wiretap: true, Owner: "alice", Client: aliceKey})
	// One connection, one request after the other: each copy is offered
	// before the next request is read, so eve's copies come in order.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	send := func(dev, body string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/orders", strings.NewReader(body))
		if dev != "" {
			req.Header.Set("X-Dev", dev)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Answered-By")
	}
	if by := send("alice", "alice's order"); by != "alice-laptop" {
		t.Fatalf("alice's request answered by %q", by)
	}
	if by := send("", "someone's order"); by != "app" {
		t.Fatalf("an unmarked request answered by %q", by)
	}
	ex := eve.waitCopies(t, 1)[0]
	if string(ex.Request.Body.Data) != "someone's order" || ex.Response.Header.Get("X-Answered-By") != "app" {
		t.Fatalf("eve's copy is of %q answered by %q, want only the app's answer to the unmarked request",
			ex.Request.Body.Data, ex.Response.Header.Get("X-Answered-By"))
	}
	own := aliceTap.waitCopies(t, 1)[0]
	if string(own.Request.Body.Data) != "alice's order" || own.Response.Header.Get("X-Answered-By") != "alice-laptop" {
		t.Fatalf("alice's own wiretap got %q answered by %q", own.Request.Body.Data, own.Response.Header.Get("X-Answered-By"))
	}
}

// Through the control port, sessions of 16 routes each: the pod takes 32
// wiretaps, refuses the 33rd saying why, still lets a developer register
// theirs again, and takes a new one once one has ended.
func TestWiretapsPerPodAreBounded(t *testing.T) {
	app := readingApp(t, "app", false)
	ctrl := make(chan string, 1)
	startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
	c := <-ctrl
	session := func() *tunnel.Client { return controlClient(t, c) }
	key := func(i int) string { return fmt.Sprintf("%064x", i+1) }
	var sessions []*tunnel.Client
	accepted := 0
	var refused error
	for s := 0; s < 3 && refused == nil; s++ {
		tc := session()
		sessions = append(sessions, tc)
		for i := range 16 {
			if _, err := tc.Register(route.Route{All: true, Wiretap: true, Owner: "eve", Client: key(s*16 + i)}); err != nil {
				refused = err
				break
			}
			accepted++
		}
	}
	if accepted != tapMaxRoutes {
		t.Fatalf("%d wiretaps accepted, want %d", accepted, tapMaxRoutes)
	}
	want := fmt.Sprintf("this pod holds %d wiretaps, the most it takes", tapMaxRoutes)
	if refused == nil || !strings.Contains(refused.Error(), want) {
		t.Fatalf("the wiretap past the bound: %v, want %q", refused, want)
	}
	if _, err := sessions[0].Register(route.Route{All: true, Wiretap: true, Owner: "eve", Client: key(0)}); err != nil {
		t.Fatalf("registering a wiretap again under its owner key with the pod full: %v", err)
	}
	sessions[1].Close() // its 16 wiretaps end with it
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := session().Register(route.Route{All: true, Wiretap: true, Owner: "bob", Client: bobKey})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a wiretap after 16 ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// However many developers ask, a table holds tapMaxRoutes wiretaps.
func TestWiretapTableRefusesPastTheBound(t *testing.T) {
	table := &Table{}
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("unused") }
	for i := range tapMaxRoutes + 10 {
		_, err := table.Add(route.Route{All: true, Wiretap: true, Client: fmt.Sprintf("%064x", i+1)}, dial)
		if i < tapMaxRoutes && err != nil {
			t.Fatalf("wiretap %d refused: %v", i, err)
		}
		if i >= tapMaxRoutes && !errors.Is(err, tunnel.ErrFailed) {
			t.Fatalf("wiretap %d: %v, want it refused", i, err)
		}
	}
	if n := int(table.nTaps.Load()); n != tapMaxRoutes {
		t.Fatalf("%d wiretaps live, want %d", n, tapMaxRoutes)
	}
}

// The queues of all wiretaps share one byte budget besides their own: a
// copy past it is dropped and counted, and a queue that ends gives its
// bytes back.
func TestWiretapQueuesShareOneBudget(t *testing.T) {
	bounds := &tapBounds{maxQueued: 5 << 20}
	newQueue := func() *tapRoute {
		return newTapRoute(nil, bounds)
	}
	a, b := newQueue(), newQueue()
	ex := &tap.Exchange{Request: tap.Request{Body: tap.Body{Data: make([]byte, 1<<20)}}}
	for range 3 {
		a.offer(ex)
		b.offer(ex)
	}
	if len(a.ch)+len(b.ch) != 4 || a.dropped.Load()+b.dropped.Load() != 2 {
		t.Fatalf("queued %d and %d, dropped %d and %d: want 4 queued and 2 dropped past 5 MiB in all",
			len(a.ch), len(b.ch), a.dropped.Load(), b.dropped.Load())
	}
	a.close()
	b.close()
	if n := bounds.queued.Load(); n != 0 {
		t.Fatalf("%d bytes still counted after both queues ended", n)
	}
	a.offer(ex) // a copy offered to an ended queue is not kept
	if n := bounds.queued.Load(); n != 0 || len(a.ch) != 0 {
		t.Fatalf("an ended queue took a copy (%d bytes counted)", n)
	}
}

// Uploads in flight get copies while the in-flight budget lasts; the rest
// are served all the same, counted as dropped, and the count reaches the
// developer on the next copy; the budget is all given back.
func TestWiretapCopiesPastTheInFlightBudgetAreDroppedAndCounted(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	const n = 6
	arrived.Add(n)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/upload" {
			arrived.Done()
			<-release
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(app.Close)
	table := &Table{}
	table.tapBounds.maxInFlight = 3 << 20
	dev, sidecarEnd := net.Pipe()
	t.Cleanup(func() { dev.Close() })
	var mu sync.Mutex
	var copies []*tap.Exchange
	go func() {
		r := tap.NewReader(dev)
		for {
			ex, err := r.Read()
			if err != nil {
				return
			}
			mu.Lock()
			copies = append(copies, ex)
			mu.Unlock()
		}
	}()
	dial := func(context.Context) (net.Conn, error) { return sidecarEnd, nil }
	if _, err := table.Add(route.Route{All: true, Wiretap: true, Owner: "eve", Client: eveKey}, dial); err != nil {
		t.Fatal(err)
	}
	sidecar := httptest.NewServer(NewHandler(table, hostOf(app), "p", nil))
	t.Cleanup(sidecar.Close)
	body := make([]byte, 1<<20)
	var done sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := http.Post(sidecar.URL+"/upload", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				statuses <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	arrived.Wait()
	if held := table.tapBounds.inFlight.Load(); held > 3<<20 {
		t.Fatalf("copies of uploads in flight hold %d bytes, past the budget of %d", held, 3<<20)
	}
	close(release)
	done.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("an upload answered %d, want 200 with or without a copy", s)
		}
	}
	// One request more carries the count of the copies dropped before it.
	resp, err := http.Get(sidecar.URL + "/after")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var uploads, dropped uint64
		last := false
		for _, ex := range copies {
			dropped += ex.Dropped
			if ex.Request.Target == "/upload" {
				uploads++
			} else {
				last = true
			}
		}
		mu.Unlock()
		if last {
			if uploads == 0 || uploads == n || uploads+dropped != n {
				t.Fatalf("%d uploads copied and %d counted as dropped, want some of each and %d in all", uploads, dropped, n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no copy of the request after the uploads (%d copies)", len(copies))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for table.tapBounds.inFlight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the in-flight budget never given back", table.tapBounds.inFlight.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// 100 callers' 1 MiB uploads in flight to a slow endpoint grow the
// sidecar's heap by no more than the in-flight budget beyond what they
// cost without a wiretap.
func TestWiretapUploadsInFlightHoldBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 200 MiB")
	}
	grew := map[bool]int64{}
	for _, tapped := range []bool{false, true} {
		release := make(chan struct{})
		var arrived sync.WaitGroup
		const n = 100
		arrived.Add(n)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			arrived.Done()
			<-release
		}))
		ctrl := make(chan string, 1)
		addr := startProxyReady(t, Config{Upstream: hostOf(app), Control: "127.0.0.1:0"}, ctrl)
		c := <-ctrl
		if tapped {
			wiretap(t, c, route.Route{All: true, Wiretap: true, Owner: "eve", Client: eveKey})
		}
		body := make([]byte, 1<<20)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var done sync.WaitGroup
		for range n {
			done.Add(1)
			go func() {
				defer done.Done()
				resp, err := http.Post("http://"+addr+"/upload", "application/octet-stream", bytes.NewReader(body))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		arrived.Wait()
		runtime.GC()
		runtime.ReadMemStats(&after)
		grew[tapped] = (int64(after.HeapInuse) - int64(before.HeapInuse)) >> 20
		close(release)
		done.Wait()
		app.Close()
	}
	t.Logf("heap in use grew by %d MiB without a wiretap, %d MiB with one", grew[false], grew[true])
	if extra := grew[true] - grew[false]; extra > tapInFlightBytes>>20+8 {
		t.Errorf("a wiretap lets 100 uploads in flight hold %d MiB more of the sidecar's heap (budget %d MiB)", extra, tapInFlightBytes>>20)
	}
}
