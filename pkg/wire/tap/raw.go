package tap

import (
	"bytes"
	"encoding/binary"
	"time"

	"golang.org/x/net/http/httpguts"
)

// RawExchange is an HTTP/1.x exchange as a sidecar relayed it: the heads
// as they went on the wire, the bodies copied (and decoded) as for an
// Exchange. A sidecar encodes it without building header maps.
type RawExchange struct {
	Time     time.Time
	Duration time.Duration
	Route    Route
	Dropped  uint64
	// RequestHead and ResponseHead run from the request or status line
	// to the blank line that ends the head.
	RequestHead, ResponseHead []byte
	// Trailers are the answer's trailer lines, each CRLF-ended.
	Trailers                  []byte
	RequestBody, ResponseBody Body
}

// AppendRawFrame appends ex to dst as one frame, as AppendFrame appends
// the Exchange its heads parse to: header names in canonical form, each
// line a value, Transfer-Encoding left out (the bodies are decoded), the
// answer's trailers among its headers, every credential header's value
// Redacted. It refuses what AppendFrame refuses, and a head it cannot
// read; dst is then returned as it was.
func AppendRawFrame(dst []byte, ex *RawExchange) ([]byte, error) {
	start := len(dst)
	b, err := appendRaw(append(dst, 0, 0, 0, 0), ex)
	if err != nil {
		return dst[:start], err
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b, nil
}

func appendRaw(b []byte, ex *RawExchange) ([]byte, error) {
	if ex.Duration < 0 {
		return nil, formatErr("negative duration %v", ex.Duration)
	}
	b = binary.AppendVarint(b, ex.Time.UnixNano())
	b = binary.AppendUvarint(b, uint64(ex.Duration))
	b = binary.AppendUvarint(b, ex.Dropped)
	line, fields, _ := bytes.Cut(ex.RequestHead, crlf)
	method, rest, _ := bytes.Cut(line, []byte(" "))
	target, proto, _ := bytes.Cut(rest, []byte(" "))
	var err error
	if b, err = appendString(b, ex.Route.Owner, MaxOwner, "route owner"); err != nil {
		return nil, err
	}
	if b, err = appendString(b, ex.Route.Marker, MaxMarker, "route marker"); err != nil {
		return nil, err
	}
	switch {
	case len(method) == 0 || len(method) > MaxMethod || !token(method):
		return nil, formatErr("method %q", method)
	case len(target) == 0 || len(target) > MaxTarget || !printableASCII(string(target)):
		return nil, formatErr("request target %q", target)
	case string(proto) != "HTTP/1.0" && string(proto) != "HTTP/1.1":
		return nil, formatErr("protocol %q", proto)
	}
	for _, s := range [][]byte{method, target, proto} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if b, err = appendRawHeader(b, fields, nil); err != nil {
		return nil, err
	}
	if b, err = appendBody(b, ex.RequestBody); err != nil {
		return nil, err
	}
	status, fields, ok := statusLine(ex.ResponseHead)
	if !ok {
		return nil, formatErr("status line %q", bytes.SplitN(ex.ResponseHead, crlf, 2)[0])
	}
	b = binary.AppendUvarint(b, uint64(status))
	if b, err = appendRawHeader(b, fields, ex.Trailers); err != nil {
		return nil, err
	}
	return appendBody(b, ex.ResponseBody)
}

var crlf = []byte("\r\n")

// statusLine reads "HTTP/1.x NNN ..." and returns the status and the
// header lines after it.
func statusLine(head []byte) (int, []byte, bool) {
	line, fields, _ := bytes.Cut(head, crlf)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return 0, nil, false
	}
	status := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		status = status*10 + int(c-'0')
	}
	return status, fields, status >= 100
}

// appendRawHeader encodes the header lines of fields, then those of
// trailers, as appendHeader encodes a header.
func appendRawHeader(b, fields, trailers []byte) ([]byte, error) {
	lines, size := 0, 0
	for _, set := range [][]byte{fields, trailers} {
		err := eachRawField(set, func(name, value []byte) error {
			if !token(name) {
				return formatErr("header name %q", name)
			}
			if !validValue(value) {
				return formatErr("value of header %s", name)
			}
			if secretName(name) {
				value = []byte(Redacted)
			}
			lines++
			size += len(name) + len(value) + 4
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if lines > MaxHeaderLines || size > MaxHeaderBytes {
		return nil, formatErr("%d header lines of %d bytes, past %d lines or %d bytes", lines, size, MaxHeaderLines, MaxHeaderBytes)
	}
	b = binary.AppendUvarint(b, uint64(lines))
	for _, set := range [][]byte{fields, trailers} {
		_ = eachRawField(set, func(name, value []byte) error {
			b = binary.AppendUvarint(b, uint64(len(name)))
			b = appendCanonical(b, name)
			if secretName(name) {
				b = binary.AppendUvarint(b, uint64(len(Redacted)))
				b = append(b, Redacted...)
			} else {
				b = binary.AppendUvarint(b, uint64(len(value)))
				b = append(b, value...)
			}
			return nil
		})
	}
	return b, nil
}

// eachRawField calls fn with each field of lines (CRLF-ended, up to a
// blank line or the end), the value without surrounding blanks, leaving
// Transfer-Encoding out.
func eachRawField(lines []byte, fn func(name, value []byte) error) error {
	for len(lines) > 0 {
		var line []byte
		line, lines, _ = bytes.Cut(lines, crlf)
		if len(line) == 0 {
			return nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return formatErr("header line %q", line)
		}
		if equalFold(name, "transfer-encoding") {
			continue
		}
		if err := fn(name, bytes.Trim(value, " \t")); err != nil {
			return err
		}
	}
	return nil
}

// appendCanonical appends name as http.CanonicalHeaderKey writes a
// token: upper case at the start and after each '-', lower case elsewhere.
func appendCanonical(b, name []byte) []byte {
	upper := true
	for _, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
		upper = c == '-'
	}
	return b
}

// secretName is SecretHeader for a name in a head, without allocating.
func secretName(name []byte) bool {
	var buf [64]byte
	if len(name) > len(buf) {
		return SecretHeader(string(name))
	}
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if secretHeaders[string(lower)] {
		return true
	}
	for _, s := range secretSuffixes {
		if bytes.HasSuffix(lower, []byte(s)) {
			return true
		}
	}
	return false
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// token says whether b is an HTTP token (a method, a header name).
func token(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validValue is httpguts.ValidHeaderFieldValue for bytes.
func validValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
