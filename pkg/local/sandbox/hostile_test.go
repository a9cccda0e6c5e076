package sandbox

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod's volume does not replace what this machine has at its mountPath,
// nor add a file to a directory of this machine, unless the developer
// names the mountPath; what is left out says why and how to mount it.
func TestPlanMountsKeepsThisMachinesFiles(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "etc/profile.d", "opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/id"), []byte("the real id"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "opt/link")); err != nil {
		t.Fatal(err)
	}
	srcDir := t.TempDir()
	srcFile := filepath.Join(srcDir, "file")
	if err := os.WriteFile(srcFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		dir    bool
		cover  bool
		kept   bool
		reason []string
	}{
		{target: "/usr/bin/id", reason: []string{"exists on this machine", "--sandbox-cover /usr/bin/id"}},
		{target: "/usr/bin/id", cover: true, kept: true},
		{target: "/etc/profile.d", dir: true, reason: []string{"exists on this machine", "--sandbox-cover /etc/profile.d"}},
		{target: "/etc/profile.d/x.sh", reason: []string{"new file directly in /etc/profile.d", "--sandbox-cover /etc/profile.d/x.sh"}},
		{target: "/etc/profile.d/x.sh", cover: true, kept: true},
		{target: "/etc/profile.d/conf", dir: true, kept: true},
		{target: "/etc/config", dir: true, kept: true},
		{target: "/config/app.yaml", kept: true},
		{target: "/etc/app/settings.yaml", kept: true},
		{target: "/opt/link", cover: true, reason: []string{"symlink"}},
		{target: "/usr/bin/id/x", reason: []string{"/usr/bin/id on this machine is not a directory"}},
		{target: "/", dir: true, cover: true, reason: []string{"whole filesystem"}},
		{target: "/proc", dir: true, cover: true, reason: []string{"/proc is the kernel's"}},
		{target: "/dev/net", dir: true, cover: true, reason: []string{"/dev is the kernel's"}},
		{target: "/sys/x", cover: true, reason: []string{"/sys is the kernel's"}},
		{target: "/etc/resolv.conf", cover: true, reason: []string{"its own /etc/resolv.conf"}},
		{target: "/etc/" + strings.Repeat("x", 300), reason: []string{"longer than the 255 bytes"}},
	} {
		t.Run(tc.target, func(t *testing.T) {
			src := srcFile
			if tc.dir {
				src = srcDir
			}
			var cover []string
			if tc.cover {
				cover = []string{tc.target}
			}
			kept, skipped := planMounts([]Mount{{Source: src, Target: tc.target}}, cover, root)
			if tc.kept {
				if len(kept) != 1 || kept[0].Target != tc.target {
					t.Fatalf("kept %v, skipped %v; want it mounted", kept, skipped)
				}
				return
			}
			if len(kept) != 0 || len(skipped) != 1 {
				t.Fatalf("kept %v, skipped %v; want it left out", kept, skipped)
			}
			for _, w := range tc.reason {
				if !strings.Contains(skipped[0].String(), w) {
					t.Errorf("%q lacks %q", skipped[0], w)
				}
			}
			if !tc.cover && !strings.Contains(skipped[0].String(), "the volume at "+tc.target) {
				t.Errorf("%q does not name the mountPath", skipped[0])
			}
		})
	}
}

// The number of volumes is bounded, and a mountPath is mounted once.
func TestPlanMountsBounded(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	var ms []Mount
	for i := 0; i < maxMounts+2; i++ {
		ms = append(ms, Mount{Source: src, Target: fmt.Sprintf("/vols/v%d", i)})
	}
	ms = append(ms, Mount{Source: src, Target: "/vols/v0/"})
	kept, skipped := planMounts(ms, nil, root)
	if len(kept) != maxMounts || len(skipped) != 3 {
		t.Fatalf("%d kept, %d skipped; want %d and 3", len(kept), len(skipped), maxMounts)
	}
	if !strings.Contains(skipped[0].Reason, fmt.Sprintf("at most %d volumes", maxMounts)) {
		t.Errorf("over the bound: %q", skipped[0])
	}
	if !strings.Contains(skipped[2].Reason, "same mountPath") {
		t.Errorf("a second mount at /vols/v0: %q", skipped[2])
	}
}

