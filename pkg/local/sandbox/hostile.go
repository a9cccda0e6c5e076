package sandbox

// What a pod's spec can make the sandbox do on this machine is bounded
// here: its volumes do not replace this machine's files (nor run as
// programs), its hostname and dnsConfig do not write lines of their own
// into the sandbox's files, and its DNS does not point the command's
// connections at this machine.

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CoverFlag is how the developer names a mountPath that may cover a path
// of this machine (PlanMounts, Config.Cover).
const CoverFlag = "--sandbox-cover"

// maxMounts bounds the volume mounts the sandbox makes: each is a mount,
// and a directory the host lacks is covered once for all of them.
const maxMounts = 256

// The path limits of Linux: a whole path, one of its names.
const (
	maxPath     = 4095
	maxPathName = 255
)

// SkippedMount is a volume mount the sandbox leaves out.
type SkippedMount struct {
	Mount
	// Reason says why, and what mounts it anyway when something does.
	Reason string
}

func (s SkippedMount) String() string {
	return fmt.Sprintf("the volume at %s is not in the sandbox: %s", s.Target, s.Reason)
}

// kernelDirs are the kernel's own filesystems: a volume does not cover
// them (nor the devices the sandbox needs).
var kernelDirs = []string{"/dev", "/proc", "/sys"}

// privateTmp is the sandbox's own empty /tmp (setUpFiles).
const privateTmp = "/tmp"

// ownFiles are the files the sandbox writes itself (the pod's resolver,
// hostname and the --local names).
var ownFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf"}

// PlanMounts is what the sandbox mounts of the container's volume mounts,
// and what it leaves out and why; Start applies the same plan, so the CLI
// calls it first to print what is skipped. A pod's volume is a file of the
// cluster's: it must not become a program or a setting of this machine.
// So every volume is mounted read-only, without exec, setuid or devices;
// a mountPath that exists on this machine (a file, a directory, a
// symlink) is left out, as is a new file directly inside an existing
// directory of this machine (where /etc/profile.d/*.sh, Python's .pth
// files or a PATH directory would pick it up), unless cover names that
// mountPath (--sandbox-cover PATH); a new directory, and anything under
// it, is mounted; so is anything under /tmp, the sandbox's own and empty
// (setUpFiles). Paths under /dev, /proc and /sys, / itself and the
// sandbox's own /etc/resolv.conf, /etc/hosts and /etc/nsswitch.conf are
// never covered.
func PlanMounts(mounts []Mount, cover []string) (kept []Mount, skipped []SkippedMount) {
	return planMounts(mounts, cover, "/")
}

// planMounts is PlanMounts with this machine's files looked up under root.
func planMounts(mounts []Mount, cover []string, root string) (kept []Mount, skipped []SkippedMount) {
	covered := map[string]bool{}
	for _, c := range cover {
		covered[filepath.Clean(c)] = true
	}
	host := func(p string) string { return filepath.Join(root, p) }
	seen := map[string]bool{}
	for _, m := range mounts {
		target := filepath.Clean(m.Target)
		skip := func(reason string) {
			skipped = append(skipped, SkippedMount{Mount: Mount{Source: m.Source, Target: target}, Reason: reason})
		}
		if why := badTarget(target); why != "" {
			skip(why)
			continue
		}
		if seen[target] {
			skip("another volume mount has the same mountPath")
			continue
		}
		seen[target] = true
		if len(kept) >= maxMounts {
			skip(fmt.Sprintf("the sandbox mounts at most %d volumes", maxMounts))
			continue
		}
		src, err := os.Stat(m.Source)
		if err != nil {
			skip("its files are not on this machine")
			continue
		}
		if target == privateTmp || strings.HasPrefix(target, privateTmp+"/") {
			// The sandbox's /tmp is its own and empty: nothing of this
			// machine's is there to cover.
			kept = append(kept, Mount{Source: m.Source, Target: target})
			continue
		}
		fi, err := os.Lstat(host(target))
		switch {
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			skip("it is a symlink on this machine: the sandbox mounts nothing through a symlink")
			continue
		case err == nil && !covered[target]:
			skip(fmt.Sprintf("%s exists on this machine: inside the sandbox the pod's volume would replace it for every program the command runs; to mount the volume over it anyway, %s %s", what(fi), CoverFlag, target))
			continue
		case err == nil:
			kept = append(kept, Mount{Source: m.Source, Target: target})
			continue
		}
		existing := filepath.Dir(target)
		for {
			if _, err := os.Lstat(host(existing)); err == nil {
				break
			}
			existing = filepath.Dir(existing)
		}
		if d, err := os.Stat(host(existing)); err != nil || !d.IsDir() {
			skip(fmt.Sprintf("%s on this machine is not a directory", existing))
			continue
		}
		if existing == filepath.Dir(target) && !src.IsDir() && !covered[target] {
			skip(fmt.Sprintf("it is a new file directly in %s, a directory of this machine, where programs that read every file there (shell profiles, Python's .pth files, a directory on PATH) would take it up; to mount it anyway, %s %s", existing, CoverFlag, target))
			continue
		}
		kept = append(kept, Mount{Source: m.Source, Target: target})
	}
	return kept, skipped
}

