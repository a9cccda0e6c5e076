package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire"

	"golang.org/x/net/http/httpguts"
)

// HTTP/1 framing for the fast path (fast.go): what a request's or a
// response's head says about the message (valid for the fast path or not,
// its body's length or chunking, whether the connection closes after it),
// the header-field scanning the route matchers (match.go) share, and the
// copying of a chunked body. Nothing here touches a connection: the
// functions read a head already peeked into a buffer, or copy from a
// buffered reader to a writer.

// fastRequest is what the fast path needs of a request's head.
type fastRequest struct {
	head    []byte // the head as received, final CRLF included
	head1   bool   // HEAD: the response has no body
	chunked bool
	length  int64
	close   bool // Connection: close
}

// parseRequestHead checks a head and reads its framing. ok is false for
// anything the fast path leaves to net/http.
func parseRequestHead(head []byte) (req fastRequest, ok bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, rest1, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest1, []byte(" "))
	if !ok1 || !ok2 || len(target) == 0 || string(proto) != "HTTP/1.1" {
		return fastRequest{}, false
	}
	if !validName(method) || string(method) == http.MethodConnect {
		return fastRequest{}, false // CONNECT: its 2xx makes a tunnel, not a response
	}
	for _, b := range target {
		if b <= ' ' || b == 0x7f {
			return fastRequest{}, false
		}
	}
	req = fastRequest{head: head, head1: string(method) == http.MethodHead}
	hosts, lengths := 0, 0
	ok = eachField(rest, func(name, value []byte) bool {
		if !validName(name) || !validValue(value) {
			return false // includes obs-fold and bare LF
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.ParseUint(string(value), 10, 63) // digits only: not +5 or -0
			if err != nil || (lengths > 0 && int64(n) != req.length) {
				return false
			}
			req.length = int64(n)
			lengths++
		case asciiEqualFold(name, "Transfer-Encoding"):
			if req.chunked || !asciiEqualFold(value, "chunked") {
				return false
			}
			req.chunked = true
		case asciiEqualFold(name, "Connection"):
			if hasToken(value, "upgrade") {
				return false
			}
			req.close = req.close || hasToken(value, "close")
		case asciiEqualFold(name, "Upgrade"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, wire.ProbeHeader):
			return false
		}
		return true
	})
	if !ok || hosts != 1 || (req.chunked && lengths > 0) {
		return fastRequest{}, false
	}
	return req, true
}

// bodyless reports whether a response with status to req has no body,
// whatever its head says: a 1xx, 204 or 304, or any answer to HEAD.
func (req fastRequest) bodyless(status int) bool {
	return status >= 100 && status < 200 || req.head1 || status == 204 || status == 304
}

type responseFraming struct {
	chunked bool
	length  int64 // -1: none given
	close   bool
}

func parseResponseHead(head []byte) (status int, fr responseFraming, ok bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return 0, fr, false
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || (len(line) > 12 && line[12] != ' ') {
		return 0, fr, false
	}
	fr.length = -1
	fr.close = line[7] == '0' // HTTP/1.0 without keep-alive handling: close
	ok = eachField(rest, func(name, value []byte) bool {
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.ParseUint(string(value), 10, 63)
			if err != nil || (fr.length >= 0 && int64(n) != fr.length) {
				return false
			}
			fr.length = int64(n)
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !asciiEqualFold(value, "chunked") {
				return false
			}
			fr.chunked = true
		case asciiEqualFold(name, "Connection"):
			fr.close = fr.close || hasToken(value, "close")
		}
		return validValue(value) // a bare LF would end the line for net/http
	})
	if !ok {
		return 0, fr, false
	}
	if fr.chunked {
		fr.length = -1
	}
	return status, fr, true
}

// eachField calls fn with each header field of a head's lines after the
// first, the value without surrounding blanks, until fn returns false; it
// reports whether every field had a colon and fn never said no.
func eachField(lines []byte, fn func(name, value []byte) bool) bool {
	for {
		var field []byte
		field, lines, _ = bytes.Cut(lines, []byte("\r\n"))
		if len(field) == 0 {
			return true
		}
		name, value, found := bytes.Cut(field, []byte(":"))
		if !found || !fn(name, trimOWS(value)) {
			return false
		}
	}
}

// validName reports whether b is a header field name (a token).
func validName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return len(b) > 0
}

// validValue reports whether b may be a header field value: no control
// bytes but tab.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header value has token.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if asciiEqualFold(bytes.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// copyChunked copies a chunked body, trailers included, to dst as it
// comes, each chunk as soon as it is read.
func copyChunked(dst io.Writer, src *bufio.Reader) error {
	for {
		line, err := readLine(src)
		if err != nil {
			return err
		}
		n, err := chunkSize(line)
		if err != nil {
			return err
		}
		if _, err := dst.Write(append(line, '\r', '\n')); err != nil {
			return err
		}
		if n == 0 {
			// Trailers, then the blank line.
			for {
				t, err := readLine(src)
				if err != nil {
					return err
				}
				if _, err := dst.Write(append(t, '\r', '\n')); err != nil {
					return err
				}
				if len(t) == 0 {
					return nil
				}
			}
		}
		if err := copyN(dst, src, int64(n)); err != nil {
			return err
		}
		crlf, err := readLine(src)
		if err != nil || len(crlf) != 0 {
			return errors.New("chunk not followed by CRLF")
		}
		if _, err := dst.Write([]byte("\r\n")); err != nil {
			return err
		}
	}
}

// chunkSize reads a chunk's size line (extensions ignored).
func chunkSize(line []byte) (uint64, error) {
	size, _, _ := bytes.Cut(line, []byte(";"))
	n, err := strconv.ParseUint(string(bytes.TrimRight(size, " \t")), 16, 62)
	if err != nil {
		return 0, fmt.Errorf("bad chunk size %q", line)
	}
	return n, nil
}

// readLine reads a CRLF-terminated line of at most 4 KiB, without the CRLF;
// a CR elsewhere in it is malformed, as net/http has it.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || bytes.IndexByte(line, '\r') != len(line)-2 || len(line) > 4096 {
		return nil, errors.New("malformed line")
	}
	return append([]byte(nil), line[:len(line)-2]...), nil
}
