package route

import (
	"encoding/json"
	"strings"
	"testing"
)

// The flags that narrow a route take what a developer would write, and
// say how to fix what a request's path or method cannot carry.
func TestParseNarrowing(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"/api/v2", "/api/v2", ""},
		{"/", "/", ""},
		{"/caf%C3%A9/", "/caf%C3%A9/", ""},
		{"", "", "empty"},
		{"api", "", "does not start with '/'"},
		{"/api?x=1", "", "without a query"},
		{"/api#top", "", "without a query"},
		{"/my api", "", "%20"},
		{"/a\tb", "", "control character"},
		{"/café", "", "/caf%C3%A9"},
		{"/" + strings.Repeat("a", MaxPathPrefix), "", "longer than"},
	} {
		got, err := ParsePathPrefix(tc.in)
		if got != tc.want || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParsePathPrefix(%q) = %q, %v; want %q, error with %q", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		in, err string
	}{
		{"/api/v[0-9]+/.*", ""},
		{"/pkg.Svc/(Get|List)", ""},
		{"^/anchored$", ""},
		{"", "empty"},
		{"/api/(", "missing closing )"},
		{"/a(?=b)", "not an RE2 expression"},
		{strings.Repeat("a", MaxPathRegex+1), "longer than"},
	} {
		got, err := ParsePathRegex(tc.in)
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) || err == nil && got != tc.in {
			t.Errorf("ParsePathRegex(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
	for _, tc := range []struct {
		in, want, err string
	}{
		{"GET", "GET", ""},
		{"post,get", "GET,POST", ""},
		{" get , POST ,Get", "GET,POST", ""},
		{"PURGE", "PURGE", ""},
		{"", "", "empty method"},
		{"GET,", "", "empty method"},
		{"GET POST", "", "does not allow"},
		{"GÉT", "", "does not allow"},
	} {
		got, err := ParseMethods(tc.in)
		if got != tc.want || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseMethods(%q) = %q, %v; want %q, error with %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// A sidecar re-checks what narrows a route: a CLI's bug or a stranger's
// control call cannot install a regex it would choke on, or methods in a
// form two routes could spell differently.
func TestValidateNarrowing(t *testing.T) {
	x := Route{Header: "x-dev", Value: "alice"}
	with := func(f func(*Route)) Route { r := x; f(&r); return r }
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{with(func(r *Route) { r.PathPrefix, r.PathRegex, r.Methods = "/api", "/api/[a-z]+", "GET,POST" }), ""},
		{Route{All: true, PathPrefix: "/hooks/"}, ""},
		{Route{All: true, Methods: "POST", Remote: "https://x.ngrok.app", Secret: strings.Repeat("s", 32)}, ""},
		{Route{All: true, Remote: "https://x.ngrok.app", Secret: strings.Repeat("s", 32)}, "narrow the route"},
		{with(func(r *Route) { r.PathPrefix = "api" }), "does not start with '/'"},
		{with(func(r *Route) { r.PathRegex = "(" }), "not an RE2 expression"},
		{with(func(r *Route) { r.Methods = "get" }), "not upper case, sorted"},
		{with(func(r *Route) { r.Methods = "POST,GET" }), "not upper case, sorted"},
		{with(func(r *Route) { r.Methods = "GET,GET" }), "not upper case, sorted"},
		{Route{All: true, Methods: "GET,"}, "empty method"},
	} {
		err := tc.r.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%#v: %v, want %q", tc.r, err, tc.want)
		}
	}
}

// list and status print a narrowed route so that a developer sees what it
// takes; the fields travel only when set, so a route that is not narrowed
// reads as before.
func TestNarrowedString(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Header: "x-dev", Value: "alice", PathPrefix: "/api/v2", Methods: "GET,POST"}, "x-dev:alice path /api/v2* GET,POST"},
		{Route{All: true, PathRegex: "/hooks/[a-z]+"}, "all traffic path ~/hooks/[a-z]+"},
		{Route{Cookie: "dev", Value: "a", PathPrefix: "/api", PathRegex: "/api/v[12]/.*"}, "cookie dev=a path /api* ~/api/v[12]/.*"},
		{Route{All: true, Methods: "DELETE"}, "all traffic DELETE"},
		{Route{All: true}, "all traffic"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v renders %q, want %q", tc.r, got, tc.want)
		}
		if tc.r.Narrowed() != (tc.want != "all traffic") {
			t.Errorf("%s: Narrowed() = %v", tc.r, tc.r.Narrowed())
		}
	}
	b, _ := json.Marshal(Route{Header: "x-dev", Value: "a", PathPrefix: "/api", PathRegex: "/api/.*", Methods: "GET"})
	if string(b) != `{"header":"x-dev","value":"a","pathPrefix":"/api","pathRegex":"/api/.*","methods":"GET"}` {
		t.Errorf("a narrowed route encodes as %s", b)
	}
}

