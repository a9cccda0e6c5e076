package tunnel

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// Whatever is typed after -x, parsing never panics, and what it accepts
// is a header a request can carry and the proxy can match.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"x-dev:alice", "X-C6O-INTERCEPT:yes", " x-dev : alice ", "x-dev:", ":alice", "x dev:alice",
		"x-dev:al\r\nice", "x-dev:a:b", "baggage:user=alice", "x-dev:\x00", "\xff:\xfe", "x-dév:alice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			if name != "" || value != "" {
				t.Fatalf("error with a result: %q %q", name, value)
			}
			return
		}
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) || value == "" {
			t.Fatalf("accepted %q as name %q value %q", s, name, value)
		}
		if strings.TrimSpace(value) != value {
			t.Fatalf("value %q keeps surrounding space", value)
		}
		// The proxy looks the header up in the parsed request, whatever
		// case the caller wrote the name in.
		h := http.Header{}
		h.Add(strings.ToLower(name), value)
		if h.Get(strings.ToUpper(name)) != value {
			t.Fatalf("header %q=%q cannot be looked up", name, value)
		}
	})
}
