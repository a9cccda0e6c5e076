package route

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// What marks a developer's requests: the CLI's -x name:value, --cookie
// name=value and --baggage key=value, parsed here and checked again by the
// sidecar when a route is registered.

// tokenChars says which characters a header name, cookie name or baggage
// key (an HTTP token) may have, for error messages.
const tokenChars = "letters, digits and !#$%&'*+-.^_`|~"

// ParseHeader parses the -x flag's name:value.
func ParseHeader(s string) (name, value string, err error) {
	name, value, ok := cutTrim(s, ":")
	if !ok || name == "" || value == "" {
		return "", "", fmt.Errorf("header %q is not name:value (for example x-dev:alice)", s)
	}
	if err := CheckHeader(name, value); err != nil {
		return "", "", err
	}
	return name, value, nil
}

// ParseCookie parses the --cookie flag's name=value: a request matches when
// it carries a cookie called name whose value is exactly value.
func ParseCookie(s string) (name, value string, err error) {
	name, value, ok := cutTrim(s, "=")
	if !ok || name == "" || value == "" {
		return "", "", fmt.Errorf("cookie %q is not name=value (for example dev=alice)", s)
	}
	if err := CheckCookie(name, value); err != nil {
		return "", "", err
	}
	return name, value, nil
}

// ParseBaggage parses the --baggage flag's key=value, the value written as
// a baggage header carries it (percent-encoded), and returns the value
// decoded: a request matches when its baggage has member key with that
// value.
func ParseBaggage(s string) (key, value string, err error) {
	key, raw, ok := cutTrim(s, "=")
	if !ok || key == "" || raw == "" {
		return "", "", fmt.Errorf("baggage %q is not key=value (for example dev=alice)", s)
	}
	for _, r := range raw {
		if r >= utf8.RuneSelf || !valueOctet(byte(r)) {
			return "", "", fmt.Errorf("baggage value %q has %q, which a baggage header carries percent-encoded: write %s instead", raw, r, EscapeBaggage(string(r)))
		}
	}
	value, err = url.PathUnescape(raw)
	if err != nil {
		return "", "", fmt.Errorf("baggage value %q has a %% that does not start a %%XX escape; write %%25 for a percent sign", raw)
	}
	if err := CheckBaggage(key, value); err != nil {
		return "", "", err
	}
	return key, value, nil
}

// EscapeBaggage percent-encodes a baggage value the way a baggage header
// carries it: every byte outside the W3C baggage-octets, and %, as %XX.
func EscapeBaggage(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; valueOctet(c) && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func cutTrim(s, sep string) (before, after string, found bool) {
	before, after, found = strings.Cut(s, sep)
	return strings.TrimSpace(before), strings.TrimSpace(after), found
}

func CheckHeader(name, value string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("header name %q has a character HTTP does not allow in header names", name)
	}
	if value == "" {
		return fmt.Errorf("header %s has no value to match", name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return fmt.Errorf("header value %q has a control character HTTP does not allow in header values", value)
	}
	return nil
}

func CheckCookie(name, value string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return fmt.Errorf("cookie name %q has a character cookie names cannot have (%s only)", name, tokenChars)
	}
	if value == "" {
		return fmt.Errorf("cookie %s has no value to match", name)
	}
	for _, r := range value {
		if r >= utf8.RuneSelf || !valueOctet(byte(r)) {
			return fmt.Errorf("cookie value %q has %q, which cookie values cannot have (no spaces, double quotes, commas, semicolons, backslashes or non-ASCII); pick a value without it", value, r)
		}
	}
	return nil
}

func CheckBaggage(key, value string) error {
	if !httpguts.ValidHeaderFieldName(key) {
		return fmt.Errorf("baggage key %q has a character baggage keys cannot have (%s only)", key, tokenChars)
	}
	if value == "" {
		return fmt.Errorf("baggage key %s has no value to match", key)
	}
	return nil
}

// valueOctet reports whether b may stand as it is in a cookie value (RFC
// 6265 cookie-octet) or a baggage value (W3C baggage-octet), the same set:
// printable ASCII but the double quote, comma, semicolon and backslash.
func valueOctet(b byte) bool {
	return b > ' ' && b < 0x7f && b != '"' && b != ',' && b != ';' && b != '\\'
}
