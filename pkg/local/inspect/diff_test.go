package inspect

import (
	"net/http"
	"strings"
	"testing"
)

func jsonAnswer(status int, body string, h ...string) Answer {
	hd := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(h); i += 2 {
		hd.Add(h[i], h[i+1])
	}
	return Answer{Status: status, Header: hd, Body: []byte(body), Size: int64(len(body))}
}

func mustIgnore(t *testing.T, values ...string) Ignore {
	t.Helper()
	ig, err := ParseIgnore(values)
	if err != nil {
		t.Fatal(err)
	}
	return ig
}

// JSON bodies are compared as values: key order, whitespace and the
// spelling of numbers do not count; what --ignore names does not either.
func TestCompareJSON(t *testing.T) {
	cases := []struct {
		name         string
		cluster, loc string
		ignore       []string
		want         string // Summary
	}{
		{"same", `{"a":1,"b":[1,2]}`, `{ "b": [1, 2], "a": 1.0 }`, nil, "same"},
		{"field", `{"a":1,"price":10}`, `{"a":1,"price":12}`, nil, "body $.price"},
		{"missing", `{"a":1,"b":2}`, `{"a":1}`, nil, "body $.b"},
		{"array", `{"items":[{"id":1},{"id":2}]}`, `{"items":[{"id":1},{"id":3}]}`, nil, "body $.items[1].id"},
		{"length", `[1,2]`, `[1,2,3]`, nil, "body $"},
		{"ignored field", `{"a":1,"meta":{"at":"x"}}`, `{"a":1,"meta":{"at":"y"}}`, []string{"$.meta.at"}, "same"},
		{"ignored in every item", `{"items":[{"id":1,"t":1},{"id":2,"t":2}]}`, `{"items":[{"id":1,"t":5},{"id":2,"t":6}]}`, []string{"$.items[*].t"}, "same"},
		{"deep", `{"t":1,"x":{"t":2,"y":[{"t":3,"v":1}]}}`, `{"t":9,"x":{"t":8,"y":[{"t":7,"v":1}]}}`, []string{"$..t"}, "same"},
		{"deep keeps others", `{"t":1,"v":1}`, `{"t":2,"v":2}`, []string{"$..t"}, "body $.v"},
		{"index", `[{"a":1},{"a":2}]`, `[{"a":9},{"a":2}]`, []string{"$[0]"}, "same"},
		{"quoted name", `{"a b":1}`, `{"a b":2}`, nil, "body $['a b']"},
		{"quoted ignore", `{"a b":1}`, `{"a b":2}`, []string{"$['a b']"}, "same"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Compare(jsonAnswer(200, c.cluster), jsonAnswer(200, c.loc), mustIgnore(t, c.ignore...))
			if got := d.Summary(); got != c.want {
				t.Fatalf("Summary = %q, want %q (diff %+v)", got, c.want, d.Body)
			}
		})
	}
}

func TestCompareStatusAndHeaders(t *testing.T) {
	c := jsonAnswer(200, `{}`, "Date", "Mon, 07 Dec 2026 10:00:00 GMT", "Cache-Control", "max-age=60", "X-Hop", "1", "Connection", "X-Hop", "X-Request-Id", "a")
	l := jsonAnswer(500, `{}`, "Date", "Mon, 07 Dec 2026 10:00:01 GMT", "Cache-Control", "no-store", "X-Request-Id", "b")
	d := Compare(c, l, mustIgnore(t, "header:x-request-id"))
	if got, want := d.Summary(), "status 200→500, header Cache-Control"; got != want {
		t.Fatalf("Summary = %q, want %q", got, want)
	}
	if h := d.Headers[0]; h.Cluster[0] != "max-age=60" || h.Local[0] != "no-store" {
		t.Fatalf("header values %+v", h)
	}
}

func TestCompareBytes(t *testing.T) {
	text := func(s string) Answer {
		return Answer{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(s), Size: int64(len(s))}
	}
	if d := Compare(text("hello"), text("hello"), Ignore{}); d.Differs() {
		t.Fatalf("same text differs: %s", d.Summary())
	}
	d := Compare(text("hello world"), text("hello there"), Ignore{})
	if d.Body == nil || d.Body.Offset != 6 {
		t.Fatalf("body diff %+v, want it from byte 6", d.Body)
	}
	// Key order counts in a body that is not JSON.
	if d := Compare(text(`{"a":1,"b":2}`), text(`{"b":2,"a":1}`), Ignore{}); !d.Differs() {
		t.Fatal("text bodies compared as JSON")
	}
	// A JSON Content-Type on a body that does not parse: bytes.
	if d := Compare(jsonAnswer(200, `{oops`), jsonAnswer(200, `{oops`), Ignore{}); d.Differs() {
		t.Fatalf("equal broken JSON differs: %s", d.Summary())
	}
	// Copies cut at the cap that agree, of different lengths.
	c, l := text("abc"), text("abc")
	c.Size, c.Truncated = 10, true
	l.Size, l.Truncated = 12, true
	if d := Compare(c, l, Ignore{}); d.Body == nil || !strings.Contains(d.Body.Note, "10 and 12 bytes") {
		t.Fatalf("truncated bodies of different lengths: %+v", d.Body)
	}
}

func TestParseIgnoreRefuses(t *testing.T) {
	for _, s := range []string{"items.id", "$", "$.", "$..", "$[x]", "$[-1]", "$['a", "$[0", "$.a b", "header:bad name"} {
		if _, err := ParseIgnore([]string{s}); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
