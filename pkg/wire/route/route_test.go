package route

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	for in, ok := range map[string]bool{
		"x-dev:alice": true, "X-C6O-INTERCEPT: yes": true, "a:b:c": true,
		"novalue:": false, ":value": false, "nocolon": false, "bad name:x": false,
	} {
		_, _, err := ParseHeader(in)
		if (err == nil) != ok {
			t.Errorf("ParseHeader(%q) error = %v, want ok=%v", in, err, ok)
		}
	}
}

// Routes say what they match in the way the flags take it, and conflict
// only when they would claim the same requests.
func TestRouteStringAndConflicts(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Header: "X-Dev", Value: "alice"}, "X-Dev:alice"},
		{Route{Cookie: "dev", Value: "alice"}, "cookie dev=alice"},
		{Route{Baggage: "dev", Value: "alice smith/100%"}, "baggage dev=alice%20smith/100%25"},
		{Route{All: true}, "all traffic"},
	} {
		if got := tc.r.String(); got != tc.want {
			t.Errorf("%#v renders %q, want %q", tc.r, got, tc.want)
		}
	}
	cookie := Route{Cookie: "dev", Value: "alice"}
	for _, tc := range []struct {
		o    Route
		want bool
	}{
		{Route{Cookie: "dev", Value: "alice", Owner: "eve@b"}, true},
		{Route{Cookie: "dev", Value: "bob"}, false},
		{Route{Cookie: "Dev", Value: "alice"}, false},
		{Route{Header: "dev", Value: "alice"}, false},
		{Route{Baggage: "dev", Value: "alice"}, false},
		{Route{All: true}, true},
	} {
		if got := cookie.Conflicts(tc.o); got != tc.want || tc.o.Conflicts(cookie) != tc.want {
			t.Errorf("%s conflicts with %s: %v, want %v", cookie, tc.o, got, tc.want)
		}
	}
	if !(Route{Header: "x-dev", Value: "a"}).Conflicts(Route{Header: "X-DEV", Value: "a"}) {
		t.Error("header routes differing in the name's case do not conflict")
	}
}

// A Route with only a header and a value, as older CLIs send, still means
// a header match; the new fields travel only when set.
func TestRouteJSONCompatible(t *testing.T) {
	var r Route
	if err := json.Unmarshal([]byte(`{"header":"x-dev","value":"alice","owner":"a@b"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r != (Route{Header: "x-dev", Value: "alice", Owner: "a@b"}) || r.Validate() != nil {
		t.Fatalf("old route decoded as %#v (%v)", r, r.Validate())
	}
	b, _ := json.Marshal(Route{Header: "x-dev", Value: "alice"})
	if string(b) != `{"header":"x-dev","value":"alice"}` {
		t.Errorf("header route encodes as %s", b)
	}
	b, _ = json.Marshal(Route{Cookie: "dev", Value: "alice"})
	if string(b) != `{"cookie":"dev","value":"alice"}` {
		t.Errorf("cookie route encodes as %s", b)
	}
}

// The sidecar refuses a route it could not match, saying why.
func TestRouteValidate(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Header: "x-dev", Value: "alice"}, ""},
		{Route{Cookie: "dev", Value: "alice"}, ""},
		{Route{Baggage: "dev", Value: "a b,c"}, ""},
		{Route{All: true}, ""},
		{Route{Value: "alice"}, "names no header, cookie or baggage key"},
		{Route{Header: "x-dev", Cookie: "dev", Value: "alice"}, "more than one"},
		{Route{Cookie: "dev", Value: "a b"}, "cookie values cannot have"},
		{Route{Cookie: "de v", Value: "alice"}, "cookie names cannot have"},
		{Route{Baggage: "dev"}, "no value"},
		{Route{Header: "x dev", Value: "alice"}, "header name"},
	} {
		err := tc.r.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%#v: %v, want %q", tc.r, err, tc.want)
		}
	}
}

// The flags' values are parsed into what a request must carry, with errors
// that say how to write them.
func TestParseCookieAndBaggage(t *testing.T) {
	for _, tc := range []struct {
		in, name, value, err string
	}{
		{"dev=alice", "dev", "alice", ""},
		{" dev = alice ", "dev", "alice", ""},
		{"dev=a=b", "dev", "a=b", ""},
		{"dev=", "", "", "not name=value"},
		{"=alice", "", "", "not name=value"},
		{"dev", "", "", "not name=value"},
		{"de v=alice", "", "", "cookie names cannot have"},
		{"dev=ali ce", "", "", "' '"},
		{`dev="alice"`, "", "", `'"'`},
		{"dev=a;b", "", "", "';'"},
		{"dev=jürgen", "", "", "'ü'"},
	} {
		name, value, err := ParseCookie(tc.in)
		if name != tc.name || value != tc.value || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseCookie(%q) = %q, %q, %v; want %q, %q, error with %q", tc.in, name, value, err, tc.name, tc.value, tc.err)
		}
	}
	for _, tc := range []struct {
		in, key, value, err string
	}{
		{"dev=alice", "dev", "alice", ""},
		{" dev = alice ", "dev", "alice", ""},
		{"dev=alice%20smith", "dev", "alice smith", ""},
		{"dev=100%25", "dev", "100%", ""},
		{"dev=a+b", "dev", "a+b", ""},
		{"dev=", "", "", "not key=value"},
		{"dev", "", "", "not key=value"},
		{"de v=alice", "", "", "baggage keys cannot have"},
		{"dev=alice smith", "", "", "write %20 instead"},
		{"dev=jürgen", "", "", "write %C3%BC instead"},
		{"dev=a,b", "", "", "write %2C instead"},
		{"dev=100%", "", "", "write %25 for a percent sign"},
		{"dev=%zz", "", "", "%XX"},
	} {
		key, value, err := ParseBaggage(tc.in)
		if key != tc.key || value != tc.value || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseBaggage(%q) = %q, %q, %v; want %q, %q, error with %q", tc.in, key, value, err, tc.key, tc.value, tc.err)
		}
	}
}
