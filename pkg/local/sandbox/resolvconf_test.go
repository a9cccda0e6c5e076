package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// What the kubelet writes is taken as it is; a nameserver the sidecar
// does not dial is left out and said; the last search or domain line is
// the search path.
func TestFromResolvConf(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       DNS
		left       string
		ok         bool
	}{
		{name: "ClusterFirst", ok: true, conf: "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
			want: DNS{Nameserver: netip.MustParseAddr("10.96.0.10"), Upstream: "10.96.0.10:53", Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}},
		{name: "the local cluster's DNS on the node, no Service", ok: true, conf: "nameserver 172.18.0.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:2 edns0\n",
			want: DNS{Nameserver: netip.MustParseAddr("172.18.0.2"), Upstream: "172.18.0.2:53", Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5", "timeout:2", "edns0"}}},
		{name: "several nameservers, IPv6 among them; a comment; domain then search", ok: true,
			conf: "# Generated\ndomain corp.example\nnameserver fd00::a\n; old\nnameserver 10.0.0.53\nsearch a.example b.example.\n",
			want: DNS{Nameserver: netip.MustParseAddr("fd00::a"), Upstream: "[fd00::a]:53", Fallback: []string{"10.0.0.53:53"}, Search: []string{"a.example", "b.example"}}},
		{name: "a node-local cache on link-local, the Service after it", ok: true, left: "169.254.20.10",
			conf: "nameserver 169.254.20.10\nnameserver 10.96.0.10\n",
			want: DNS{Nameserver: netip.MustParseAddr("10.96.0.10"), Upstream: "10.96.0.10:53"}},
		{name: "the node's systemd-resolved (dnsPolicy Default, host network)", left: "127.0.0.53", conf: "nameserver 127.0.0.53\nsearch lan\n"},
		{name: "no nameserver", conf: "search shop.svc.cluster.local\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, left, ok := FromResolvConf(tc.conf)
			if ok != tc.ok || tc.ok && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FromResolvConf = %+v, %v\nwant %+v, %v", got, ok, tc.want, tc.ok)
			}
			if tc.left == "" && left != "" || !strings.Contains(left, tc.left) {
				t.Errorf("left %q, want it to name %q", left, tc.left)
			}
		})
	}
}

// A resolv.conf from a crafted pod cannot put a line, an address or a
// name of its choosing into the sandbox's resolv.conf, nor make it long:
// each field is checked, and counts and lengths are bounded.
func TestFromResolvConfHostile(t *testing.T) {
	var b strings.Builder
	b.WriteString("nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n")
	b.WriteString("nameserver 198.18.0.2\nnameserver fe80::1%eth0\nnameserver 169.254.169.254\nnameserver ::\nnameserver example.com\n")
	b.WriteString("search ok.example evil\\nnameserver\\n1.2.3.4 a..b " + strings.Repeat("x", 64) + ".example bad\x1b[31m.example\n")
	b.WriteString("search " + strings.Repeat("d.example ", 20) + "\n")
	b.WriteString("options ndots:5 ndots:99 ndots:5x debug timeout:1 " + strings.Repeat("rotate ", 20) + "attempts:-1 \x00\n")
	b.WriteString("sortlist 10.0.0.0/8\n")
	b.WriteString("search " + strings.Repeat("y", 2000) + "\n")
	dns, left, ok := FromResolvConf(b.String())
	if !ok {
		t.Fatalf("no DNS from the first three nameservers (left: %s)", left)
	}
	if dns.Nameserver != netip.MustParseAddr("10.0.0.1") || !reflect.DeepEqual(dns.Fallback, []string{"10.0.0.2:53", "10.0.0.3:53"}) {
		t.Errorf("nameservers %s %v, want 10.0.0.1 then 10.0.0.2 and 10.0.0.3 (three at most)", dns.Nameserver, dns.Fallback)
	}
	if len(dns.Search) != maxSearch {
		t.Errorf("search %v: want the last line's first %d", dns.Search, maxSearch)
	}
	if !reflect.DeepEqual(dns.Options, []string{"ndots:5", "timeout:1", "rotate"}) {
		t.Errorf("options %v, want ndots:5 timeout:1 rotate", dns.Options)
	}
	conf := dns.ResolvConf()
	if strings.Count(conf, "\n") != 4 || strings.Contains(conf, "1.2.3.4") || strings.ContainsAny(conf, "\x1b\x00\\") {
		t.Errorf("the sandbox's resolv.conf:\n%s", conf)
	}
	if len(left) > 600 || strings.ContainsAny(left, "\x1b\x00\n") {
		t.Errorf("what was left out, as the developer reads it: %q", left)
	}
}

