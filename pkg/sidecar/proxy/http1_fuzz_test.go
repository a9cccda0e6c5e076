package proxy

import (
	"bufio"
	"bytes"
	"testing"
	"testing/iotest"
)

// Whatever a request head holds, the fast path's parser never panics; a
// head it takes has a framing of one kind (a length, or chunked), and
// where net/http reads the same head it reads the same framing: the app
// and the sidecar never disagree on where a request ends. (net/http may
// refuse a head the fast path takes; the table tests name those.)
// Seeds: testdata/fuzz/FuzzParseRequestHead.
func FuzzParseRequestHead(f *testing.F) {
	f.Fuzz(func(t *testing.T, head []byte) {
		req, ok := parseRequestHead(head)
		if !ok {
			return
		}
		if !bytes.Equal(req.head, head) {
			t.Fatalf("head %q, want the input", req.head)
		}
		if req.length < 0 || req.chunked && req.length != 0 {
			t.Fatalf("framing %+v: a length or chunked, not both", framingOf(req))
		}
		nh, err := netHTTPRequest(string(head))
		if err == nil && nh != framingOf(req) {
			t.Fatalf("net/http reads %+v, the fast path %+v", nh, framingOf(req))
		}
	})
}

// Whatever a response head holds, the parser never panics, and a head it
// takes has a status of three digits and a length that is a length or
// none. Seeds: testdata/fuzz/FuzzParseResponseHead.
func FuzzParseResponseHead(f *testing.F) {
	f.Fuzz(func(t *testing.T, head []byte) {
		status, fr, ok := parseResponseHead(head)
		if !ok {
			return
		}
		if status < 100 || status > 999 || fr.length < -1 {
			t.Fatalf("status %d, framing %+v", status, fr)
		}
	})
}

// Whatever a chunked body holds, copyChunked never panics, passes on only
// what it read, in order, and, where net/http reads the same body, ends it
// where net/http does: what follows is the next request for both, never a
// request smuggled inside the body. Read whole, and a byte at a time.
// Seeds: testdata/fuzz/FuzzCopyChunked.
func FuzzCopyChunked(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, slow := range []bool{false, true} {
			var r = bytes.NewReader(body)
			src := bufio.NewReaderSize(r, fastHeadMax)
			if slow {
				src = bufio.NewReaderSize(iotest.OneByteReader(r), fastHeadMax)
			}
			var out bytes.Buffer
			err := copyChunked(&out, src)
			if !bytes.HasPrefix(body, out.Bytes()) {
				t.Fatalf("passed on %q, not the start of the body", out.Bytes())
			}
			if err != nil {
				continue
			}
			rest, nerr := netHTTPChunked(string(body))
			if nerr == nil && rest != string(body[out.Len():]) {
				t.Fatalf("net/http leaves %q after the body, the fast path %q", rest, body[out.Len():])
			}
		}
	})
}
