package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// Copies of requests whose heads are many short header lines (a 64 KiB
// head of about 10,000 empty fields) weigh, parsed, about 100 bytes a
// line: a queue counts them so, and 64 of them offered to one queue keep
// what it holds within its stated bound (tapQueueBytes), however little
// the heads weigh as sent.
func TestParsedCopiesCountedByTheirWeight(t *testing.T) {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: shop\r\n")
	for i := 0; b.Len() < MaxHeaderBytes-16; i++ {
		fmt.Fprintf(&b, "%x:\r\n", i)
	}
	b.WriteString("\r\n")
	const measured = 100 // bytes a line of such a head keeps, parsed by net/http
	tr := newTapRoute(&liveRoute{}, &tapBounds{})
	accepted, lines := 0, 0
	for range 64 {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			t.Fatal(err)
		}
		lines = len(r.Header)
		ex := &tap.Exchange{Request: tap.Request{Method: "GET", Target: "/", Proto: "HTTP/1.1", Header: r.Header},
			Response: tap.Response{Status: 200, Header: http.Header{}}}
		if size := copySize(ex); size < int64(lines*measured) {
			t.Fatalf("a copy of %d header lines is counted as %d bytes, less than the %d they weigh", lines, size, lines*measured)
		}
		before := tr.dropped.Load()
		tr.offer(ex)
		if tr.dropped.Load() == before {
			accepted++
		}
	}
	if weight := int64(accepted * lines * measured); weight > tapQueueBytes {
		t.Fatalf("a queue took %d copies of %d lines each, about %d MiB, past its bound of %d MiB", accepted, lines, weight>>20, tapQueueBytes>>20)
	}
	if accepted == 0 || tr.bytes.Load() > tapQueueBytes {
		t.Fatalf("the queue took %d copies and counts %d bytes (bound %d)", accepted, tr.bytes.Load(), tapQueueBytes)
	}
	tr.close()
	if q := tr.bounds.queued.Load(); q != 0 {
		t.Fatalf("the queue closed, and the sidecar still counts %d bytes queued", q)
	}
}