// The hostname goes into /etc/hosts and sethostname: a DNS label alone.
func TestCheckHostname(t *testing.T) {
	for _, h := range []string{"pod", "backend-7d9f-x2x", strings.Repeat("a", 63), "0abc"} {
		if err := CheckHostname(h); err != nil {
			t.Errorf("CheckHostname(%q): %v", h, err)
		}
	}
	for _, h := range []string{"pod\n10.96.0.66\tdb.lan", strings.Repeat("a", 64), "Pod", "pod.x", "-pod", "pod-", "po d", ""} {
		err := CheckHostname(h)
		if err == nil {
			t.Errorf("CheckHostname(%q) passed", h)
			continue
		}
		if !strings.Contains(err.Error(), "at most 63 characters") || strings.Contains(err.Error(), "\n") {
			t.Errorf("CheckHostname(%q) = %q: want the limit named, on one line", h, err)
		}
	}
}

// A pod's dnsConfig adds no line of its own to the sandbox's resolv.conf,
// and its search path is bounded as the kubelet bounds it.
func TestSanitizeDNSKeepsResolvConfToItsLines(t *testing.T) {
	v := "1\nsearch attacker.example"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop"}, Spec: corev1.PodSpec{
		DNSPolicy: corev1.DNSClusterFirst,
		DNSConfig: &corev1.PodDNSConfig{
			Searches: []string{"corp.example\nnameserver 203.0.113.9", "corp.example"},
			Options:  []corev1.PodDNSConfigOption{{Name: "ndots", Value: &v}, {Name: "rotate"}},
		},
	}}
	for i := 0; i < 5000; i++ {
		pod.Spec.DNSConfig.Searches = append(pod.Spec.DNSConfig.Searches, fmt.Sprintf("s%d.example", i))
	}
	dns, _ := PodDNS(pod, netip.MustParseAddr(fakeDNS))
	clean, dropped, err := SanitizeDNS(dns)
	if err != nil {
		t.Fatal(err)
	}
	rc := clean.ResolvConf()
	if strings.Count(rc, "\n") != 4 || strings.Contains(rc, "203.0.113.9") || strings.Contains(rc, "attacker") {
		t.Errorf("resolv.conf has lines of the pod's:\n%.500s", rc)
	}
	if len(clean.Search) != maxSearchPaths || clean.Search[0] != "shop.svc.cluster.local" || clean.Search[3] != "corp.example" {
		t.Errorf("search path %v: want the pod's first, %d in all", clean.Search[:4], maxSearchPaths)
	}
	if !strings.Contains(rc, "options rotate\n") {
		t.Errorf("options: want rotate alone (the pod's ndots was not a number):\n%s", rc)
	}
	if len(dropped) == 0 || !strings.Contains(dropped[0], `nameserver 203.0.113.9`) || strings.Contains(strings.Join(dropped, ""), "\n") {
		t.Errorf("dropped %.3q", dropped)
	}
	if _, _, err := SanitizeDNS(DNS{}); err == nil {
		t.Errorf("a DNS without a nameserver passed")
	}
	if _, _, err := SanitizeDNS(DNS{Nameserver: netip.MustParseAddr(fakeDNS), Upstream: "a b:53\n"}); err == nil {
		t.Errorf("an upstream that is not HOST:PORT passed")
	}
}

