package inspect

import (
	"strings"
	"testing"
	"time"
)

func TestIsBinary(t *testing.T) {
	cases := []struct {
		name      string
		data      string
		truncated bool
		want      bool
	}{
		{"empty", "", false, false},
		{"json", `{"a": [1, 2]}` + "\n", false, false},
		{"utf-8 text", "grüße, 日本語\r\n\ttabs", false, false},
		{"colored log", "\x1b[31merror\x1b[0m", false, false},
		{"nul", "abc\x00def", false, true},
		{"png", "\x89PNG\r\n\x1a\n", false, true},
		{"invalid utf-8", "abc\xff", false, true},
		{"grpc frame", "\x00\x00\x00\x00\x02{}", false, true},
		{"cut inside a character", "日本" + "語"[:2], true, false},
		{"cut inside a character, whole body", "日本" + "語"[:2], false, true},
		{"bell", "ding\a", false, true},
	}
	for _, tc := range cases {
		if got := isBinary([]byte(tc.data), tc.truncated); got != tc.want {
			t.Errorf("%s: isBinary = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestViewBody(t *testing.T) {
	v := viewBody(Body{Data: []byte(`{"b":1}`)}, 7, "application/json")
	if v.Binary || v.Text != "{\n  \"b\": 1\n}" {
		t.Errorf("JSON shown as %q", v.Text)
	}
	v = viewBody(Body{Data: []byte(`{"b":`), Truncated: true}, 5000, "application/json")
	if v.Text != `{"b":` || !v.Truncated || v.Size != 5000 || v.Captured != 5 {
		t.Errorf("truncated JSON shown as %+v", v)
	}
	bin := make([]byte, 1000)
	v = viewBody(Body{Data: bin}, 1000, "application/octet-stream")
	if !v.Binary || v.Text != "" || strings.Count(v.Hex, "\n") != hexPreviewLen/16 {
		t.Errorf("binary body: binary %v, text %q, %d hex lines", v.Binary, v.Text, strings.Count(v.Hex, "\n"))
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 8 << 20: "8.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		850 * time.Microsecond: "850 µs", 2345 * time.Microsecond: "2.3 ms", 120 * time.Millisecond: "120 ms",
		1500 * time.Millisecond: "1.50 s", 125 * time.Second: "2m5s",
	} {
		if got := formatDuration(Exchange{Duration: d, Done: true}); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := formatDuration(Exchange{}); got != "…" {
		t.Errorf("an exchange in flight shows %q", got)
	}
	for _, tc := range []struct {
		ex          Exchange
		text, class string
	}{
		{Exchange{Status: 204, Done: true}, "204", "s2xx"},
		{Exchange{Status: 502, Done: true}, "502", "s5xx"},
		{Exchange{}, "…", "pending"},
		{Exchange{Done: true, Error: "the caller went away"}, "ERR", "err"},
	} {
		if statusText(tc.ex) != tc.text || statusClass(tc.ex) != tc.class {
			t.Errorf("status %d done %v: %q %q, want %q %q", tc.ex.Status, tc.ex.Done, statusText(tc.ex), statusClass(tc.ex), tc.text, tc.class)
		}
	}
}
