package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// The matchers run on every request: they scan the header lines in place
// and never allocate.

// matches reports whether a request with header h belongs to r.
func (r *route) matches(h http.Header) bool {
	return r.All ||
		r.Header != "" && hasValue(h[r.Header], r.Value) ||
		r.Cookie != "" && hasCookie(h["Cookie"], r.Cookie, r.Value) ||
		r.Baggage != "" && hasBaggage(h["Baggage"], r.Baggage, r.Value)
}

// hasValue reports whether one of a header's lines is want.
func hasValue(lines []string, want string) bool {
	for _, v := range lines {
		if v == want {
			return true
		}
	}
	return false
}

// hasCookie reports whether the Cookie header lines carry a cookie called
// name whose value is want, read as net/http's Request.Cookies reads them:
// pairs separated by semicolons, the value without surrounding double
// quotes. Any cookie of that name counts: a browser sends one name twice
// when it holds one cookie for a path and one for the whole site, the
// longer path first. want must be a valid cookie value.
func hasCookie(lines []string, name, want string) bool {
	for _, line := range lines {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			n, v, _ := strings.Cut(textproto.TrimString(pair), "=")
			if textproto.TrimString(n) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v == want {
				return true
			}
		}
	}
	return false
}

// hasBaggage reports whether the baggage header lines (W3C Baggage: members
// key=value;properties separated by commas, with optional spaces and tabs
// around each part) carry a member key whose value, percent-decoded, is
// want. Malformed members are skipped.
func hasBaggage(lines []string, key, want string) bool {
	for _, line := range lines {
		for line != "" {
			var member string
			member, line, _ = strings.Cut(line, ",")
			member, _, _ = strings.Cut(member, ";")
			k, v, ok := strings.Cut(member, "=")
			if ok && trimOWS(k) == key && decodesTo(trimOWS(v), want) {
				return true
			}
		}
	}
	return false
}

// decodesTo reports whether raw, a baggage value as sent, is well formed
// and percent-decodes to want.
func decodesTo(raw, want string) bool {
	n := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false // not a baggage-octet
		}
		if c == '%' {
			if i+2 >= len(raw) {
				return false
			}
			hi, ok1 := unhex(raw[i+1])
			lo, ok2 := unhex(raw[i+2])
			if !ok1 || !ok2 {
				return false
			}
			c = hi<<4 | lo
			i += 2
		}
		if n == len(want) || want[n] != c {
			return false
		}
		n++
	}
	return n == len(want)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// trimOWS trims the optional whitespace (spaces and tabs) W3C baggage
// allows around keys, values and separators.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
