package sandbox

import (
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func TestParseLocal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "192.168.1.0/24", want: "192.168.1.0/24"},
		{in: "192.168.1.7/24", want: "192.168.1.0/24"},
		{in: "10.0.0.5:5432", want: "10.0.0.5:5432"},
		{in: "db.lan", want: "db.lan"},
		{in: "db.lan:5432", want: "db.lan:5432"},
		{in: "localhost:6379", want: "localhost:6379"},
		{in: "[fd00::/8]:443", want: "[fd00::/8]:443"},
		{in: "fd00::1", want: "fd00::1"},
		{in: "db.lan:0", bad: true},
		{in: "db.lan:http", bad: true},
		{in: "10.0.0.0/33", bad: true},
		{in: ":5432", bad: true},
		{in: "", bad: true},
	} {
		l, err := ParseLocal(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "--local") {
				t.Errorf("ParseLocal(%q) = %v, %v; want an error naming --local", tc.in, l, err)
			}
			continue
		}
		if err != nil || l.String() != tc.want {
			t.Errorf("ParseLocal(%q) = %q, %v; want %q", tc.in, l.String(), err, tc.want)
		}
	}
}

func TestLocalMatches(t *testing.T) {
	l, _ := ParseLocal("192.168.1.0/24:5432")
	if !l.matches(netip.MustParseAddr("192.168.1.9"), 5432) || l.matches(netip.MustParseAddr("192.168.1.9"), 80) || l.matches(netip.MustParseAddr("10.0.0.1"), 5432) {
		t.Errorf("%s matches the wrong destinations", l)
	}
}

func TestResolvConf(t *testing.T) {
	got := DNS{
		Nameserver: netip.MustParseAddr("10.96.0.10"),
		Search:     []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Options:    []string{"ndots:5"},
	}.ResolvConf()
	for _, want := range []string{"nameserver 10.96.0.10\n", "search shop.svc.cluster.local svc.cluster.local cluster.local\n", "options ndots:5\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, got)
		}
	}
}

// A --local name is answered from this machine's addresses, never asked
// of the cluster.
func TestDNSAnswersLocalNames(t *testing.T) {
	// A query that reached the cluster would panic: no dialer.
	d := newDNSForwarder(DNS{Nameserver: netip.MustParseAddr("10.96.0.10")}, nil,
		[]Local{{Prefix: netip.MustParsePrefix("192.168.1.20/32"), Host: "db.lan"}}, nil)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 9, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("DB.lan."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	a, err := d.answer(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(a); err != nil {
		t.Fatal(err)
	}
	if m.ID != 9 || len(m.Answers) != 1 || m.Answers[0].Body.(*dnsmessage.AResource).A != [4]byte{192, 168, 1, 20} {
		t.Errorf("answer for db.lan: %+v", m)
	}
}

// An answer too long for UDP without EDNS is cut to its question with TC
// set, so the resolver asks again over TCP.
func TestTruncateForUDP(t *testing.T) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 3, Response: true})
	_ = b.StartQuestions()
	name := dnsmessage.MustNewName("many.shop.svc.cluster.local.")
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	for i := range 60 {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: [4]byte{10, 0, 0, byte(i)}})
	}
	long, _ := b.Finish()
	var m dnsmessage.Message
	if err := m.Unpack(truncateForUDP(long)); err != nil {
		t.Fatal(err)
	}
	if !m.Truncated || len(m.Answers) != 0 || len(m.Questions) != 1 {
		t.Errorf("truncated answer: TC=%v, %d answers, %d questions", m.Truncated, len(m.Answers), len(m.Questions))
	}
}

// A query the cluster's DNS cannot be asked is answered SERVFAIL, with its
// ID and question, so the resolver does not wait out its timeout.
func TestServerFailure(t *testing.T) {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 77, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("backend.shop.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	var m dnsmessage.Message
	if err := m.Unpack(serverFailure(q)); err != nil {
		t.Fatal(err)
	}
	if m.ID != 77 || !m.Response || m.RCode != dnsmessage.RCodeServerFailure || len(m.Questions) != 1 {
		t.Errorf("SERVFAIL answer: %+v", m.Header)
	}
	if serverFailure([]byte("not dns")) != nil {
		t.Errorf("an answer to a query that is not DNS")
	}
}
