package sandbox

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsCache keeps the cluster DNS's answers for a few seconds: glibc's and
// Go's resolvers keep nothing, so a client that opens a connection by name
// asks for it (A and AAAA, through the search path) every time, and each
// question crosses the tunnel. An answer is kept for its TTL (the SOA's
// for a name that does not exist), at most dnsCacheTTL, and served with
// its TTLs as received, so a client that keeps it in turn keeps it at
// most dnsCacheTTL longer than the cluster said. Truncated answers and
// failures are not kept.
type dnsCache struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cachedAnswer
}

type cachedAnswer struct {
	answer  []byte
	expires time.Time
}

// Bounds of the cache: 1024 answers of at most 4 KiB (a Service's A
// record is under 100 bytes; a longer answer is asked again), 4 MiB at
// most whatever the cluster's DNS sends.
const (
	dnsCacheTTL       = 5 * time.Second
	dnsCacheEntries   = 1024
	dnsCacheMaxAnswer = 4 << 10
)

func newDNSCache() *dnsCache {
	return &dnsCache{now: time.Now, entries: map[string]cachedAnswer{}}
}

// cacheKey names what an answer to q depends on: its questions (the name
// with its case as sent, type, class), the flags a resolver sets (RD, CD)
// and whether it has EDNS (the answer's size). "" when q is not one
// question.
func cacheKey(h dnsmessage.Header, qs []dnsmessage.Question, q []byte) string {
	if len(qs) != 1 || h.Response || h.OpCode != 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(qs[0].Name.String())
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(qs[0].Type)))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(qs[0].Class)))
	if h.RecursionDesired {
		b.WriteString(" rd")
	}
	if h.CheckingDisabled {
		b.WriteString(" cd")
	}
	if hasEDNS(q) {
		b.WriteString(" edns")
	}
	return b.String()
}

// get is the kept answer for key with id as its ID, nil when none is.
func (c *dnsCache) get(key string, id uint16) []byte {
	if key == "" {
		return nil
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && !c.now().Before(e.expires) {
		delete(c.entries, key)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	a := append([]byte(nil), e.answer...)
	a[0], a[1] = byte(id>>8), byte(id)
	return a
}

// put keeps answer a for key for as long as its TTL says, at most
// dnsCacheTTL.
func (c *dnsCache) put(key string, a []byte) {
	if key == "" || len(a) > dnsCacheMaxAnswer {
		return
	}
	ttl := answerTTL(a)
	if ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= dnsCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries { // still full: make room, any entry
			if len(c.entries) < dnsCacheEntries {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cachedAnswer{answer: append([]byte(nil), a...), expires: now.Add(ttl)}
}

// answerTTL is how long answer a may be kept: the least TTL of its
// answers, or for a name that does not exist (or has no record of the
// type) its SOA's, at most dnsCacheTTL; 0 for what is not kept.
func answerTTL(a []byte) time.Duration {
	var p dnsmessage.Parser
	h, err := p.Start(a)
	if err != nil || !h.Response || h.Truncated || h.RCode != dnsmessage.RCodeSuccess && h.RCode != dnsmessage.RCodeNameError {
		return 0
	}
	if err := p.SkipAllQuestions(); err != nil {
		return 0
	}
	least := uint32(dnsCacheTTL / time.Second)
	answers := 0
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		answers++
		least = min(least, rh.TTL)
		if err := p.SkipAnswer(); err != nil {
			return 0
		}
	}
	if answers == 0 {
		soa := false
		for {
			rh, err := p.AuthorityHeader()
			if err != nil {
				break
			}
			if rh.Type == dnsmessage.TypeSOA {
				r, err := p.SOAResource()
				if err != nil {
					return 0
				}
				soa = true
				least = min(least, rh.TTL, r.MinTTL)
				continue
			}
			if err := p.SkipAuthority(); err != nil {
				return 0
			}
		}
		if !soa {
			return 0
		}
	}
	return time.Duration(least) * time.Second
}
