package inspect

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorded fills a store with finished exchanges, oldest first.
func recorded(exs ...Exchange) *Store {
	s := NewStore(0)
	for _, ex := range exs {
		ex.Done = true
		s.add(ex)
	}
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The page lists the exchanges newest first and escapes what callers sent.
func TestUIPageListsExchanges(t *testing.T) {
	s := recorded(
		Exchange{Method: "GET", Path: "/first", Status: 200, Route: testRoute},
		Exchange{Method: "POST", Path: "/<script>alert(1)</script>", Status: 500},
	)
	ui := httptest.NewServer(NewUI(s, nil))
	defer ui.Close()

	code, page := get(t, ui.URL+"/")
	if code != 200 {
		t.Fatalf("GET / = %d", code)
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("a recorded path reached the page unescaped")
	}
	first, second := strings.Index(page, `id="x-1"`), strings.Index(page, `id="x-2"`)
	if first < 0 || second < 0 || second > first {
		t.Errorf("rows not newest first (x-1 at %d, x-2 at %d)", first, second)
	}
	if !strings.Contains(page, testRoute) || !strings.Contains(page, `src="/static/inspect.js"`) {
		t.Error("the page lacks the route or its script")
	}

	code, page = get(t, ui.URL+"/?status=5xx")
	if code != 200 || strings.Contains(page, `id="x-1"`) || !strings.Contains(page, `id="x-2"`) {
		t.Errorf("?status=5xx: %d, row 1 shown %v, row 2 shown %v", code, strings.Contains(page, `id="x-1"`), strings.Contains(page, `id="x-2"`))
	}
	code, page = get(t, ui.URL+"/exchanges/1")
	if code != 200 || !strings.Contains(page, `<article id="exchange" data-id="1"`) {
		t.Errorf("/exchanges/1: %d, detail shown %v", code, strings.Contains(page, `id="exchange"`))
	}
	if code, _ = get(t, ui.URL+"/exchanges/99"); code != 404 {
		t.Errorf("/exchanges/99 = %d, want 404", code)
	}
	if code, _ = get(t, ui.URL+"/static/inspect.css"); code != 200 {
		t.Errorf("/static/inspect.css = %d", code)
	}
}

// The detail shows text escaped, truncation marked, binary as hex.
func TestUIDetail(t *testing.T) {
	s := recorded(Exchange{
		Method: "POST", Path: "/upload", Status: 200,
		RequestHeader: http.Header{"X-Dev": {"alice"}}, RequestBody: Body{Data: []byte("<b>bold</b>")}, RequestSize: 11,
		ResponseHeader: http.Header{"Content-Type": {"image/png"}}, ResponseBody: Body{Data: []byte("\x89PNG\r\n\x1a\n\x00\x00"), Truncated: true}, ResponseSize: 4096,
	})
	ui := httptest.NewServer(NewUI(s, nil))
	defer ui.Close()

	_, html := get(t, ui.URL+"/exchanges/1/detail")
	for _, want := range []string{"X-Dev", "alice", "&lt;b&gt;bold&lt;/b&gt;", "binary, 4096 bytes", `class="truncated"`, "89 50 4e 47", "Replay is off"} {
		if !strings.Contains(html, want) {
			t.Errorf("detail lacks %q", want)
		}
	}

	_, raw := get(t, ui.URL+"/api/exchanges/1")
	var d detailJSON
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatal(err)
	}
	if d.RequestBody.Text != "<b>bold</b>" || d.RequestBody.Binary || d.RequestHeader.Get("X-Dev") != "alice" {
		t.Errorf("request in JSON: %+v %v", d.RequestBody, d.RequestHeader)
	}
	if !d.ResponseBody.Binary || d.ResponseBody.Text != "" || len(d.ResponseBody.Base64) != 10 || !d.ResponseBody.Truncated || d.ResponseBody.Size != 4096 {
		t.Errorf("binary response in JSON: %+v", d.ResponseBody)
	}
}

