package proxy

import (
	"net/http"
	"strings"

	"golang.org/x/net/http2/hpack"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/route"
)

// The matchers run on every request: they scan the header lines in place
// and never allocate. They read a header line as net/http parsed it or as
// the fast path holds it in its read buffer, with the same result.

// text is a header line: a string from net/http, or bytes of a raw head.
type text interface{ ~string | ~[]byte }

// matches reports whether a request with this method, target (as sent:
// net/http's RequestURI) and header h belongs to r.
func (r *liveRoute) matches(method, target string, h http.Header) bool {
	var path string
	if r.narrowed {
		path = requestPath(target)
		if !narrowedTo(r, method, path) {
			return false
		}
	}
	marked := r.All ||
		r.Header != "" && hasValue(h[r.Header], r.Value) ||
		r.Cookie != "" && hasCookie(h["Cookie"], r.Cookie, r.Value) ||
		r.Baggage != "" && hasBaggage(h["Baggage"], r.Baggage, r.Value)
	return marked && (r.re == nil || route.RegexTakes(r.re, path))
}

// matchesHead reports whether a request whose request line has this method
// and path (requestPath) and whose header fields (the lines of its head
// after the request line) are fields belongs to r. Method and path are
// read only for a narrowed route.
func (r *liveRoute) matchesHead(method, path, fields []byte) bool {
	if r.narrowed && !narrowedTo(r, method, path) {
		return false
	}
	found := r.All
	if !found {
		eachField(fields, func(name, value []byte) bool {
			switch {
			case r.Header != "" && asciiEqualFold(name, r.Header):
				found = equal(value, r.Value)
			case r.Cookie != "" && asciiEqualFold(name, "Cookie"):
				found = cookieIs(value, r.Cookie, r.Value)
			case r.Baggage != "" && asciiEqualFold(name, "Baggage"):
				found = baggageIs(value, r.Baggage, r.Value)
			}
			return !found
		})
	}
	return found && (r.re == nil || route.RegexTakes(r.re, path))
}

// matchesFields reports whether a request with this :method, path (of its
// :path, requestPath) and HTTP/2 header fields (names in lower case)
// belongs to r: the fields of one name are the lines of one header, as
// net/http reads them, cookies split into crumbs included. Method and
// path are read only for a narrowed route.
func (r *liveRoute) matchesFields(method, path string, fields []hpack.HeaderField) bool {
	if r.narrowed && !narrowedTo(r, method, path) {
		return false
	}
	return (r.All || r.markedFields(fields)) && (r.re == nil || route.RegexTakes(r.re, path))
}

// requestLine returns the method and the path (requestPath) of an
// HTTP/1.1 request line.
func requestLine(line []byte) (method, path []byte) {
	method, line, _ = cut(line, ' ')
	target, _, _ := cut(line, ' ')
	return method, requestPath(target)
}

// pseudoLine returns the method and the path (requestPath of :path) of an
// HTTP/2 request's header fields.
func pseudoLine(fields []hpack.HeaderField) (method, path string) {
	for _, f := range fields {
		switch f.Name {
		case ":method":
			method = f.Value
		case ":path":
			path = requestPath(f.Value)
		default:
			if !strings.HasPrefix(f.Name, ":") {
				return method, path // the pseudo-headers come first
			}
		}
	}
	return method, path
}

// markedFields reports whether HTTP/2 header fields carry r's marker.
func (r *liveRoute) markedFields(fields []hpack.HeaderField) bool {
	for _, f := range fields {
		switch {
		case r.Header != "" && strings.EqualFold(f.Name, r.Header):
			if f.Value == r.Value {
				return true
			}
		case r.Cookie != "" && f.Name == "cookie":
			if cookieIs(f.Value, r.Cookie, r.Value) {
				return true
			}
		case r.Baggage != "" && f.Name == "baggage":
			if baggageIs(f.Value, r.Baggage, r.Value) {
				return true
			}
		}
	}
	return false
}

