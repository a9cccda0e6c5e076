// Command clusterdns is the local cluster's DNS: it answers the names
// Kubernetes gives Services (NAME.NAMESPACE.svc.cluster.local, A and AAAA
// for the ClusterIPs) and pods (A-B-C-D.NAMESPACE.pod.cluster.local), from
// a watch of the Services, and NXDOMAIN for every other name (the cluster
// has no outside to forward to). hack/cluster.sh runs it on the node's
// bridge address and gives that address to the kubelet as clusterDNS.
//
//	clusterdns --kubeconfig FILE --listen 10.244.0.1:53
//	clusterdns --probe 10.244.0.1:53   # exit 0 once it answers
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const ttl = 5

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the cluster's kubeconfig")
	listen := flag.String("listen", "10.244.0.1:53", "address to answer on (UDP and TCP)")
	domain := flag.String("domain", "cluster.local", "the cluster's domain")
	probe := flag.String("probe", "", "ask ADDR for kubernetes.default.svc.DOMAIN and exit 0 once it answers")
	flag.Parse()
	if *probe != "" {
		if err := probeServer(*probe, *domain); err != nil {
			fmt.Fprintln(os.Stderr, "clusterdns:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*kubeconfig, *listen, *domain); err != nil {
		log.Fatalf("clusterdns: %v", err)
	}
}

func run(kubeconfig, listen, domain string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	factory := informers.NewSharedInformerFactory(cs, 0)
	services := factory.Core().V1().Services().Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), services.HasSynced) {
		return errors.New("the services never synced")
	}
	z := &zone{domain: strings.ToLower(strings.TrimSuffix(domain, ".")) + ".", services: services.GetStore()}

	udp, err := net.ListenPacket("udp", listen)
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); udp.Close(); tcp.Close() }()
	go serveTCP(tcp, z)
	log.Printf("clusterdns: answering %s on %s", z.domain, listen)
	buf := make([]byte, 512)
	for {
		n, from, err := udp.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if resp := z.answer(buf[:n]); resp != nil {
			_, _ = udp.WriteTo(resp, from)
		}
	}
}

func serveTCP(ln net.Listener, z *zone) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			for {
				var n [2]byte
				if _, err := io.ReadFull(conn, n[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(n[:]))
				if _, err := io.ReadFull(conn, msg); err != nil {
					return
				}
				resp := z.answer(msg)
				if resp == nil {
					return
				}
				out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
				if _, err := conn.Write(append(out, resp...)); err != nil {
					return
				}
			}
		}()
	}
}

// zone answers from the watched Services.
type zone struct {
	domain   string // "cluster.local."
	services cache.Store
}

// lookup returns the addresses of a name in the zone; ok is false when the
// name does not exist.
func (z *zone) lookup(name string) (addrs []netip.Addr, ok bool) {
	name = strings.ToLower(name)
	rest, inZone := strings.CutSuffix(name, "."+z.domain)
	if !inZone {
		return nil, false
	}
	labels := strings.Split(rest, ".")
	switch {
	case len(labels) == 3 && labels[2] == "svc":
		obj, found, _ := z.services.GetByKey(labels[1] + "/" + labels[0])
		if !found {
			return nil, false
		}
		svc := obj.(*corev1.Service)
		for _, ip := range svc.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs = append(addrs, a)
			}
		}
		return addrs, true
	case len(labels) == 3 && labels[2] == "pod":
		a, err := netip.ParseAddr(strings.ReplaceAll(labels[0], "-", "."))
		if err != nil {
			if a, err = netip.ParseAddr(strings.ReplaceAll(labels[0], "-", ":")); err != nil {
				return nil, false
			}
		}
		return []netip.Addr{a}, true
	case len(labels) <= 2 && (len(labels) < 2 || labels[1] == "svc" || labels[1] == "pod"):
		return nil, true // svc.cluster.local, NAMESPACE.svc.cluster.local: names without addresses
	}
	return nil, false
}

// answer builds the response to one query; nil when it cannot be read.
func (z *zone) answer(msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	addrs, ok := z.lookup(q.Name.String())
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for _, a := range addrs {
		hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: ttl}
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			_ = b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
			_ = b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	if !answered(q.Type, addrs) && strings.HasSuffix(strings.ToLower(q.Name.String()), "."+z.domain) {
		z.authority(&b)
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// answered tells whether addrs hold a record of type typ.
func answered(typ dnsmessage.Type, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if (typ == dnsmessage.TypeA && a.Is4()) || (typ == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6()) {
			return true
		}
	}
	return false
}

// authority puts the zone's SOA in an answer with no record for a name of
// the zone (one that does not exist, or without a record of the type
// asked), as CoreDNS does: a resolver may then keep the negative answer (RFC 2308) for the
// SOA's minimum, the records' TTL.
func (z *zone) authority(b *dnsmessage.Builder) {
	origin, err := dnsmessage.NewName(z.domain)
	if err != nil {
		return
	}
	ns, err1 := dnsmessage.NewName("ns.dns." + z.domain)
	mbox, err2 := dnsmessage.NewName("hostmaster." + z.domain)
	if err1 != nil || err2 != nil {
		return
	}
	_ = b.StartAuthorities()
	_ = b.SOAResource(dnsmessage.ResourceHeader{Name: origin, Class: dnsmessage.ClassINET, TTL: ttl},
		dnsmessage.SOAResource{NS: ns, MBox: mbox, Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, MinTTL: ttl})
}

// probeServer asks addr for Service kubernetes until it answers (5 s).
func probeServer(addr, domain string) error {
	name := dnsmessage.MustNewName("kubernetes.default.svc." + strings.TrimSuffix(domain, ".") + ".")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	query, _ := b.Finish()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(query); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		return err
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		return fmt.Errorf("kubernetes.default.svc: %s", h.RCode)
	}
	return nil
}