// One hostile answer (over 512 bytes, no EDNS, an additional record whose
// length runs past the message) is handled at once, not in a loop that
// holds a core of the developer's machine.
func TestHostileDNSAnswerHandledAtOnce(t *testing.T) {
	done := make(chan []byte, 1)
	go func() { done <- truncateForUDP(hostileAnswer()) }()
	select {
	case a := <-done:
		if len(a) > maxUDPAnswer {
			t.Errorf("a %d-byte answer for UDP", len(a))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("truncateForUDP has not returned in 5 s")
	}
}

func hostileAnswer() []byte {
	msg := []byte{0, 9, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 2} // ARCOUNT 2
	msg = append(msg, 0, 0, 16, 0, 1, 0, 0, 0, 30, 0x02, 0x58)
	msg = append(msg, make([]byte, 600)...)
	return append(msg, 0, 0, 1, 0, 1, 0, 0, 0, 30, 0xff, 0xff, 1, 2, 3, 4)
}

// The cluster's DNS cannot point a name at this machine: records for its
// loopback, a --local destination or the sandbox's ranges are dropped,
// the others kept, and the drop logged.
func TestClusterAnswersPointingHereAreDropped(t *testing.T) {
	var logged []string
	d := &dnsForwarder{local: []Local{{Prefix: netip.MustParsePrefix("192.168.77.0/24")}},
		logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	name := dnsmessage.MustNewName("backend.shop.svc.cluster.local.")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 3, Response: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	rh := dnsmessage.ResourceHeader{Name: name, Class: dnsmessage.ClassINET, TTL: 30}
	_ = b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: name})
	for _, a := range [][4]byte{{127, 0, 0, 1}, {192, 168, 77, 7}, {198, 18, 0, 2}, {10, 96, 0, 5}, {0, 0, 0, 0}} {
		_ = b.AResource(rh, dnsmessage.AResource{A: a})
	}
	_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr("::1").As16()})
	_ = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr("::ffff:127.0.0.1").As16()})
	a, _ := b.Finish()
	out := d.withoutRebinding(a)
	var p dnsmessage.Parser
	if _, err := p.Start(out); err != nil {
		t.Fatal(err)
	}
	_ = p.SkipAllQuestions()
	rs, err := p.AllAnswers()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		switch body := r.Body.(type) {
		case *dnsmessage.AResource:
			got = append(got, netip.AddrFrom4(body.A).String())
		case *dnsmessage.CNAMEResource:
			got = append(got, "CNAME")
		default:
			got = append(got, r.Header.Type.String())
		}
	}
	if strings.Join(got, " ") != "CNAME 10.96.0.5" {
		t.Errorf("answers kept: %v; want the CNAME and 10.96.0.5", got)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "backend.shop.svc.cluster.local.") || !strings.Contains(logged[0], "192.168.77.7") {
		t.Errorf("logged %q", logged)
	}
	clean := answerWithA("backend.shop.svc.cluster.local.", [4]byte{10, 96, 0, 5})
	if out := d.withoutRebinding(clean); string(out) != string(clean) {
		t.Errorf("an answer with nothing to drop was rebuilt")
	}
}

func answerWithA(name string, a [4]byte) []byte {
	n := dnsmessage.MustNewName(name)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 3, Response: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	_ = b.StartAnswers()
	_ = b.AResource(dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: 30}, dnsmessage.AResource{A: a})
	out, err := b.Finish()
	if err != nil {
		panic(err)
	}
	return out
}

// Any bytes as the cluster's answer: the forwarder's handling returns, and
// a DNS answer it passes on over UDP is within 512 bytes unless it has
// EDNS.
func FuzzDNSAnswer(f *testing.F) {
	f.Add(hostileAnswer())
	f.Add(answerWithA("backend.shop.svc.cluster.local.", [4]byte{127, 0, 0, 1}))
	f.Add(append([]byte{0, 9, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 1, 2, 3, 4}, make([]byte, 600)...))
	d := &dnsForwarder{local: []Local{{Prefix: netip.MustParsePrefix("192.168.0.0/16")}}, logf: func(string, ...any) {}}
	f.Fuzz(func(t *testing.T, a []byte) {
		out := truncateForUDP(d.withoutRebinding(a))
		var p dnsmessage.Parser
		if _, err := p.Start(out); err == nil && len(out) > maxUDPAnswer && !hasEDNS(out) {
			t.Errorf("a %d-byte answer without EDNS for UDP (from %d bytes)", len(out), len(a))
		}
	})
}