// narrowedTo is the cheap half of a narrowed route's test, run before the
// marker's: the method is one of r's, the path starts with r's prefix. The
// regex, the costly half, runs last, on requests that pass everything
// else, and only on paths of at most route.MaxRegexPath bytes.
func narrowedTo[T text](r *liveRoute, method, path T) bool {
	return (r.Methods == "" || methodIn(method, r.Methods)) &&
		len(path) >= len(r.PathPrefix) && equal(path[:len(r.PathPrefix)], r.PathPrefix)
}

// methodIn reports whether method is one of list's comma-separated
// methods.
func methodIn[T text](method T, list string) bool {
	for len(list) > 0 {
		var m string
		m, list, _ = cut(list, ',')
		if equal(method, m) {
			return true
		}
	}
	return false
}

// requestPath returns the path of a request target as sent, without its
// query: the target itself up to '?' (origin-form, and HTTP/2's :path),
// or, of an absolute-form target (scheme://authority/path?query), what
// follows the authority; "" when there is nothing there.
func requestPath[T text](target T) T {
	if len(target) > 0 && target[0] != '/' {
		if i := index(target, "://"); i > 0 {
			rest := target[i+3:]
			j := 0
			for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
				j++
			}
			target = rest[j:]
		}
	}
	path, _, _ := cut(target, '?')
	return path
}

// index returns where sub first starts in s, or -1.
func index[T text](s T, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equal(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
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

// hasCookie reports whether one of the Cookie header lines carries a
// cookie called name whose value is want (see cookieIs).
func hasCookie(lines []string, name, want string) bool {
	for _, line := range lines {
		if cookieIs(line, name, want) {
			return true
		}
	}
	return false
}

// cookieIs reports whether a Cookie header line carries a cookie called
// name whose value is want, read as net/http's Request.Cookies reads it:
// pairs separated by semicolons, the value without surrounding double
// quotes. Any cookie of that name counts: a browser sends one name twice
// when it holds one cookie for a path and one for the whole site, the
// longer path first. want must be a valid cookie value.
func cookieIs[T text](line T, name, want string) bool {
	for len(line) > 0 {
		var pair T
		pair, line, _ = cut(line, ';')
		n, v, _ := cut(trimSpace(pair), '=')
		if !equal(trimSpace(n), name) {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if equal(v, want) {
			return true
		}
	}
	return false
}

// hasBaggage reports whether one of the baggage header lines carries a
// member key whose value is want (see baggageIs).
func hasBaggage(lines []string, key, want string) bool {
	for _, line := range lines {
		if baggageIs(line, key, want) {
			return true
		}
	}
	return false
}

// baggageIs reports whether a baggage header line (W3C Baggage: members
// key=value;properties separated by commas, with optional spaces and tabs
// around each part) carries a member key whose value, percent-decoded, is
// want. Malformed members are skipped.
func baggageIs[T text](line T, key, want string) bool {
	for len(line) > 0 {
		var member T
		member, line, _ = cut(line, ',')
		member, _, _ = cut(member, ';')
		k, v, ok := cut(member, '=')
		if ok && equal(trimOWS(k), key) && decodesTo(trimOWS(v), want) {
			return true
		}
	}
	return false
}

// decodesTo reports whether raw, a baggage value as sent, is well formed
// and percent-decodes to want.
func decodesTo[T text](raw T, want string) bool {
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

// cut slices s around the first sep, as strings.Cut and bytes.Cut do.
func cut[T text](s T, sep byte) (before, after T, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, s[len(s):], false
}

// equal reports whether s and want hold the same bytes.
func equal[T text](s T, want string) bool {
	if len(s) != len(want) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != want[i] {
			return false
		}
	}
	return true
}

// trimSpace trims ASCII blanks as textproto.TrimString does (net/http's
// cookie parsing).
func trimSpace[T text](s T) T {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// trimOWS trims the optional whitespace (spaces and tabs) W3C baggage
// allows around keys, values and separators.
func trimOWS[T text](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
