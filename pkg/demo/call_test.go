package demo

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// /call passes on only the headers named in forward, and answers with the
// callee's status and answer.
func TestCallForwardsOnlyNamedHeaders(t *testing.T) {
	_, callee := newTestServer(t)
	_, caller := newTestServer(t)
	for _, tc := range []struct {
		forward string
		want    []string
		lost    []string
	}{
		{"", nil, []string{"X-Dev", "Baggage", "Cookie"}},
		{"baggage", []string{"Baggage"}, []string{"X-Dev", "Cookie"}},
		{"x-dev, cookie,baggage", []string{"X-Dev", "Cookie", "Baggage"}, nil},
	} {
		u := caller.URL + "/call?to=" + url.QueryEscape(callee.URL+"/status/418") + "&forward=" + url.QueryEscape(tc.forward)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Dev", "alice")
		req.Header.Set("Baggage", "dev=alice")
		req.Header.Set("Cookie", "dev=alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got CallResponse
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("forward=%q: %v", tc.forward, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot || got.Status != http.StatusTeapot || !strings.Contains(string(got.Answer), "418") {
			t.Errorf("forward=%q: status %d, %+v", tc.forward, resp.StatusCode, got)
		}

		u = caller.URL + "/call?to=" + url.QueryEscape(callee.URL+"/") + "&forward=" + url.QueryEscape(tc.forward)
		req, _ = http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Dev", "alice")
		req.Header.Set("Baggage", "dev=alice")
		req.Header.Set("Cookie", "dev=alice")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatalf("forward=%q: %v", tc.forward, err)
		}
		resp.Body.Close()
		var echo EchoResponse
		if err := json.Unmarshal(got.Answer, &echo); err != nil {
			t.Fatalf("forward=%q: answer %s: %v", tc.forward, got.Answer, err)
		}
		for _, h := range tc.want {
			if echo.Headers[h] == "" {
				t.Errorf("forward=%q: %s did not reach the callee", tc.forward, h)
			}
		}
		for _, h := range tc.lost {
			if echo.Headers[h] != "" {
				t.Errorf("forward=%q: %s reached the callee", tc.forward, h)
			}
		}
	}
	resp, err := http.Get(caller.URL + "/call?to=nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/call without a URL: %d", resp.StatusCode)
	}
}