// badTarget says why target is never mounted over, or "".
func badTarget(target string) string {
	if !filepath.IsAbs(target) {
		return "its mountPath is not an absolute path"
	}
	if len(target) > maxPath {
		return fmt.Sprintf("its mountPath is longer than the %d bytes a path may have", maxPath)
	}
	for _, name := range strings.Split(target, "/") {
		if len(name) > maxPathName {
			return fmt.Sprintf("a name in its mountPath is longer than the %d bytes a name may have", maxPathName)
		}
	}
	if target == "/" {
		return "it would replace the whole filesystem of this machine"
	}
	for _, d := range kernelDirs {
		if target == d || strings.HasPrefix(target, d+"/") {
			return d + " is the kernel's: the sandbox mounts no volume there"
		}
	}
	for _, f := range ownFiles {
		if target == f {
			return "the sandbox writes its own " + f + " (the pod's resolver, its hostname, the --local names)"
		}
	}
	return ""
}

func what(fi fs.FileInfo) string {
	if fi.IsDir() {
		return "that directory"
	}
	return "that file"
}

// maxHostname is a DNS label's length, the hostname's bound in a pod.
const maxHostname = 63

// CheckHostname says whether h can be the sandbox's hostname: a DNS label
// (at most 63 of a-z, 0-9 and '-', a letter or digit first and last), as
// the kubelet gives pods, since it goes into /etc/hosts and sethostname.
func CheckHostname(h string) error {
	ok := h != "" && len(h) <= maxHostname && h[0] != '-' && h[len(h)-1] != '-'
	for _, c := range []byte(h) {
		lower, digit := c >= 'a' && c <= 'z', c >= '0' && c <= '9'
		ok = ok && (lower || digit || c == '-')
	}
	if !ok {
		return fmt.Errorf("the pod's hostname %q is not a DNS label (at most %d characters of a-z, 0-9 and '-', starting and ending with a letter or digit), so the sandbox does not start with it; nothing of the sandbox was created", printable(h, 80), maxHostname)
	}
	return nil
}

// printable is s cut to n bytes with its control characters shown.
func printable(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.Trim(strconv.Quote(s), `"`)
}

// The kubelet's bounds on a pod's search path.
const (
	maxSearchPaths     = 32
	maxSearchListChars = 2048
	maxOptionsKept     = 16
)

