package inspect

import (
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	orders404 := &Exchange{Path: "/api/Orders?id=7", Status: 404, Done: true}
	health200 := &Exchange{Path: "/healthz", Status: 200, Done: true}
	inFlight := &Exchange{Path: "/api/orders", Done: false}
	cases := []struct {
		path, status string
		want         []*Exchange
	}{
		{"", "", []*Exchange{orders404, health200, inFlight}},
		{"orders", "", []*Exchange{orders404, inFlight}},
		{"id=7", "", []*Exchange{orders404}},
		{"", "4xx", []*Exchange{orders404}},
		{"", "4XX", []*Exchange{orders404}},
		{"", "404", []*Exchange{orders404}},
		{"", "200", []*Exchange{health200}},
		{"", "2xx, 4xx", []*Exchange{orders404, health200}},
		{"", "5xx", nil},
		{"/healthz", "4xx", nil},
		{"  orders ", " 404 ", []*Exchange{orders404}},
	}
	for _, tc := range cases {
		f, err := ParseFilter(tc.path, tc.status)
		if err != nil {
			t.Errorf("ParseFilter(%q, %q): %v", tc.path, tc.status, err)
			continue
		}
		var got []*Exchange
		for _, ex := range []*Exchange{orders404, health200, inFlight} {
			if f.Match(ex) {
				got = append(got, ex)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("path %q status %q matched %d exchanges, want %d", tc.path, tc.status, len(got), len(tc.want))
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("path %q status %q matched %s, want %s", tc.path, tc.status, got[i].Path, tc.want[i].Path)
			}
		}
	}
}

func TestFilterRefusesWhatItCannotRead(t *testing.T) {
	for _, s := range []string{"ok", "4x", "6xx", "0xx", "99", "600", "2xx;4xx", "4xxx"} {
		_, err := ParseFilter("", s)
		if err == nil {
			t.Errorf("ParseFilter status %q: no error", s)
			continue
		}
		if !strings.Contains(err.Error(), "4xx") {
			t.Errorf("error for %q does not show what to type: %v", s, err)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "2xx", "404", "4xx,5xx", " 5XX ", "x"} {
		f.Add("/api", s, 404)
	}
	f.Fuzz(func(t *testing.T, path, status string, code int) {
		flt, err := ParseFilter(path, status)
		if err != nil {
			return
		}
		ex := &Exchange{Path: path, Status: code}
		if flt.Status() == "" && !flt.Match(ex) {
			t.Errorf("a filter on path %q alone does not match that path", path)
		}
	})
}
