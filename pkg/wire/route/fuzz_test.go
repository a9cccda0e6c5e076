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

// Whatever two valid routes on one marker narrow to, a request both take
// makes them conflict: Conflicts may say yes too often, never too seldom.
// The requests tried are built from the routes themselves (their
// prefixes, their regexes' samples and literal prefixes) and the fuzzed
// path.
func FuzzNarrowedConflicts(f *testing.F) {
	f.Add("/api", "", "GET", "", "/api/v[0-9]+", "", "/api/v2", false)
	f.Add("", "/healthz", "", "/health", "", "", "/healthz", true)
	f.Add("/a", "(?i)/A.*", "", "", "/a|/b", "POST", "/a", false)
	f.Add("", "/x/[^/]+/y", "DELETE,GET", "/x/", "/x/.*", "GET", "/x/1/y", true)
	f.Add("", "\ufffd", "", "", "\xff", "", "\xff", false)
	f.Fuzz(func(t *testing.T, prefixA, regexA, methodsA, prefixB, regexB, methodsB, path string, all bool) {
		// Steer the fuzzer to routes a sidecar takes: paths from '/',
		// methods canonical (none where they do not parse).
		for _, p := range []*string{&prefixA, &prefixB} {
			if *p != "" && (*p)[0] != '/' {
				*p = "/" + *p
			}
		}
		for _, m := range []*string{&methodsA, &methodsB} {
			if *m != "" {
				*m, _ = ParseMethods(*m)
			}
		}
		a := Route{Header: "x-dev", Value: "alice", PathPrefix: prefixA, PathRegex: regexA, Methods: methodsA, All: all}
		b := Route{Header: "x-dev", Value: "alice", PathPrefix: prefixB, PathRegex: regexB, Methods: methodsB}
		if a.Validate() != nil || b.Validate() != nil {
			return
		}
		if a.Conflicts(b) != b.Conflicts(a) {
			t.Fatalf("%s and %s conflict one way only", a, b)
		}
		var paths []string
		for _, r := range []Route{a, b} {
			p := Compile(r).paths()
			paths = append(paths, r.PathPrefix, SamplePath(r), p.prefix, p.prefix+path, r.PathPrefix+path)
		}
		paths = append(paths, path)
		methods := []string{"GET", SampleMethod(a), SampleMethod(b)}
		for _, p := range paths {
			if !a.MatchesPath(p) || !b.MatchesPath(p) {
				continue
			}
			for _, m := range methods {
				if a.MethodAllowed(m) && b.MethodAllowed(m) && !a.Conflicts(b) {
					t.Fatalf("%s %q is taken by %s and by %s, which do not conflict", m, p, a, b)
				}
			}
		}
		if s := SamplePath(a); s != "" && !a.MatchesPath(s) {
			t.Fatalf("SamplePath(%s) = %q, which it does not take", a, s)
		}
	})
}
