package main

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func ask(t *testing.T, z *zone, name string, typ dnsmessage.Type) (dnsmessage.RCode, []string) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	var p dnsmessage.Parser
	h, err := p.Start(z.answer(q))
	if err != nil {
		t.Fatal(err)
	}
	if h.ID != 7 || !h.Response {
		t.Fatalf("header %+v", h)
	}
	_ = p.SkipAllQuestions()
	var got []string
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		switch rh.Type {
		case dnsmessage.TypeA:
			r, _ := p.AResource()
			got = append(got, netip.AddrFrom4(r.A).String())
		case dnsmessage.TypeAAAA:
			r, _ := p.AAAAResource()
			got = append(got, netip.AddrFrom16(r.AAAA).String())
		}
	}
	return h.RCode, got
}

// Services answer by their cluster names, pods by their dashed IPs, every
// other name is NXDOMAIN.
func TestZone(t *testing.T) {
	z := testZone(t)
	for _, tc := range []struct {
		name string
		typ  dnsmessage.Type
		code dnsmessage.RCode
		want []string
	}{
		{"backend.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.96.0.20"}},
		{"Backend.Shop.svc.cluster.local.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, []string{"fd00::20"}},
		{"headless.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"nope.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"10-244-0-9.shop.pod.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"10.244.0.9"}},
		{"shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"backend.shop.svc.cluster.local.shop.svc.cluster.local.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"example.com.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
	} {
		code, got := ask(t, z, tc.name, tc.typ)
		if code != tc.code || len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s %s: %s %v, want %s %v", tc.name, tc.typ, code, got, tc.code, tc.want)
		}
	}
}

// An answer with no record (a name that does not exist, or no record of
// the type asked) carries the zone's SOA, as CoreDNS's do, so a resolver
// may keep it for its minimum TTL; an answer with records carries none.
func TestNegativeAnswersCarryTheSOA(t *testing.T) {
	z := testZone(t)
	for _, tc := range []struct {
		name string
		typ  dnsmessage.Type
		soa  bool
	}{
		{"nope.shop.svc.cluster.local.", dnsmessage.TypeA, true},
		{"headless.shop.svc.cluster.local.", dnsmessage.TypeA, true},
		{"backend.shop.svc.cluster.local.", dnsmessage.TypeA, false},
		{"example.com.", dnsmessage.TypeA, false}, // not the zone's to speak for
	} {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9})
		_ = b.StartQuestions()
		_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(tc.name), Type: tc.typ, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		var p dnsmessage.Parser
		if _, err := p.Start(z.answer(q)); err != nil {
			t.Fatal(err)
		}
		_ = p.SkipAllQuestions()
		_ = p.SkipAllAnswers()
		h, err := p.AuthorityHeader()
		got := err == nil && h.Type == dnsmessage.TypeSOA
		if got != tc.soa {
			t.Errorf("%s %s: SOA in the authority section = %v, want %v", tc.name, tc.typ, got, tc.soa)
		}
		if got {
			soa, err := p.SOAResource()
			if err != nil || soa.MinTTL != ttl || h.Name.String() != "cluster.local." {
				t.Errorf("%s: SOA %+v %v (owner %s), want the zone's with minimum %d", tc.name, soa, err, h.Name, ttl)
			}
		}
	}
}

// testZone is a zone with Services backend (dual-stack) and headless in
// namespace shop.
func testZone(t *testing.T) *zone {
	t.Helper()
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	_ = store.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIPs: []string{"10.96.0.20", "fd00::20"}}})
	_ = store.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "shop"},
		Spec: corev1.ServiceSpec{ClusterIP: "None", ClusterIPs: []string{"None"}}})
	return &zone{domain: "cluster.local.", services: store}
}