func TestUIListAPIFilters(t *testing.T) {
	s := recorded(
		Exchange{Method: "GET", Path: "/ok", Status: 200},
		Exchange{Method: "GET", Path: "/missing", Status: 404},
		Exchange{Method: "GET", Path: "/boom", Status: 503},
	)
	ui := httptest.NewServer(NewUI(s, nil))
	defer ui.Close()

	_, raw := get(t, ui.URL+"/api/exchanges?status=4xx,5xx")
	var list []summaryJSON
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Path != "/boom" || list[1].Path != "/missing" {
		t.Errorf("status=4xx,5xx gave %+v", list)
	}
	code, raw := get(t, ui.URL+"/api/exchanges?status=bad")
	if code != 400 || !strings.Contains(raw, "4xx") {
		t.Errorf("status=bad: %d %s", code, raw)
	}
	_, raw = get(t, ui.URL+"/api/exchanges?path=nothing")
	if strings.TrimSpace(raw) != "[]" {
		t.Errorf("no match gives %s, want []", raw)
	}
}

// The event stream sends a row for each new exchange that matches its
// filter, as it happens.
func TestUIEventsFollowTheStore(t *testing.T) {
	s := NewStore(0)
	ui := httptest.NewServer(NewUI(s, nil))
	defer ui.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ui.URL+"/api/events?status=4xx", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}

	s.add(Exchange{Path: "/fine", Status: 200, Done: true})
	s.add(Exchange{Path: "/gone", Status: 404, Done: true})
	events := bufio.NewScanner(resp.Body)
	var seen []string
	for events.Scan() {
		line := events.Text()
		seen = append(seen, line)
		if strings.HasPrefix(line, "data: <tr") {
			if !strings.Contains(line, `id="x-2"`) || !strings.Contains(line, "/gone") {
				t.Errorf("row event %q, want the 404", line)
			}
			return
		}
	}
	t.Fatalf("no row event; stream said %q (%v)", seen, events.Err())
}

// Replay sends the recorded request to the app again and records a new
// exchange marked as a replay.
func TestUIReplay(t *testing.T) {
	var hits atomic.Int32
	bodies := make(chan string, 4)
	local := app(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies <- r.Header.Get("X-Dev") + " " + string(b)
		w.WriteHeader(http.StatusAccepted)
	})
	store := NewStore(0)
	fwd := NewForwarder(local, testRoute, store)
	base := "http://" + serveBoth(t, fwd)
	ui := httptest.NewServer(NewUI(store, fwd))
	defer ui.Close()

	req, _ := http.NewRequest(http.MethodPost, base+"/orders?id=7", strings.NewReader(`{"qty":2}`))
	req.Header.Set("X-Dev", "alice")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitDone(t, store, 1)

	resp, err = client.Post(ui.URL+"/api/exchanges/1/replay", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res replayed
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("replay answered %d: %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || res.ID != 2 || res.Of != 1 || res.Status != http.StatusAccepted {
		t.Fatalf("replay answered %d %+v, want 200 {id 2, replay_of 1, status 202}", resp.StatusCode, res)
	}
	if hits.Load() != 2 {
		t.Errorf("the app got %d requests, want 2", hits.Load())
	}
	if a, b := <-bodies, <-bodies; a != b || a != `alice {"qty":2}` {
		t.Errorf("the app got %q, then %q on replay", a, b)
	}
	ex := waitDone(t, store, 2)[0]
	if !ex.Replay || ex.ReplayOf != 1 || ex.Path != "/orders?id=7" || ex.Method != "POST" || ex.Status != 202 {
		t.Errorf("replay recorded as %+v", ex)
	}
}

