package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-intercept/kubectl-intercept/pkg/wire/tunnel"
)

// askTimeout bounds the question to the copy pod's sidecar.
const askTimeout = 10 * time.Second

// ResolveDNS is the resolver the sandbox gives its command: the copy pod's
// own, read from its /etc/resolv.conf through the tunnel by ask (the
// sidecar shares the pod's file), so the nameserver, the search path and
// the options are the pod's whatever its dnsPolicy, a node-local cache or
// a DNS without a Service included. When ask cannot tell (a sidecar older
// than the question answers tunnel.ErrUnsupported; the tunnel fails; the
// file names no nameserver the sidecar may dial) the answer is today's
// guess from the API (ClusterDNS, PodDNS) and note says why. note is also
// set when the pod's file had lines the sandbox left out. err is set only
// when neither way gives an answer.
func ResolveDNS(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, ask func(context.Context) (string, error)) (dns DNS, note string, err error) {
	why := "no tunnel to ask the copy pod for its resolv.conf"
	if ask != nil {
		text, err := askBounded(ctx, ask)
		switch {
		case err == nil:
			dns, left, ok := FromResolvConf(text)
			if ok {
				return dns, left, nil
			}
			why = "the copy pod's resolv.conf names no nameserver the sandbox can use"
			if left != "" {
				why += " (" + left + ")"
			}
		case errors.Is(err, tunnel.ErrUnsupported):
			why = "the copy pod's sidecar is older than this kubectl-intercept and cannot give its resolv.conf"
		default:
			why = fmt.Sprintf("asking the copy pod for its resolv.conf: %v", err)
		}
	}
	addr, err := ClusterDNS(ctx, client)
	if err != nil {
		return DNS{}, "", fmt.Errorf("%s, and %w", why, err)
	}
	dns, podNote := PodDNS(pod, addr)
	note = why + ": the sandbox asks " + dnsGuess(dns) + ", as the pod's spec implies"
	if podNote != "" {
		note += "; " + podNote
	}
	return dns, note, nil
}

// askBounded calls ask for at most askTimeout, whether or not ask heeds
// its context (a control call on the tunnel waits for its answer).
func askBounded(ctx context.Context, ask func(context.Context) (string, error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		text, err := ask(ctx)
		done <- result{text, err}
	}()
	select {
	case r := <-done:
		return r.text, r.err
	case <-ctx.Done():
		return "", fmt.Errorf("the sidecar did not answer in %s: %w", askTimeout, ctx.Err())
	}
}

func dnsGuess(d DNS) string {
	if d.Nameserver == placeholderNameserver {
		return "kube-dns." + dnsNamespace + " by name from the pod"
	}
	return "the cluster's DNS Service at " + d.Nameserver.String()
}

// What of a resolv.conf the sandbox takes, as glibc's resolver does (three
// nameservers, six search domains) with room to spare, so a crafted file
// cannot make the sandbox hold or write more than a kubelet's.
const (
	maxNameservers  = 3
	maxSearch       = 6
	maxSearchChars  = 256 // the search line's length, glibc's old bound
	maxOptions      = 8
	maxConfLine     = 1024
	maxOptionNumber = 30
)

// sandboxRanges hold the sandbox's own addresses (launch_linux.go): a
// nameserver there would be the sandbox itself.
var sandboxRanges = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("2001:2::/48")}

// resolverFlags are the options without a value the sandbox passes on;
// resolverNumbers those with a number (ndots:N, timeout:N, attempts:N).
var (
	resolverFlags   = map[string]bool{"rotate": true, "edns0": true, "single-request": true, "single-request-reopen": true, "no-tld-query": true, "trust-ad": true, "use-vc": true, "no-reload": true, "no-aaaa": true, "inet6": true}
	resolverNumbers = map[string]bool{"ndots": true, "timeout": true, "attempts": true}
)