// Two developers may share a marker when their paths or methods part; a
// request both could take makes them conflict.
func TestNarrowedConflicts(t *testing.T) {
	x := func(prefix, regex, methods string) Route {
		return Route{Header: "x-dev", Value: "alice", PathPrefix: prefix, PathRegex: regex, Methods: methods}
	}
	all := func(prefix, regex, methods string) Route {
		return Route{All: true, PathPrefix: prefix, PathRegex: regex, Methods: methods}
	}
	for _, tc := range []struct {
		a, b Route
		want bool
	}{
		{x("/api", "", ""), x("/web", "", ""), false},
		{x("/api", "", ""), x("/api/v2", "", ""), true},
		{x("/api", "", ""), x("/apiv2", "", ""), true}, // /apiv2 starts with /api
		{x("/api", "", ""), x("", "", ""), true},
		{x("/api", "", "GET"), x("/api", "", "POST"), false},
		{x("/api", "", "GET,POST"), x("/api", "", "DELETE,POST"), true},
		{x("/api", "", "GET"), x("/api", "", ""), true},
		{x("/api", "", ""), Route{Header: "x-dev", Value: "bob", PathPrefix: "/api"}, false},
		{x("/api", "", ""), Route{Header: "X-DEV", Value: "alice", PathPrefix: "/api"}, true},
		// Regexes, by their literal prefixes.
		{x("", "/api/v[0-9]+", ""), x("", "/web/.*", ""), false},
		{x("", "/api/v[0-9]+", ""), x("/api/v2", "", ""), true},
		{x("", "/api/v[0-9]+", ""), x("/api/v2x", "", ""), true}, // conservative: by the literal prefix /api/v
		{x("", "/api/v[0-9]+", ""), x("/api/x", "", ""), false},
		{x("", "/api/v[0-9]+", ""), x("/web", "", ""), false},
		{x("", "/(api|web)/.*", ""), x("/web", "", ""), true},
		{x("", "(?i)/api", ""), x("/web", "", ""), true}, // no literal prefix: may overlap
		// A regex that is a literal takes one path.
		{x("", "/healthz", ""), x("/health", "", ""), true},
		{x("", "/healthz", ""), x("", "/health[z]", ""), true},
		{x("", "/healthz", ""), x("", "/health[a-y]", ""), false},
		{x("", "/healthz", ""), x("", "/healthz/.*", ""), false},
		{x("", "/healthz", ""), x("", "/healthz", ""), true},
		{x("", "^/healthz$", ""), x("", "/healthz", ""), true},
		// All routes conflict with every marker, then by path and method.
		{all("/hooks/", "", ""), x("/api", "", ""), false},
		{all("/hooks/", "", ""), x("", "", ""), true},
		{all("/hooks/", "", "POST"), x("/hooks/stripe", "", "GET"), false},
		{all("", "", ""), x("/api", "", "GET"), true},
		{all("/a", "", ""), all("/b", "", ""), false},
		{all("/a", "", ""), Route{Cookie: "dev", Value: "x", PathPrefix: "/a/b"}, true},
	} {
		if got := tc.a.Conflicts(tc.b); got != tc.want || tc.b.Conflicts(tc.a) != tc.want {
			t.Errorf("%s conflicts with %s: %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// A contest suspends the routes that would take the contested route's
// requests: never a marker's routes for an All route, never a route whose
// paths part.
func TestNarrowedTakes(t *testing.T) {
	for _, tc := range []struct {
		r, contested Route
		want         bool
	}{
		{Route{All: true, PathPrefix: "/a"}, Route{Header: "x-dev", Value: "alice", PathPrefix: "/a/b"}, true},
		{Route{All: true, PathPrefix: "/a"}, Route{Header: "x-dev", Value: "alice", PathPrefix: "/b"}, false},
		{Route{Header: "x-dev", Value: "alice", PathPrefix: "/a"}, Route{All: true, PathPrefix: "/a"}, false},
		{Route{All: true}, Route{All: true, PathPrefix: "/a"}, true},
		{Route{Header: "x-dev", Value: "alice", Methods: "GET"}, Route{Header: "x-dev", Value: "alice", Methods: "POST"}, false},
		{Route{Header: "x-dev", Value: "alice", Methods: "GET"}, Route{Header: "x-dev", Value: "alice"}, true},
	} {
		if got := tc.r.Takes(tc.contested); got != tc.want {
			t.Errorf("%s takes %s: %v, want %v", tc.r, tc.contested, got, tc.want)
		}
	}
}

// The doctor sends its request to a path and with a method the route
// takes.
func TestSamplePathAndMethod(t *testing.T) {
	for _, tc := range []struct {
		r          Route
		path, meth string
	}{
		{Route{All: true}, "/", "GET"},
		{Route{All: true, PathPrefix: "/api/v2", Methods: "DELETE,POST"}, "/api/v2", "DELETE"},
		{Route{All: true, PathRegex: "/api/v[0-9]+/users", Methods: "GET,POST"}, "/api/v0/users", "GET"},
		{Route{All: true, PathRegex: "/hooks/(stripe|github)"}, "/hooks/stripe", "GET"},
		{Route{All: true, PathRegex: "/x/[^/]+/y"}, "/x/!/y", "GET"},
		{Route{All: true, PathRegex: "/a{2,3}b?c*"}, "/aa", "GET"},
		{Route{All: true, PathPrefix: "/api", PathRegex: ".*"}, "/api", "GET"},
		{Route{All: true, PathPrefix: "/api", PathRegex: "/web"}, "", "GET"}, // takes nothing
		{Route{All: true, PathRegex: `/x\by`}, "", "GET"},                    // matches nothing: no sample
	} {
		if got := SamplePath(tc.r); got != tc.path {
			t.Errorf("SamplePath(%s) = %q, want %q", tc.r, got, tc.path)
		}
		if got := SampleMethod(tc.r); got != tc.meth {
			t.Errorf("SampleMethod(%s) = %q, want %q", tc.r, got, tc.meth)
		}
	}
}
