package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/local/netproxy"
	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// dnsForwarder answers the sandbox's DNS queries: each is sent over TCP to
// the cluster's DNS, on a connection dialed from the pod and kept open
// (dnsPool), so the answer is the pod's (its search path is in the
// sandbox's resolv.conf); answers are kept a few seconds (dnsCache).
// Names given as --local are answered from this machine's resolver.
type dnsForwarder struct {
	cfg   DNS
	pool  *dnsPool
	cache *dnsCache
	local []Local
	logf  func(string, ...any)
}

func newDNSForwarder(cfg DNS, dial netproxy.Dialer, local []Local, logf func(string, ...any)) *dnsForwarder {
	upstream := cfg.Upstream
	if upstream == "" {
		upstream = net.JoinHostPort(cfg.Nameserver.String(), "53")
	}
	addrs := append([]string{upstream}, cfg.Fallback...)
	return &dnsForwarder{cfg: cfg, pool: newDNSPool(addrs, dial), cache: newDNSCache(), local: local, logf: logf}
}

// dnsTimeout bounds one query, as a stub resolver's retry would.
const dnsTimeout = 10 * time.Second

// answer is the reply to query q (a DNS message as sent over UDP).
func (d *dnsForwarder) answer(ctx context.Context, q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, fmt.Errorf("a query that is not DNS: %w", err)
	}
	key := ""
	if qs, err := p.AllQuestions(); err == nil && len(qs) == 1 {
		if a, ok := d.localAnswer(h, qs[0]); ok {
			return a, nil
		}
		if a, ok := d.localSearchAnswer(h, qs[0]); ok {
			return a, nil
		}
		key = cacheKey(h, qs, q)
	}
	if a := d.cache.get(key, h.ID); a != nil {
		return truncateForUDP(a), nil
	}
	a, err := d.pool.exchange(ctx, q)
	if err != nil {
		return nil, err
	}
	a = d.withoutRebinding(a)
	d.cache.put(key, a)
	return truncateForUDP(a), nil
}

// serverFailure is the SERVFAIL answer to query q; nil when q is not DNS.
func serverFailure(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, _ := p.AllQuestions()
	h.Response, h.RecursionAvailable, h.RCode = true, true, dnsmessage.RCodeServerFailure
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	for _, qq := range qs {
		_ = b.Question(qq)
	}
	a, err := b.Finish()
	if err != nil {
		return nil
	}
	return a
}

// maxUDPAnswer is the size a stub resolver takes over UDP without EDNS;
// a longer answer is cut to its header with TC set, so the resolver asks
// again over TCP (which the stack passes to the cluster's DNS as is).
const maxUDPAnswer = 512

func truncateForUDP(a []byte) []byte {
	if len(a) <= maxUDPAnswer || hasEDNS(a) {
		return a
	}
	var p dnsmessage.Parser
	h, err := p.Start(a)
	if err != nil {
		return a
	}
	qs, _ := p.AllQuestions()
	h.Truncated = true
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	for _, q := range qs {
		_ = b.Question(q)
	}
	out, err := b.Finish()
	if err != nil {
		return a
	}
	return out
}

func hasEDNS(a []byte) bool {
	var p dnsmessage.Parser
	if _, err := p.Start(a); err != nil {
		return false
	}
	_ = p.SkipAllQuestions()
	_ = p.SkipAllAnswers()
	_ = p.SkipAllAuthorities()
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return false
		}
		if h.Type == dnsmessage.TypeOPT {
			return true
		}
		if err := p.SkipAdditional(); err != nil {
			return false
		}
	}
}

// localAnswer answers A and AAAA queries for a --local name with the
// addresses this machine's resolver gave when the sandbox started.
func (d *dnsForwarder) localAnswer(h dnsmessage.Header, q dnsmessage.Question) ([]byte, bool) {
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	var addrs []netip.Addr
	found := false
	for _, l := range d.local {
		if l.Host == "" || !strings.EqualFold(l.Host, name) {
			continue
		}
		found = true
		addrs = append(addrs, l.Prefix.Addr())
	}
	if !found {
		return nil, false
	}
	h.Response, h.Authoritative, h.RecursionAvailable, h.RCode = true, true, true, dnsmessage.RCodeSuccess
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			_ = b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, err := b.Finish()
	return out, err == nil
}

// splitLocals sorts --local destinations: this machine's loopback ports
// (shown on the sandbox's loopback) and the rest (dialed from here), with
// names resolved now, by this machine's resolver.
func splitLocals(ctx context.Context, resolver *net.Resolver, locals []Local) (loopback, other []Local, err error) {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	for _, l := range locals {
		isLoopback := l.Host == "localhost" || l.Host == "" && l.Prefix.IsSingleIP() && l.Prefix.Addr().IsLoopback()
		if isLoopback {
			if l.Port == 0 {
				return nil, nil, fmt.Errorf("--local %s: this machine's loopback needs a port (--local localhost:5432): the sandbox has a loopback of its own, where the port is shown", l)
			}
			loopback = append(loopback, l)
			continue
		}
		if l.Host == "" {
			other = append(other, l)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		addrs, err := resolver.LookupNetIP(rctx, "ip", l.Host)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("--local %s: resolving %s on this machine: %w", l, l.Host, err)
		}
		if loopback, other, err = sortResolved(l, addrs, loopback, other); err != nil {
			return nil, nil, err
		}
	}
	return loopback, other, nil
}

// pipe joins two connections until both directions end.
func pipe(a, b net.Conn) { tunnel.Pipe(a, b) }
