package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// query is an A query for name under id.
func query(t testing.TB, id uint16, name string) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// answerFor is the upstream's answer to q: the A record 10.0.0.N for the
// name nN.test.
func answerFor(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, _ := p.AllQuestions()
	h.Response = true
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	_ = b.Question(qs[0])
	_ = b.StartAnswers()
	var n byte
	_, _ = fmt.Sscanf(qs[0].Name.String(), "n%d.test.", &n)
	_ = b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: [4]byte{10, 0, 0, n}})
	a, _ := b.Finish()
	return a
}

// upstream stands in for the cluster's DNS over TCP: it answers the
// queries it has read so far last first (as a server that answers
// pipelined queries out of order may), closes a connection after perConn
// answers when that is set, and answers nothing when silent; dials counts
// the connections.
type upstream struct {
	perConn int
	silent  bool
	dials   atomic.Int32
}

func (u *upstream) dial(_ context.Context, _ string) (net.Conn, error) {
	u.dials.Add(1)
	a, b := net.Pipe()
	go u.serve(b)
	return a, nil
}

func (u *upstream) serve(c net.Conn) {
	defer c.Close()
	queries := make(chan []byte, 1024)
	go func() {
		defer close(queries)
		for {
			var n [2]byte
			if _, err := io.ReadFull(c, n[:]); err != nil {
				return
			}
			q := make([]byte, binary.BigEndian.Uint16(n[:]))
			if _, err := io.ReadFull(c, q); err != nil {
				return
			}
			queries <- q
		}
	}()
	answered := 0
	for q := range queries {
		held := [][]byte{q}
	more:
		for {
			select {
			case q, ok := <-queries:
				if !ok {
					break more
				}
				held = append(held, q)
			default:
				break more
			}
		}
		if u.silent {
			continue
		}
		for i := len(held) - 1; i >= 0; i-- {
			a := answerFor(held[i])
			if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...)); err != nil {
				return
			}
			if answered++; u.perConn > 0 && answered >= u.perConn {
				return
			}
		}
	}
}

// checkAnswer fails unless a answers nN.test with 10.0.0.N under id.
func checkAnswer(t *testing.T, a []byte, id uint16, n int) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(a); err != nil {
		t.Errorf("answer for n%d: %v", n, err)
		return
	}
	want := [4]byte{10, 0, 0, byte(n)}
	if m.ID != id || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != want {
		t.Errorf("answer for n%d.test under ID %d: ID %d, %v", n, id, m.ID, m.Answers)
	}
}

// Clients that picked the same ID, asking at once, each get the answer to
// their own question under their own ID, over the few connections the
// pool keeps (not one per query), even when the server answers out of
// order.
func TestDNSPoolPipelinesQueriesByID(t *testing.T) {
	u := &upstream{}
	p := newDNSPool([]string{"10.96.0.10:53"}, u.dial)
	defer p.close()
	var wg sync.WaitGroup
	for n := 1; n <= 64; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			a, err := p.exchange(ctx, query(t, 7, fmt.Sprintf("n%d.test.", n)))
			if err != nil {
				t.Errorf("n%d: %v", n, err)
				return
			}
			checkAnswer(t, a, 7, n)
		}()
	}
	wg.Wait()
	if d := u.dials.Load(); d < 1 || d > maxDNSConns {
		t.Errorf("64 queries took %d connections to the DNS, want 1 to %d", d, maxDNSConns)
	}
}

// A connection the server closes (idle, or after so many queries, as
// CoreDNS does) is replaced: every query is answered.
func TestDNSPoolReconnects(t *testing.T) {
	u := &upstream{perConn: 3}
	p := newDNSPool([]string{"10.96.0.10:53"}, u.dial)
	defer p.close()
	for n := 1; n <= 10; n++ {
		a, err := p.exchange(t.Context(), query(t, uint16(100+n), fmt.Sprintf("n%d.test.", n)))
		if err != nil {
			t.Fatalf("query %d: %v", n, err)
		}
		checkAnswer(t, a, uint16(100+n), n)
	}
	if d := u.dials.Load(); d < 4 {
		t.Errorf("10 answers, 3 a connection, over %d connections", d)
	}
}

// When the pod's first nameserver cannot be reached, the next is asked.
func TestDNSPoolFallsBack(t *testing.T) {
	u := &upstream{}
	var asked []string
	var mu sync.Mutex
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		mu.Lock()
		asked = append(asked, addr)
		mu.Unlock()
		if addr == "10.0.0.1:53" {
			return nil, errors.New("connection refused")
		}
		return u.dial(ctx, addr)
	}
	p := newDNSPool([]string{"10.0.0.1:53", "10.0.0.2:53"}, dial)
	defer p.close()
	a, err := p.exchange(t.Context(), query(t, 1, "n4.test."))
	if err != nil {
		t.Fatal(err)
	}
	checkAnswer(t, a, 1, 4)
	if fmt.Sprint(asked) != "[10.0.0.1:53 10.0.0.2:53]" {
		t.Errorf("dialed %v", asked)
	}
}

// A query the DNS does not answer fails when its time is up (the client
// gets SERVFAIL); with every connection full of waiting queries a new one
// fails at once; the connection serves on.
func TestDNSConnBounds(t *testing.T) {
	u := &upstream{silent: true}
	c, _ := u.dial(t.Context(), "")
	d := newDNSConn(c)
	defer d.close(nil)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	_, err := d.exchange(ctx, query(t, 1, "n1.test."))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an unanswered query: %v, want its deadline", err)
	}
	if n, ok := d.load(); n != 0 || !ok {
		t.Fatalf("after the timeout: %d waiting, serving %v; want 0, true", n, ok)
	}
	ctx, cancel = context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := 0; i < maxDNSPending; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = d.exchange(ctx, query(t, 1, "n1.test.")) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := d.load(); n < maxDNSPending; n, _ = d.load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d queries waiting, want %d", n, maxDNSPending)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := d.exchange(t.Context(), query(t, 1, "n1.test.")); !errors.Is(err, errDNSBusy) {
		t.Errorf("query %d: %v, want errDNSBusy", maxDNSPending+1, err)
	}
	cancel()
	wg.Wait()
}