// SanitizeDNS is d with only what the sandbox may write into resolv.conf:
// search domains that are DNS names (32 of them, 2048 characters in all,
// as the kubelet allows), resolver options glibc knows, upstreams that
// are HOST:PORT. dropped names what was left out, for the developer.
// Start passes every DNS configuration through it; the CLI may call it to
// show what the sandbox will use.
func SanitizeDNS(d DNS) (clean DNS, dropped []string, err error) {
	if !d.Nameserver.IsValid() || d.Nameserver.Zone() != "" {
		return DNS{}, nil, errors.New("the sandbox's DNS has no nameserver address to name in its resolv.conf")
	}
	clean.Nameserver = d.Nameserver.Unmap()
	if d.Upstream != "" {
		if !validUpstream(d.Upstream) {
			return DNS{}, nil, fmt.Errorf("the sandbox's DNS upstream %q is not HOST:PORT", printable(d.Upstream, 80))
		}
		clean.Upstream = d.Upstream
	}
	for _, f := range d.Fallback {
		if validUpstream(f) && len(clean.Fallback) < maxNameservers {
			clean.Fallback = append(clean.Fallback, f)
		} else {
			dropped = append(dropped, "nameserver "+printable(f, 80))
		}
	}
	total := 0
	for _, s := range d.Search {
		s = strings.TrimSuffix(s, ".")
		switch {
		case !validDomain(s):
			dropped = append(dropped, "search domain "+printable(s, 80))
		case len(clean.Search) >= maxSearchPaths || total+len(s) > maxSearchListChars:
			dropped = append(dropped, "search domain "+s+" (past "+strconv.Itoa(maxSearchPaths)+" domains or "+strconv.Itoa(maxSearchListChars)+" characters)")
		default:
			total += len(s) + 1
			clean.Search = append(clean.Search, s)
		}
	}
	for _, o := range d.Options {
		if validOption(o) && len(clean.Options) < maxOptionsKept {
			clean.Options = append(clean.Options, o)
		} else {
			dropped = append(dropped, "option "+printable(o, 80))
		}
	}
	return clean, dropped, nil
}

// validUpstream says whether hp is HOST:PORT with an address or a DNS
// name for HOST.
func validUpstream(hp string) bool {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Zone() == ""
	}
	return validDomain(host)
}

// checkConfig is cfg as Start runs it, checked before anything of the
// sandbox is created: the hostname a DNS label, the DNS configuration
// sanitized, the volume mounts as PlanMounts plans them.
func checkConfig(cfg Config) (Config, error) {
	if cfg.Hostname != "" {
		if err := CheckHostname(cfg.Hostname); err != nil {
			return cfg, err
		}
	}
	dns, dropped, err := SanitizeDNS(cfg.DNS)
	if err != nil {
		return cfg, err
	}
	if len(dropped) > 0 && cfg.Log != nil {
		cfg.Log("sandbox: left out of the pod's DNS configuration: %s", strings.Join(dropped, ", "))
	}
	cfg.DNS = dns
	cfg.Mounts, _ = PlanMounts(cfg.Mounts, cfg.Cover)
	return cfg, nil
}

// sortResolved adds what this machine's resolver gave the --local name l:
// a loopback address (this machine's name for itself, 127.0.1.1 on
// Debian and Ubuntu) is this machine's loopback, shown at that address on
// the sandbox's own (so it needs a port) and given to the name inside; the
// IPv6 loopback is left to the IPv4 one; any other address is dialed from
// this machine.
func sortResolved(l Local, addrs []netip.Addr, loopback, other []Local) ([]Local, []Local, error) {
	for _, a := range addrs {
		a = a.Unmap()
		one := Local{Prefix: netip.PrefixFrom(a, a.BitLen()), Host: l.Host, Port: l.Port}
		if a.IsLoopback() {
			if !a.Is4() {
				continue
			}
			if l.Port == 0 {
				return nil, nil, fmt.Errorf("--local %s: %s is %s on this machine, its loopback, which needs a port (--local %s:5432): the sandbox has a loopback of its own, where the port is shown", l, l.Host, a, l.Host)
			}
			dup := false
			for _, lb := range loopback {
				dup = dup || lb.Prefix == one.Prefix && lb.Port == one.Port
			}
			if !dup {
				loopback = append(loopback, one)
			}
		}
		other = append(other, one)
	}
	return loopback, other, nil
}

// loopbackAddr is where a loopback --local is listened on inside and
// dialed on this machine.
func loopbackAddr(l Local) string {
	if l.Prefix.IsValid() && l.Prefix.Addr().Is4() && l.Prefix.Addr().IsLoopback() {
		return l.Prefix.Addr().String()
	}
	return "127.0.0.1"
}

// hostsLines are the lines /etc/hosts inside gives each --local name: the
// addresses this machine's resolver gave when the sandbox started, read
// before DNS (hosts: files dns), so no search path sends the name to the
// cluster.
func hostsLines(locals []Local) []string {
	var lines []string
	seen := map[string]bool{}
	for _, l := range locals {
		if l.Host == "" || !validDomain(strings.TrimSuffix(l.Host, ".")) || !l.Prefix.IsValid() {
			continue
		}
		line := l.Prefix.Addr().String() + "\t" + strings.TrimSuffix(l.Host, ".")
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	return lines
}
