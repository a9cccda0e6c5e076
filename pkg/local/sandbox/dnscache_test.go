package sandbox

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// answerWith is an answer to q with rcode, one A record of ttl when ttl is
// set, and an SOA of soaTTL when that is.
func answerWith(t *testing.T, q []byte, rcode dnsmessage.RCode, ttl, soaTTL uint32) []byte {
	t.Helper()
	var p dnsmessage.Parser
	h, _ := p.Start(q)
	qs, _ := p.AllQuestions()
	h.Response, h.RCode = true, rcode
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	_ = b.Question(qs[0])
	_ = b.StartAnswers()
	if ttl > 0 {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: qs[0].Name, Class: dnsmessage.ClassINET, TTL: ttl}, dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}})
	}
	_ = b.StartAuthorities()
	if soaTTL > 0 {
		_ = b.SOAResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("cluster.local."), Class: dnsmessage.ClassINET, TTL: soaTTL},
			dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.dns.cluster.local."), MBox: dnsmessage.MustNewName("hostmaster.cluster.local."), MinTTL: soaTTL})
	}
	a, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// countingDNS answers every query with answer(q) over TCP and counts the
// queries that reached it.
func countingDNS(answer func(q []byte) []byte, queries *int) func(context.Context, string) (net.Conn, error) {
	return func(context.Context, string) (net.Conn, error) {
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			for {
				var n [2]byte
				if _, err := b.Read(n[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := b.Read(q); err != nil {
					return
				}
				*queries++
				a := answer(q)
				if _, err := b.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...)); err != nil {
					return
				}
			}
		}()
		return a, nil
	}
}

// A name asked again within its TTL (at most dnsCacheTTL) is answered
// without crossing the tunnel, under the asker's ID; after, it is asked
// again. A name that does not exist is kept for its SOA's TTL; failures,
// truncated answers and answers of TTL 0 are not kept.
func TestDNSCache(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T, q []byte) []byte
		kept   time.Duration
	}{
		{"an A record of TTL 30", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeSuccess, 30, 0) }, dnsCacheTTL},
		{"an A record of TTL 2", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeSuccess, 2, 0) }, 2 * time.Second},
		{"no such name, SOA TTL 3", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeNameError, 0, 3) }, 3 * time.Second},
		{"no such name, no SOA", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeNameError, 0, 0) }, 0},
		{"TTL 0", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeSuccess, 0, 0) }, 0},
		{"SERVFAIL", func(t *testing.T, q []byte) []byte { return answerWith(t, q, dnsmessage.RCodeServerFailure, 0, 30) }, 0},
		{"truncated", func(t *testing.T, q []byte) []byte {
			a := answerWith(t, q, dnsmessage.RCodeSuccess, 30, 0)
			a[2] |= 0x02 // TC
			return a
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queries := 0
			d := newDNSForwarder(DNS{Nameserver: netip.MustParseAddr("10.96.0.10")},
				countingDNS(func(q []byte) []byte { return tc.answer(t, q) }, &queries), nil, nil)
			defer d.pool.close()
			now := time.Unix(1000, 0)
			d.cache.now = func() time.Time { return now }
			ask := func(id uint16) {
				t.Helper()
				a, err := d.answer(t.Context(), query(t, id, "backend.shop.svc.cluster.local."))
				if err != nil {
					t.Fatal(err)
				}
				if got := binary.BigEndian.Uint16(a); got != id {
					t.Fatalf("answer under ID %d, want %d", got, id)
				}
			}
			ask(1)
			ask(2)
			want := 1
			if tc.kept == 0 {
				want = 2
			}
			if queries != want {
				t.Fatalf("asked twice at once: %d queries reached the DNS, want %d", queries, want)
			}
			if tc.kept == 0 {
				return
			}
			now = now.Add(tc.kept - time.Millisecond)
			ask(3)
			if queries != 1 {
				t.Fatalf("just before %s: %d queries, want 1", tc.kept, queries)
			}
			now = now.Add(time.Millisecond)
			ask(4)
			if queries != 2 {
				t.Fatalf("at %s: %d queries, want 2", tc.kept, queries)
			}
		})
	}
}

// The cache holds at most dnsCacheEntries answers, whatever names a
// command asks for, and none longer than dnsCacheMaxAnswer.
func TestDNSCacheIsBounded(t *testing.T) {
	c := newDNSCache()
	a := answerWith(t, query(t, 1, "x.test."), dnsmessage.RCodeSuccess, 30, 0)
	for i := range 3 * dnsCacheEntries {
		c.put("name"+string(rune(i)), a)
	}
	if n := len(c.entries); n > dnsCacheEntries {
		t.Errorf("%d entries, want at most %d", n, dnsCacheEntries)
	}
	big := make([]byte, dnsCacheMaxAnswer+1)
	copy(big, a)
	c.put("big", big)
	if _, kept := c.entries["big"]; kept {
		t.Errorf("an answer of %d bytes was kept", len(big))
	}
}
