package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// The cluster's DNS answers for the cluster: an address it gives that
// points at this machine (a --local destination, the loopback) or at the
// sandbox's own ranges would send a connection the command means for the
// cluster to this machine instead. Those records are dropped and the drop
// is logged, as dnsmasq's stop-dns-rebind does for private ranges.

// rebinds says whether an address from the cluster's DNS points at this
// machine or the sandbox.
func (d *dnsForwarder) rebinds(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	for _, p := range sandboxRanges {
		if p.Contains(a) {
			return true
		}
	}
	for _, l := range d.local {
		if l.Prefix.IsValid() && l.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// withoutRebinding is the cluster's answer a without its A and AAAA
// records that point at this machine (a itself when it has none, or is
// not DNS the sandbox can rebuild).
func (d *dnsForwarder) withoutRebinding(a []byte) []byte {
	out, dropped := dropRecords(a, d.rebinds)
	if len(dropped) > 0 && d.logf != nil {
		d.logf("sandbox: DNS: the cluster's answer for %s pointed at this machine or the sandbox (%s): those records were dropped (use an address or --local NAME to reach this machine)", dropped[0], strings.Join(dropped[1:], ", "))
	}
	return out
}

// dropRecords rebuilds a without the address records bad says to drop;
// dropped is the question's name then the addresses dropped (empty when
// a is returned as it is).
func dropRecords(a []byte, bad func(netip.Addr) bool) (out []byte, dropped []string) {
	var p dnsmessage.Parser
	h, err := p.Start(a)
	if err != nil {
		return a, nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return a, nil
	}
	var sections [3][]dnsmessage.Resource
	if sections[0], err = p.AllAnswers(); err != nil {
		return a, nil
	}
	if sections[1], err = p.AllAuthorities(); err != nil {
		return a, nil
	}
	if sections[2], err = p.AllAdditionals(); err != nil {
		return a, nil
	}
	name := "?"
	if len(qs) > 0 {
		name = qs[0].Name.String()
	}
	for i, rs := range sections {
		kept := rs[:0]
		for _, r := range rs {
			var addr netip.Addr
			switch body := r.Body.(type) {
			case *dnsmessage.AResource:
				addr = netip.AddrFrom4(body.A)
			case *dnsmessage.AAAAResource:
				addr = netip.AddrFrom16(body.AAAA)
			}
			if addr.IsValid() && bad(addr) {
				if len(dropped) == 0 {
					dropped = append(dropped, name)
				}
				dropped = append(dropped, addr.Unmap().String())
				continue
			}
			kept = append(kept, r)
		}
		sections[i] = kept
	}
	if len(dropped) == 0 {
		return a, nil
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	_ = b.StartQuestions()
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			return serverFailure(a), dropped
		}
	}
	starts := []func() error{b.StartAnswers, b.StartAuthorities, b.StartAdditionals}
	for i, rs := range sections {
		if err := starts[i](); err != nil {
			return serverFailure(a), dropped
		}
		for _, r := range rs {
			if err := addResource(&b, r); err != nil {
				return serverFailure(a), dropped
			}
		}
	}
	out, err = b.Finish()
	if err != nil {
		return serverFailure(a), dropped
	}
	return out, dropped
}

// addResource adds r to b as the type it was parsed as.
func addResource(b *dnsmessage.Builder, r dnsmessage.Resource) error {
	switch body := r.Body.(type) {
	case *dnsmessage.AResource:
		return b.AResource(r.Header, *body)
	case *dnsmessage.AAAAResource:
		return b.AAAAResource(r.Header, *body)
	case *dnsmessage.CNAMEResource:
		return b.CNAMEResource(r.Header, *body)
	case *dnsmessage.NSResource:
		return b.NSResource(r.Header, *body)
	case *dnsmessage.PTRResource:
		return b.PTRResource(r.Header, *body)
	case *dnsmessage.MXResource:
		return b.MXResource(r.Header, *body)
	case *dnsmessage.TXTResource:
		return b.TXTResource(r.Header, *body)
	case *dnsmessage.SRVResource:
		return b.SRVResource(r.Header, *body)
	case *dnsmessage.SOAResource:
		return b.SOAResource(r.Header, *body)
	case *dnsmessage.OPTResource:
		return b.OPTResource(r.Header, *body)
	case *dnsmessage.UnknownResource:
		return b.UnknownResource(r.Header, *body)
	}
	return errors.New("a record the sandbox cannot rebuild")
}

// answerFull is the reply to query q as TCP carries it: answered as
// answer does (--local names, the rebinding guard), not cut for UDP.
func (d *dnsForwarder) answerFull(ctx context.Context, q []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, fmt.Errorf("a query that is not DNS: %w", err)
	}
	if qs, err := p.AllQuestions(); err == nil && len(qs) == 1 {
		if a, ok := d.localAnswer(h, qs[0]); ok {
			return a, nil
		}
		if a, ok := d.localSearchAnswer(h, qs[0]); ok {
			return a, nil
		}
	}
	a, err := d.pool.exchange(ctx, q)
	if err != nil {
		return nil, err
	}
	return d.withoutRebinding(a), nil
}

// localSearchAnswer answers NXDOMAIN for a --local name with the pod's
// search path added (NAME.NAMESPACE.svc.cluster.local...), which a
// resolver asks before NAME itself (ndots:5): the cluster must not answer
// a name the developer keeps on this machine.
func (d *dnsForwarder) localSearchAnswer(h dnsmessage.Header, q dnsmessage.Question) ([]byte, bool) {
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	hit := false
	for _, l := range d.local {
		if l.Host == "" {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(l.Host, "."))
		for _, s := range d.cfg.Search {
			if name == host+"."+strings.ToLower(strings.TrimSuffix(s, ".")) {
				hit = true
			}
		}
	}
	if !hit {
		return nil, false
	}
	h.Response, h.Authoritative, h.RecursionAvailable, h.RCode = true, true, true, dnsmessage.RCodeNameError
	b := dnsmessage.NewBuilder(nil, h)
	_ = b.StartQuestions()
	_ = b.Question(q)
	out, err := b.Finish()
	return out, err == nil
}
