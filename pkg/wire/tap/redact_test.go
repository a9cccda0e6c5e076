package tap

import (
	"net/http"
	"testing"
)

func TestCopiesCarryNoCredentialButKeepTheirNames(t *testing.T) {
	h := http.Header{
		"Authorization":       {"Bearer alice-secret"},
		"Proxy-Authorization": {"Basic YWxpY2U6cHc="},
		"Cookie":              {"session=1", "theme=dark"},
		"Set-Cookie":          {"session=2; HttpOnly"},
		"X-Api-Key":           {"k"},
		"X-Auth-Token":        {"t"},
		"Content-Type":        {"application/json"},
		"X-Request-Id":        {"42"},
	}
	Redact(h)
	for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "X-Auth-Token"} {
		if !AllRedacted(h[name]) {
			t.Errorf("%s is copied as %q", name, h[name])
		}
	}
	if n := len(h["Cookie"]); n != 2 {
		t.Errorf("Cookie has %d values after redaction, want 2 (one a line sent)", n)
	}
	if h.Get("Content-Type") != "application/json" || h.Get("X-Request-Id") != "42" {
		t.Errorf("headers that carry no credential changed: %v", h)
	}
	if AllRedacted(nil) || AllRedacted([]string{Redacted, "x"}) {
		t.Error("AllRedacted holds for a header with no value or a value that is not redacted")
	}
}
