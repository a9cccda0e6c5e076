package inspect

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// X-Api-Key-style headers and token-like query parameters are redacted on
// the page, in the list and detail of the API, and in the live rows,
// unless --inspect-show-secrets; the stored request keeps them for replay.
func TestInspectorRedactsKeysAndQueryTokens(t *testing.T) {
	secrets := []string{"k3y-v4lue", "t0k3n-v4lue", "4cc3ss", "s1gn4ture", "amz-s1g", "cl13nt-s3cret", "hub-s1g"}
	ex := Exchange{Method: "GET", Status: 200, Done: true,
		Path:           "/callback?page=2&access_token=4cc3ss&X-Amz-Signature=amz-s1g&sig=s1gn4ture&client_secret=cl13nt-s3cret",
		RequestHeader:  http.Header{"X-Api-Key": {"k3y-v4lue"}, "X-Auth-Token": {"t0k3n-v4lue"}, "X-Dev": {"alice"}},
		ResponseHeader: http.Header{"X-Hub-Signature": {"hub-s1g"}, "Content-Type": {"text/plain"}}}
	s := recorded(ex)
	ui := httptest.NewServer(NewUI(s, nil))
	defer ui.Close()
	for _, target := range []string{"/", "/exchanges/1", "/api/exchanges", "/api/exchanges/1"} {
		_, body := get(t, ui.URL+target)
		for _, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q", target, secret)
			}
		}
		if !strings.Contains(body, "page=2") {
			t.Errorf("%s lost the path's other parameters:\n%s", target, body)
		}
	}
	_, body := get(t, ui.URL+"/api/exchanges/1")
	if !strings.Contains(body, "alice") || !strings.Contains(body, "access_token=[redacted]") {
		t.Errorf("the detail lost what is not a credential:\n%s", body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ui.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewScanner(resp.Body)
	for events.Scan() {
		if line := events.Text(); strings.HasPrefix(line, "data: <tr") {
			if strings.Contains(line, "4cc3ss") || strings.Contains(line, "s1gn4ture") {
				t.Errorf("the live row shows a token: %s", line)
			}
			break
		}
	}

	shown := httptest.NewServer(NewUIWith(s, nil, UIOptions{ShowSecrets: true}))
	defer shown.Close()
	if _, body := get(t, shown.URL+"/api/exchanges/1"); !strings.Contains(body, "k3y-v4lue") || !strings.Contains(body, "access_token=4cc3ss") {
		t.Errorf("--inspect-show-secrets does not show them:\n%s", body)
	}
	if got, _ := s.Get(1); got.RequestHeader.Get("X-Api-Key") != "k3y-v4lue" || !strings.Contains(got.Path, "4cc3ss") {
		t.Error("the stored request lost its credentials (replays need them)")
	}
}

func TestRedactPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                         "/",
		"/a?b=1":                    "/a?b=1",
		"/a?token=x":                "/a?token=[redacted]",
		"/a?api_key=x&y=2":          "/a?api_key=[redacted]&y=2",
		"/a?Key=x":                  "/a?Key=[redacted]",
		"/a?refresh_token=x&flag":   "/a?refresh_token=[redacted]&flag",
		"/a?access%5Ftoken=x":       "/a?access%5Ftoken=[redacted]",
		"/a?X-Goog-Signature=abc#f": "/a?X-Goog-Signature=[redacted]",
		"/a?monkey=banana":          "/a?monkey=banana",
	} {
		if got := redactPath(in); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