func kubeDNS() *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"}, Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10"}}
}

// The copy pod's own resolv.conf is the answer when its sidecar gives it;
// a sidecar older than the question, a tunnel that fails, or a file with
// no usable nameserver fall back to the guess from the API, and the note
// says why.
func TestResolveDNS(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "backend-1", Namespace: "shop"}, Spec: corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst}}
	guess := DNS{Nameserver: netip.MustParseAddr("10.96.0.10"), Upstream: "10.96.0.10:53",
		Search: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}}
	for _, tc := range []struct {
		name string
		ask  func(context.Context) (string, error)
		want DNS
		note string
	}{
		{name: "the pod's own", ask: func(context.Context) (string, error) {
			return "nameserver 172.18.0.2\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", nil
		}, want: DNS{Nameserver: netip.MustParseAddr("172.18.0.2"), Upstream: "172.18.0.2:53", Search: guess.Search, Options: guess.Options}},
		{name: "an older sidecar", ask: func(context.Context) (string, error) {
			return "", fmt.Errorf("%w: older", tunnel.ErrUnsupported)
		}, want: guess, note: "older than this kubectl-intercept"},
		{name: "the tunnel fails", ask: func(context.Context) (string, error) {
			return "", errors.New("tunnel session ended")
		}, want: guess, note: "tunnel session ended"},
		{name: "only loopback", ask: func(context.Context) (string, error) {
			return "nameserver 127.0.0.1\n", nil
		}, want: guess, note: "127.0.0.1"},
		{name: "no tunnel", want: guess, note: "no tunnel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(kubeDNS())
			got, note, err := ResolveDNS(t.Context(), client, pod, tc.ask)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ResolveDNS = %+v\nwant %+v", got, tc.want)
			}
			if tc.note == "" && note != "" || !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want it to say %q", note, tc.note)
			}
			if tc.note != "" && !strings.Contains(note, "10.96.0.10") {
				t.Errorf("note %q does not say what the sandbox asks instead", note)
			}
		})
	}
}

// Whatever a pod's resolv.conf holds, what the sandbox takes from it is a
// resolv.conf of at most three nameservers it dials, six search names and
// eight options, in printable ASCII on four lines, and what was left out
// is said in printable text.
func FuzzFromResolvConf(f *testing.F) {
	f.Add("nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
	f.Add("nameserver fd00::a\nnameserver 127.0.0.1\ndomain x\noptions rotate timeout:1 attempts:2\n")
	f.Add("search a\x00b \xff.example\nnameserver 1.2.3.4%eth0\noptions ndots:05\n")
	f.Fuzz(func(t *testing.T, conf string) {
		dns, left, ok := FromResolvConf(conf)
		for _, r := range left {
			if r < ' ' || r == 0x7f {
				t.Fatalf("left %q holds a control character", left)
			}
		}
		if !ok {
			return
		}
		if !usableNameserver(dns.Nameserver) || len(dns.Fallback) > maxNameservers-1 || len(dns.Search) > maxSearch || len(dns.Options) > maxOptions {
			t.Fatalf("took %+v", dns)
		}
		out := dns.ResolvConf()
		if strings.Count(out, "\n") > 4 {
			t.Fatalf("a resolv.conf of more than four lines:\n%s", out)
		}
		for _, r := range out {
			if r != '\n' && (r < ' ' || r > '~') {
				t.Fatalf("%q in the sandbox's resolv.conf:\n%s", r, out)
			}
		}
	})
}
