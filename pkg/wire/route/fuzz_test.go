package route

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

// Whatever is typed after --cookie, parsing never panics, and what it
// accepts is a route the sidecar takes and a cookie net/http reads back
// as it was given.
func FuzzParseCookie(f *testing.F) {
	for _, s := range []string{"dev=alice", " dev = alice ", "dev=", "=alice", "dev", "de v=alice", "dev=ali ce",
		`dev="alice"`, "dev=a;b", "dev=a=b", "dev=jürgen", "\xff=\xfe", "dev=a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseCookie(s)
		if err != nil {
			if name != "" || value != "" {
				t.Fatalf("error with a result: %q %q", name, value)
			}
			return
		}
		if err := (Route{Cookie: name, Value: value}).Validate(); err != nil {
			t.Fatalf("accepted %q but the sidecar refuses it: %v", s, err)
		}
		cookies, err := http.ParseCookie(name + "=" + value)
		if err != nil || len(cookies) != 1 || cookies[0].Name != name || cookies[0].Value != value {
			t.Fatalf("accepted %q as %s=%s, net/http reads %v (%v)", s, name, value, cookies, err)
		}
	})
}

// Whatever is typed after --baggage, parsing never panics, and what it
// accepts is a route the sidecar takes, written back the same by
// EscapeBaggage.
func FuzzParseBaggage(f *testing.F) {
	for _, s := range []string{"dev=alice", " dev = alice ", "dev=alice%20smith", "dev=100%25", "dev=100%", "dev=%zz",
		"dev=", "dev", "de v=alice", "dev=a,b", "dev=jürgen", "dev=%C3%BC", "\xff=\xfe", "dev=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, value, err := ParseBaggage(s)
		if err != nil {
			if key != "" || value != "" {
				t.Fatalf("error with a result: %q %q", key, value)
			}
			return
		}
		if err := (Route{Baggage: key, Value: value}).Validate(); err != nil {
			t.Fatalf("accepted %q but the sidecar refuses it: %v", s, err)
		}
		k2, v2, err := ParseBaggage(key + "=" + EscapeBaggage(value))
		if err != nil || k2 != key || v2 != value {
			t.Fatalf("accepted %q as %s=%q, which escapes to %q, read back as %s=%q (%v)", s, key, value, EscapeBaggage(value), k2, v2, err)
		}
	})
}