// FromResolvConf reads a pod's resolv.conf (text from the cluster, trusted
// for nothing): the first nameserver the sidecar may dial is the one the
// sandbox names and asks, the others its fallbacks; the last search (or
// domain) line is the search path; options glibc knows are kept. Every
// field is checked: an address must parse as one (no zone) and be one
// the sidecar dials (not loopback, link-local or the sandbox's own
// ranges), a domain a DNS name, an option one of glibc's with a small
// number, with their counts and lengths bounded. What is left out is
// counted in left, for the developer. ok is false when no nameserver is
// left.
func FromResolvConf(text string) (dns DNS, left string, ok bool) {
	var skipped []string
	skip := func(what string) {
		if len(skipped) < 4 {
			skipped = append(skipped, what)
		} else if len(skipped) == 4 {
			skipped = append(skipped, "more")
		}
	}
	var servers []netip.Addr
	for line := range strings.Lines(text) {
		if len(line) > maxConfLine {
			skip("a line over " + strconv.Itoa(maxConfLine) + " bytes")
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				continue
			}
			a, err := netip.ParseAddr(fields[1])
			switch {
			case err != nil || a.Zone() != "":
				skip("nameserver " + tunnel.Printable(fields[1]) + " (not an address)")
			case !usableNameserver(a.Unmap()):
				skip("nameserver " + a.String() + " (the pod's own, link-local or the sandbox's range: the sidecar does not dial it)")
			case len(servers) >= maxNameservers:
				skip("nameserver " + a.String() + " (more than " + strconv.Itoa(maxNameservers) + ")")
			default:
				servers = append(servers, a.Unmap())
			}
		case "search", "domain":
			dns.Search = nil
			if fields[0] == "domain" && len(fields) > 2 {
				fields = fields[:2]
			}
			total := 0
			for _, d := range fields[1:] {
				d = strings.TrimSuffix(d, ".")
				switch {
				case !validDomain(d):
					skip("search domain " + tunnel.Printable(d))
				case len(dns.Search) >= maxSearch || total+len(d) > maxSearchChars:
					skip("search domain " + d + " (past " + strconv.Itoa(maxSearch) + " domains or " + strconv.Itoa(maxSearchChars) + " characters)")
				default:
					total += len(d) + 1
					dns.Search = append(dns.Search, d)
				}
			}
		case "options":
			for _, o := range fields[1:] {
				name, _, _ := strings.Cut(o, ":")
				switch {
				case !validOption(o):
					skip("option " + tunnel.Printable(o))
				case len(dns.Options) >= maxOptions:
					skip("option " + o + " (more than " + strconv.Itoa(maxOptions) + ")")
				default:
					dns.Options = setOption(dns.Options, name, o)
				}
			}
		default:
			skip(tunnel.Printable(fields[0]) + " line")
		}
	}
	if len(skipped) > 0 {
		left = "left out of the pod's resolv.conf: " + strings.Join(skipped, ", ")
	}
	if len(servers) == 0 {
		return DNS{}, left, false
	}
	dns.Nameserver = servers[0]
	dns.Upstream = net.JoinHostPort(servers[0].String(), "53")
	for _, a := range servers[1:] {
		dns.Fallback = append(dns.Fallback, net.JoinHostPort(a.String(), "53"))
	}
	return dns, left, true
}

// usableNameserver says whether the sandbox can name a and have the pod
// dial it: the sidecar dials only tunnel.Dialable addresses (not the
// pod's loopback, not link-local, so not a node-local cache on
// 169.254.20.10), and an address in the sandbox's own ranges would never
// leave the sandbox.
func usableNameserver(a netip.Addr) bool {
	for _, p := range sandboxRanges {
		if p.Contains(a) {
			return false
		}
	}
	return tunnel.Dialable(a)
}

// validDomain says whether d is a DNS name a resolver can search: labels
// of letters, digits, '-' and '_', 1 to 63 characters, 253 in all.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !domainByte(c) {
				return false
			}
		}
	}
	return true
}

// domainByte tells whether c may be in a search domain's label: a letter,
// a digit, '-' or '_'.
func domainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// validOption says whether o is a resolver option glibc knows: a flag, or
// ndots, timeout or attempts with a number up to maxOptionNumber.
func validOption(o string) bool {
	name, value, hasValue := strings.Cut(o, ":")
	if !hasValue {
		return resolverFlags[name]
	}
	if !resolverNumbers[name] || value == "" || len(value) > 2 {
		return false
	}
	n, err := strconv.Atoi(value)
	return err == nil && n >= 0 && n <= maxOptionNumber && strconv.Itoa(n) == value
}
