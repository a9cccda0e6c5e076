#!/usr/bin/env bash
# hack/host-state.sh: print what the local cluster may change on the host, in
# a stable order, so a snapshot before `cluster-up` and one after
# `cluster-down` can be compared with diff: processes, links, network
# namespaces, iptables/nft rules, mounts, cgroups, sysctls.
set -u  # a snapshot: empty sections are fine, so no -e or pipefail
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}

section() { printf '== %s\n' "$1"; }
section processes
{ pgrep -a -f "$CACHE_DIR" || true; } | grep -v -e host-state.sh -e pgrep | awk '{print $2}' | sort
section links
ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
section netns
{ ip netns list || true; } | awk '{print $1}' | sort
section iptables
for cmd in iptables-save ip6tables-save; do
	rules=$($cmd 2>/dev/null || true)
	grep -E 'KUBE|CNI' <<<"$rules" | sed 's/\[[0-9:]*\]//' | sort || true
done
section nft-tables
{ nft list tables 2>/dev/null || true; } | sort
section mounts
awk -v d="$CACHE_DIR" 'index($2, d) == 1 || $2 ~ /kubelet|containerd|netns/ {print $2}' /proc/mounts | sort
section cgroups
find /sys/fs/cgroup -maxdepth 2 -name 'kubepods*' 2>/dev/null | sort
section sysctls
for s in net.ipv4.ip_forward vm.overcommit_memory kernel.panic kernel.panic_on_oops net.bridge.bridge-nf-call-iptables; do
	printf '%s=%s\n' "$s" "$(sysctl -n "$s" 2>/dev/null || echo -)"
done