// Replay refuses what it cannot send as it was, and says why.
func TestUIReplayRefuses(t *testing.T) {
	s := recorded(
		Exchange{Method: "POST", Path: "/big", Status: 200, RequestBody: Body{Data: []byte("start"), Truncated: true}, RequestSize: 1 << 20},
		Exchange{Method: "GET", Path: "/ws", Status: 101},
	)
	fwd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("a refused replay reached the forwarder") })
	ui := httptest.NewServer(NewUI(s, fwd))
	defer ui.Close()
	noReplay := httptest.NewServer(NewUI(s, nil))
	defer noReplay.Close()

	for _, tc := range []struct {
		url  string
		code int
		why  string
	}{
		{ui.URL + "/api/exchanges/1/replay", 409, "request body"},
		{ui.URL + "/api/exchanges/2/replay", 409, "WebSocket"},
		{ui.URL + "/api/exchanges/9/replay", 404, "not kept"},
		{noReplay.URL + "/api/exchanges/1/replay", 503, "no forwarder"},
	} {
		resp, err := client.Post(tc.url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.why) {
			t.Errorf("POST %s = %d %s, want %d saying %q", tc.url, resp.StatusCode, b, tc.code, tc.why)
		}
	}
}

// Another web site cannot read the inspector through a name of its own
// (DNS rebinding) nor make the browser replay requests.
func TestUIRefusesOtherSites(t *testing.T) {
	ui := httptest.NewServer(NewUI(recorded(Exchange{Method: "GET", Path: "/", Status: 200}), http.NotFoundHandler()))
	defer ui.Close()

	req, _ := http.NewRequest(http.MethodGet, ui.URL+"/api/exchanges", nil)
	req.Host = "attacker.example:4040"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host attacker.example: %d, want 421", resp.StatusCode)
	}

	req, _ = http.NewRequest(http.MethodPost, ui.URL+"/api/exchanges/1/replay", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://attacker.example")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site replay: %d, want 403", resp.StatusCode)
	}

	for _, host := range []string{"127.0.0.1:4040", "localhost:4040", "[::1]:4040", "inspect.localhost"} {
		if !localName(host) {
			t.Errorf("%s refused", host)
		}
	}
}

// Credentials are redacted on the page and in the API unless asked for;
// an inspector with a token refuses requests without it.
func TestInspectorRedactsAndAsksForToken(t *testing.T) {
	s := NewStore(0)
	id := s.add(Exchange{Method: "GET", Path: "/", Done: true,
		RequestHeader:  http.Header{"Authorization": {"Bearer s3cret"}, "Cookie": {"session=abc"}, "X-Dev": {"alice"}},
		ResponseHeader: http.Header{"Set-Cookie": {"session=def"}}})
	get := func(h http.Handler, target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Host = "127.0.0.1:4040"
		h.ServeHTTP(w, r)
		return w
	}
	api := "/api/exchanges/" + strconv.FormatUint(id, 10)
	for _, target := range []string{api, "/exchanges/" + strconv.FormatUint(id, 10)} {
		body := get(NewUI(s, nil), target).Body.String()
		for _, secret := range []string{"s3cret", "session=abc", "session=def"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q by default", target, secret)
			}
		}
		if !strings.Contains(body, "alice") {
			t.Errorf("%s lost the other headers", target)
		}
	}
	if body := get(NewUIWith(s, nil, UIOptions{ShowSecrets: true}), api).Body.String(); !strings.Contains(body, "s3cret") {
		t.Errorf("--inspect-show-secrets does not show them: %s", body)
	}
	if got, _ := s.Get(id); got.RequestHeader.Get("Authorization") != "Bearer s3cret" {
		t.Error("the stored request lost its credentials (replays need them)")
	}

	guarded := NewUIWith(s, nil, UIOptions{Token: "t0k3n"})
	if w := get(guarded, api); w.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", w.Code)
	}
	if w := get(guarded, api+"?token=wrong"); w.Code != http.StatusUnauthorized {
		t.Errorf("with a wrong token: %d", w.Code)
	}
	w := get(guarded, "/?token=t0k3n")
	if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Set-Cookie"), "t0k3n") {
		t.Fatalf("with the token: %d %q", w.Code, w.Header().Get("Set-Cookie"))
	}
	r := httptest.NewRequest(http.MethodGet, api, nil)
	r.AddCookie(&http.Cookie{Name: tokenCookie, Value: "t0k3n"})
	w = httptest.NewRecorder()
	guarded.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("with the token's cookie: %d", w.Code)
	}
}
