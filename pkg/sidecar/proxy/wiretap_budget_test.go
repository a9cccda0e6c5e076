package proxy

import (
	"strings"
	"testing"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tap"
)

// Callers that declare a 1 MiB body and send one byte hold a small first
// buffer each of the in-flight budget, not what they declared: a hundred
// of them (enough to take all 32 MiB at 1 MiB each) leave room for the
// next caller's copy, and what they hold grows only as their bodies
// arrive.
func TestDeclaredLengthDoesNotHoldTheBudget(t *testing.T) {
	bounds := &tapBounds{}
	tr := &tapRoute{}
	head := []byte("POST /slow HTTP/1.1\r\nHost: shop\r\nContent-Length: 1048576\r\n\r\n")
	var slow []*fastTap
	for range 100 {
		ft := newFastTap([]*tapRoute{tr}, fastRequest{head: head, length: tap.BodyCap}, bounds)
		ft.requestBody([]byte("A"))
		slow = append(slow, ft)
	}
	if got, most := bounds.inFlight.Load(), int64(100*(tapHintFirst+len(head))); got > most {
		t.Fatalf("100 callers that sent one byte of a declared 1 MiB hold %d bytes of the in-flight budget, more than %d", got, most)
	}
	legitHead := []byte("POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\n")
	legit := newFastTap([]*tapRoute{tr}, fastRequest{head: legitHead, length: 5}, bounds)
	legit.requestBody([]byte("hello"))
	if legit.headsOver || legit.req.short() {
		t.Fatal("a caller's copy found no room in the in-flight budget while slow callers had sent one byte each")
	}
	// One slow body goes on: what it holds grows with what arrived.
	before := bounds.inFlight.Load()
	slow[0].requestBody([]byte(strings.Repeat("A", 200<<10)))
	if grown := bounds.inFlight.Load() - before; grown <= 0 || grown > 512<<10 {
		t.Fatalf("200 KiB more of a body grew what it holds by %d bytes", grown)
	}
	legit.finish()
	for _, ft := range slow {
		ft.finish()
	}
	if got := bounds.inFlight.Load(); got != 0 {
		t.Fatalf("every copy finished, and %d bytes of the in-flight budget are still held", got)
	}
}

// The heads a fast-path copy keeps (up to 32 KiB each) are held out of the
// in-flight budget as its bodies are: where the budget has no room for a
// head, the copy is dropped and counted, and nothing stays held.
func TestCopiedHeadsCountInTheBudget(t *testing.T) {
	bounds := &tapBounds{maxInFlight: 16 << 10}
	tr := &tapRoute{}
	head := []byte("GET / HTTP/1.1\r\nHost: shop\r\nX-Big: " + strings.Repeat("b", 12<<10) + "\r\n\r\n")
	first := newFastTap([]*tapRoute{tr}, fastRequest{head: head}, bounds)
	if got := bounds.inFlight.Load(); got != int64(len(head)) {
		t.Fatalf("a copy's head of %d bytes holds %d of the in-flight budget", len(head), got)
	}
	second := newFastTap([]*tapRoute{tr}, fastRequest{head: head}, bounds)
	second.answered = true
	second.finish()
	if d := tr.dropped.Load(); d != 1 {
		t.Fatalf("a copy whose head found no room in the budget: %d dropped, want 1", d)
	}
	first.finish()
	if got := bounds.inFlight.Load(); got != 0 {
		t.Fatalf("every copy finished, and %d bytes of the in-flight budget are still held", got)
	}
}
