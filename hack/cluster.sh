#!/usr/bin/env bash
# hack/cluster.sh: a local single-node Kubernetes cluster for kubectl-intercept's
# end-to-end tests, made of host processes (no Docker, no systemd, no images
# pulled from anywhere).
#
#   hack/cluster.sh up                 start the cluster (or reuse a healthy one)
#   hack/cluster.sh down               stop it and undo every change to the host
#   hack/cluster.sh status             say whether it is up (exit 0) or not (exit 1)
#   hack/cluster.sh kubeconfig         print the admin kubeconfig's path
#   hack/cluster.sh kubectl            print the path of the kubectl of the cluster's version
#   hack/cluster.sh import TARBALL...  import docker-archive image tarballs
#   hack/cluster.sh build              only build the binaries and the pause image
#
# Environment:
#   CACHE_DIR        binaries and images kept between runs (/var/tmp/kubectl-intercept)
#   CLUSTER_DIR      everything the running cluster writes ($CACHE_DIR/cluster)
#   CLUSTER_TIMEOUT  seconds to wait for each start-up step (120)
#   KUBE_VERSION     the Kubernetes release that up and build use (v1.33.13,
#                    the default, or v1.37.2); see "Versions" below
#
# Parts: etcd, containerd, runc and the CNI plugins from Debian; every
# Kubernetes component from one static binary `kube` built from hack/kube.
#
# Versions: the default release's module is hack/kube itself and its binary
# is $CACHE_DIR/bin/kube (as CI caches it). Each other release has a module
# of its own, hack/kube/v1.MINOR (hack/kube/genmod.sh writes its go.mod),
# and is cached in $CACHE_DIR/bin/VERSION/, so switching versions rebuilds
# nothing that was built before. The running cluster's version is recorded
# in its state: down, status and import use that version's binaries, and up
# refuses to reuse a cluster of another version than the one asked for.
# All state lives in $CLUSTER_DIR; what the cluster has to change outside it
# (a bridge, iptables rules, sysctls, cgroups, a few well-known paths) is
# recorded by `up` and undone by `down`.
set -euo pipefail

# ---------------------------------------------------------------------------
# Settings

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=$(realpath -m "${CACHE_DIR:-/var/tmp/kubectl-intercept}")
CLUSTER_DIR=$(realpath -m "${CLUSTER_DIR:-$CACHE_DIR/cluster}")
TIMEOUT=${CLUSTER_TIMEOUT:-120}

BIN=$CACHE_DIR/bin
IMAGES=$CACHE_DIR/images

STATE=$CLUSTER_DIR/state       # pids and the snapshot of the host taken before up
PIDS=$STATE/pids               # "name pid" per started process
PKI=$CLUSTER_DIR/pki
CONF=$CLUSTER_DIR/config       # component configs and kubeconfigs
LOGS=$CLUSTER_DIR/logs
CONTAINERD_DIR=$CLUSTER_DIR/containerd
SOCK=$CONTAINERD_DIR/containerd.sock
KUBELET_DIR=$CLUSTER_DIR/kubelet
CNI_DIR=$CLUSTER_DIR/cni
ADMIN_KUBECONFIG=$CLUSTER_DIR/kubeconfig

DEFAULT_KUBE_VERSION=v1.33.13
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
NODE_NAME=kubectl-intercept
BRIDGE=kibr0
NODE_IP=10.244.0.1             # the bridge's address is the node IP: nothing uses eth0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/12
KUBERNETES_SERVICE_IP=10.96.0.1
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790         # not etcd's defaults, so a host etcd does not clash
ETCD_PEER_PORT=23800
# Every port the cluster listens on, checked before up so a clash is an error
# instead of a component that keeps restarting.
PORTS=("$APISERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" 10248 10249 10250 10256 10257 10259)
PAUSE_IMAGE=localhost/kubectl-intercept/pause:1.0

# Debian packages the cluster runs on.
PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables nftables conntrack
	socat curl openssl iproute2 procps util-linux)

# Sysctls that containerd's CNI plugins, the kubelet or kube-proxy may change;
# up saves them, down restores the ones that differ.
SYSCTLS=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding vm.overcommit_memory vm.panic_on_oom
	kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
	net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
	net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
	net.netfilter.nf_conntrack_tcp_be_liberal)

# Host paths the cluster may create although everything is configured to live
# in $CLUSTER_DIR (shim sockets, kubelet and CNI defaults that cannot be moved,
# the iptables lock). down removes those that did not exist before up.
HOST_PATHS=(/run/containerd /run/netns /run/xtables.lock /var/lib/kubelet /var/log/pods
	/var/log/containers /var/lib/cni /opt/containerd /var/lib/containerd /etc/cni /opt/cni
	/etc/kubernetes /run/kubernetes /usr/libexec/kubernetes)

# kubectl keeps a discovery cache in ~/.kube unless told otherwise.
export KUBECACHEDIR=$CLUSTER_DIR/kubectl-cache

# ---------------------------------------------------------------------------
# Helpers

log() { printf '[cluster] %s\n' "$*" >&2; }
die() {
	printf '[cluster] ERROR: %s\n' "$*" >&2
	exit 1
}

need_root() {
	[[ $(id -u) == 0 ]] || die "hack/cluster.sh $1 must run as root (it creates a bridge, iptables rules, cgroups and mounts)"
}

# The cluster directory is deleted by down: make sure it cannot be a parent of
# the cache or a system directory.
check_dirs() {
	case $CLUSTER_DIR in
	/ | /var | /var/tmp | /tmp | /root | /home | /run | /usr | /etc | /opt) die "CLUSTER_DIR=$CLUSTER_DIR is not a safe place for the cluster's state" ;;
	esac
	case $BIN/ in
	"$CLUSTER_DIR"/*) die "CLUSTER_DIR=$CLUSTER_DIR must not contain CACHE_DIR's bin ($BIN): down deletes CLUSTER_DIR" ;;
	esac
	# Unix socket paths are limited to 107 bytes.
	((${#SOCK} + 7 < 108)) || die "CLUSTER_DIR=$CLUSTER_DIR is too long for containerd's socket path"
}

elapsed() { echo "$((SECONDS - ${1:-0}))s"; }

# kc runs kubectl as the cluster admin.
kc() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" --request-timeout=10s "$@"; }

# cmdline PID prints the command line of PID with spaces between arguments
# (empty for a zombie or a process that is gone).
cmdline() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true; }

# pid_is_ours PID: the process exists and still is one of ours, i.e. its
# command line names the cluster directory (a recycled PID would not).
pid_is_ours() {
	local cmd
	cmd=$(cmdline "$1")
	[[ -n $cmd && $cmd == *"$CLUSTER_DIR"* ]]
}

# pid_of NAME prints the recorded PID of component NAME.
pid_of() {
	local name pid
	[[ -f $PIDS ]] || return 0
	while read -r name pid; do
		if [[ $name == "$1" ]]; then echo "$pid"; fi
	done <"$PIDS"
}

# first_dead_component prints the name of a recorded component that is no
# longer running, if any.
first_dead_component() {
	local name pid
	[[ -f $PIDS ]] || return 0
	while read -r name pid; do
		if ! pid_is_ours "$pid"; then
			echo "$name"
			return 0
		fi
	done <"$PIDS"
}

# fail_with_log NAME MESSAGE: print the end of NAME's log and give up.
fail_with_log() {
	local logfile=$LOGS/$1.log
	if [[ -f $logfile ]]; then
		printf '[cluster] --- last lines of %s ---\n' "$logfile" >&2
		tail -n 25 "$logfile" >&2 || true
		printf '[cluster] ---\n' >&2
	fi
	die "$2 (read $logfile; 'hack/cluster.sh down' cleans up)"
}

# wait_for DESCRIPTION LOGNAME COMMAND...: retry COMMAND until it succeeds,
# failing fast when a started component died and after $TIMEOUT seconds.
wait_for() {
	local what=$1 logname=$2 start=$SECONDS dead
	shift 2
	until "$@" >/dev/null 2>&1; do
		dead=$(first_dead_component)
		if [[ -n $dead ]]; then fail_with_log "$dead" "$dead exited while waiting for $what"; fi
		if ((SECONDS - start >= TIMEOUT)); then fail_with_log "$logname" "timed out after ${TIMEOUT}s waiting for $what"; fi
		sleep 0.25
	done
}

# close_inherited_fds closes every descriptor above 2 of the calling
# (sub)shell: this script's lock (9), and any a caller's lock left open for
# its children, like `flock FILE hack/cluster.sh up` does. A daemon that
# inherited one would hold that lock for as long as the cluster runs.
close_inherited_fds() {
	local fd
	for fd in /proc/"$BASHPID"/fd/*; do
		fd=${fd##*/}
		if ((fd > 2)); then eval "exec $fd>&-"; fi
	done
}

# start NAME COMMAND...: run COMMAND as a daemon in its own session (so it
# outlives this script and a Ctrl-C in the caller's terminal), log to
# $LOGS/NAME.log, record its PID. setsid does not fork here (the background
# job is not a process group leader), so $! is the component's own PID.
# The daemons inherit no descriptor but 0-2 (close_inherited_fds).
#
# Until the forked shell has exec'd, its command line is this script's,
# which pid_is_ours (and so wait_for) would take for a component that
# died: wait here, at most 10s, for the exec or for the process to end.
start() {
	local name=$1 pid i
	shift
	(
		close_inherited_fds
		exec setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1
	) &
	pid=$!
	echo "$name $pid" >>"$PIDS"
	for ((i = 0; i < 400; i++)); do
		if pid_is_ours "$pid" || [[ -z $(cmdline "$pid") ]]; then return 0; fi
		sleep 0.025
	done
	fail_with_log "$name" "$name did not start within 10s (PID $pid)"
}

# ---------------------------------------------------------------------------
# Versions

# pinned_version MODFILE prints the k8s.io/kubernetes release a go.mod pins.
pinned_version() {
	awk '$1 == "k8s.io/kubernetes" { print $2 } $1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$1"
}

# known_versions lists the releases hack/kube has a module for.
known_versions() {
	local mod list=()
	for mod in "$REPO/hack/kube/go.mod" "$REPO"/hack/kube/v1.*/go.mod; do
		if [[ -f $mod ]]; then list+=("$(pinned_version "$mod")"); fi
	done
	echo "${list[*]}"
}

# bin_dir VERSION prints the folder of VERSION's binaries: the default's
# are where they always were, each other release's in a folder of its own.
bin_dir() {
	if [[ $1 == "$DEFAULT_KUBE_VERSION" ]]; then echo "$BIN"; else echo "$BIN/$1"; fi
}

# select_version VERSION sets what the rest of the script uses: the module
# that builds VERSION (KUBE_SRC), the folder of its binaries (KUBE_BIN), the
# binary (KUBE) and its kubectl (KUBECTL).
select_version() {
	KUBE_VERSION=$1
	[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]] ||
		die "KUBE_VERSION=$KUBE_VERSION is not a Kubernetes release like $DEFAULT_KUBE_VERSION (known here: $(known_versions))"
	KUBE_MINOR=${BASH_REMATCH[1]}
	if [[ $KUBE_VERSION == "$DEFAULT_KUBE_VERSION" ]]; then
		KUBE_SRC=$REPO/hack/kube
	else
		KUBE_SRC=$REPO/hack/kube/v1.$KUBE_MINOR
	fi
	KUBE_BIN=$(bin_dir "$KUBE_VERSION")
	KUBE=$KUBE_BIN/kube
	KUBECTL=$KUBE_BIN/kubectl
}

# check_kube_source: the module for KUBE_VERSION exists and pins exactly it.
check_kube_source() {
	local pinned
	[[ -f $KUBE_SRC/go.mod ]] ||
		die "KUBE_VERSION=$KUBE_VERSION: hack/kube has no module for Kubernetes 1.$KUBE_MINOR (known here: $(known_versions)); for a new minor, copy the newest hack/kube/v1.*/main.go into ${KUBE_SRC#"$REPO"/}/, link ../crireset.go beside it and run hack/kube/genmod.sh $KUBE_VERSION"
	pinned=$(pinned_version "$KUBE_SRC/go.mod")
	[[ $pinned == "$KUBE_VERSION" ]] ||
		die "KUBE_VERSION=$KUBE_VERSION, but ${KUBE_SRC#"$REPO"/}/go.mod pins Kubernetes $pinned: use KUBE_VERSION=$pinned, or move the module with hack/kube/genmod.sh $KUBE_VERSION"
}

# running_version prints the version of the cluster whose state is in
# CLUSTER_DIR (a cluster started before versions were recorded runs the
# default), or, with no cluster, the one asked for.
running_version() {
	if [[ -f $STATE/kube-version ]]; then
		cat "$STATE/kube-version"
	elif [[ -d $STATE ]]; then
		echo "$DEFAULT_KUBE_VERSION"
	else
		echo "${KUBE_VERSION:-$DEFAULT_KUBE_VERSION}"
	fi
}

# ---------------------------------------------------------------------------
# Prerequisites and build

apt_get() {
	local try
	for try in 1 2 3 4 5 6; do
		# Another apt-get may hold the dpkg lock (DPkg::Lock::Timeout waits
		# for it); retry on top of that for the lists lock and flaky mirrors.
		if DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=120 "$@" >>"$CACHE_DIR/apt.log" 2>&1; then
			return 0
		fi
		log "apt-get $1 failed (try $try of 6), retrying in 10s; see $CACHE_DIR/apt.log"
		sleep 10
	done
	die "apt-get $* failed; see $CACHE_DIR/apt.log"
}

ensure_packages() {
	local pkg status missing=()
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		if [[ $status != installed ]]; then missing+=("$pkg"); fi
	done
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		apt_get update
		apt_get install -y --no-install-recommends "${missing[@]}"
	fi
	local cmd
	for cmd in etcd containerd containerd-shim-runc-v2 runc ctr iptables ip6tables iptables-save iptables-restore \
		nft conntrack curl openssl ip ss findmnt setsid pgrep; do
		command -v "$cmd" >/dev/null || die "$cmd is missing although its package is installed"
	done
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap && -x /usr/lib/cni/loopback ]] ||
		die "CNI plugins missing from /usr/lib/cni (package containernetworking-plugins)"
}

# go_cmd prints the Go toolchain to use (PATH or /usr/local/go).
go_cmd() {
	if command -v go >/dev/null; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		echo /usr/local/go/bin/go
	else
		die "the Go toolchain is not installed (needed to build $1)"
	fi
}

# kube_stamp prints a hash of the version's module (its sources, go.mod and
# go.sum), stored next to the binary so a change there rebuilds it.
kube_stamp() { cat "$KUBE_SRC"/*.go "$KUBE_SRC"/go.mod "$KUBE_SRC"/go.sum | sha256sum | cut -d' ' -f1; }

# build_kube makes sure $KUBE exists (cold build: ~13 min on 2 cores for
# 1.33, ~20 for 1.37).
build_kube() {
	local tmp=$KUBE_BIN/kube.tmp stamp go
	check_kube_source
	mkdir -p "$KUBE_BIN"
	stamp=$(kube_stamp)
	if [[ -x $KUBE && -f $KUBE_BIN/kube.stamp && $(<"$KUBE_BIN/kube.stamp") != "$stamp" ]]; then
		log "${KUBE_SRC#"$REPO"/} changed since $KUBE was built: rebuilding"
		rm -f "$KUBE" "$KUBE_BIN/kube.stamp"
	fi
	if [[ ! -x $KUBE ]]; then
		# A build started by someone else (by hand, or a parallel job) writes
		# kube.tmp: wait for it rather than share two cores with a second one.
		if pgrep -f 'go build -tags providerless' >/dev/null; then
			log "waiting for the running build of kube (go build -tags providerless) to finish"
			while pgrep -f 'go build -tags providerless' >/dev/null; do sleep 5; done
		fi
		# Take its result if it is a complete, working binary. (Output into a
		# variable: `| grep -q` would SIGPIPE it and fail under pipefail.)
		local version=""
		if [[ -f $tmp ]]; then version=$("$tmp" kubectl version --client 2>/dev/null || true); fi
		if [[ $version == *"$KUBE_VERSION"* ]]; then
			mv "$tmp" "$KUBE"
		else
			rm -f "$tmp"
			go=$(go_cmd kube)
			log "building $KUBE (Kubernetes $KUBE_VERSION from ${KUBE_SRC#"$REPO"/}; a cold build takes 13-20 min)"
			local t0=$SECONDS x="-X k8s.io/component-base/version" y="-X k8s.io/client-go/pkg/version" m=$KUBE_MINOR
			(cd "$KUBE_SRC" && CGO_ENABLED=0 "$go" build -tags providerless -trimpath \
				-ldflags "-s -w $x.gitVersion=$KUBE_VERSION $x.gitMajor=1 $x.gitMinor=$m $x.gitTreeState=clean $y.gitVersion=$KUBE_VERSION $y.gitMajor=1 $y.gitMinor=$m" \
				-o "$tmp" .) || die "building kube (Kubernetes $KUBE_VERSION) failed"
			mv "$tmp" "$KUBE"
			log "built kube in $(elapsed "$t0")"
		fi
	fi
	[[ -f $KUBE_BIN/kube.stamp ]] || echo "$stamp" >"$KUBE_BIN/kube.stamp"
	local c
	for c in "${COMPONENTS[@]}"; do ln -sfn kube "$KUBE_BIN/$c"; done
}

# pause_tarball prints the cached pause image tarball's path; the name holds a
# hash of the pause program so a change to it builds a new image.
pause_tarball() {
	local sum
	sum=$(sha256sum "$REPO/hack/cluster/pause/main.go" | cut -c1-12)
	echo "$IMAGES/pause-$sum.tar"
}

# build_pause_image builds the sandbox image from hack/cluster/pause with
# hack/mkimage (nothing can be pulled here).
build_pause_image() {
	local tar go tmp
	tar=$(pause_tarball)
	[[ -s $tar ]] && return 0
	go=$(go_cmd "the pause image")
	[[ -d $REPO/hack/mkimage ]] || die "hack/mkimage is missing: cannot build the pause image"
	log "building the pause image $PAUSE_IMAGE"
	mkdir -p "$IMAGES"
	tmp=$(mktemp -d)
	(cd "$REPO" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./hack/cluster/pause &&
		"$go" -C hack/mkimage run . -o "$tmp/pause.tar" -t "$PAUSE_IMAGE" -entrypoint /pause "/pause=$tmp/pause" >&2) ||
		{
			rm -rf "$tmp"
			die "building the pause image failed"
		}
	rm -f "$IMAGES"/pause-*.tar
	mv "$tmp/pause.tar" "$tar"
	rm -rf "$tmp"
}

# build_dns builds the cluster's DNS server (hack/clusterdns) next to the
# kube binaries; Go's build cache makes it quick when nothing changed.
build_dns() {
	local go
	go=$(go_cmd "the cluster DNS")
	(cd "$REPO" && CGO_ENABLED=0 "$go" build -trimpath -o "$BIN/clusterdns.tmp" ./hack/clusterdns) ||
		die "building hack/clusterdns failed"
	mv "$BIN/clusterdns.tmp" "$BIN/clusterdns"
}

cmd_build() {
	need_root build
	ensure_packages
	build_kube
	build_pause_image
	build_dns
}

# ---------------------------------------------------------------------------
# Health

# cluster_healthy: every recorded process runs and the apiserver is ready.
cluster_healthy() {
	[[ -f $PIDS && -f $ADMIN_KUBECONFIG && -x $KUBECTL ]] || return 1
	[[ -z $(first_dead_component) ]] || return 1
	kc get --raw /readyz >/dev/null 2>&1
}

cmd_status() {
	if cluster_healthy; then
		echo "up: node $NODE_NAME, Kubernetes $KUBE_VERSION, KUBECONFIG=$ADMIN_KUBECONFIG"
		return 0
	fi
	if [[ -d $STATE ]]; then
		local dead
		dead=$(first_dead_component)
		echo "down (not healthy${dead:+: $dead is not running}; run 'hack/cluster.sh down' to clean up)"
	else
		echo "down"
	fi
	return 1
}

# ---------------------------------------------------------------------------
# Up

# preflight catches what would otherwise make a component crash-loop or hang.
preflight() {
	local listening port re
	listening=$(ss -Hltn)
	for port in "${PORTS[@]}"; do
		re="[:.]${port}[[:space:]]"
		if [[ $listening =~ $re ]]; then
			die "port $port is already in use (ss -ltnp shows by whom); another cluster running?"
		fi
	done
	# A bridge of ours (the name is ours) left by a crashed run is replaced.
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
	local addrs
	addrs=$(ip -4 -o addr show)
	if [[ $addrs == *" ${NODE_IP%.*}."* ]]; then
		die "an interface already has an address in ${POD_CIDR}: the cluster's bridge would clash with it"
	fi
	# kubepods cgroups with processes belong to another kubelet; empty ones are
	# left over from a crashed run and are removed.
	local d procs
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $d ]] || continue
		procs=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
		[[ -z $procs ]] || die "$d holds processes: another kubelet is running on this host"
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ||
		die "net.bridge.bridge-nf-call-iptables does not exist: the kernel lacks br_netfilter (Services would not work)"
}

# snapshot_host records what down has to restore. It is taken once, before
# any change to the host.
snapshot_host() {
	local key value path
	for key in "${SYSCTLS[@]}"; do
		if value=$(sysctl -n "$key" 2>/dev/null); then printf '%s=%s\n' "$key" "$value"; fi
	done >"$STATE/sysctls"
	for path in "${HOST_PATHS[@]}"; do
		if [[ -e $path || -L $path ]]; then echo "$path"; fi
	done >"$STATE/host-paths"
	if [[ -d /run/netns ]]; then ls -1 /run/netns; fi >"$STATE/netns"
	nft list tables >"$STATE/nft-tables" 2>/dev/null || true
}

# set_sysctl KEY VALUE: change a sysctl (saved by snapshot_host already).
set_sysctl() {
	[[ $(sysctl -n "$1") == "$2" ]] || sysctl -qw "$1=$2"
}

setup_network() {
	# Created before anything starts: its address is the node IP that the
	# kubelet, the apiserver's advertise address and the certificates use.
	ip link add "$BRIDGE" type bridge
	ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# Pod traffic is routed through the host (the CNI bridge plugin would set
	# it too); pod -> ClusterIP -> pod on one bridge needs bridge netfilter.
	set_sysctl net.ipv4.ip_forward 1
	set_sysctl net.bridge.bridge-nf-call-iptables 1
}

# --- certificates (openssl, one EC P-256 CA) ---

new_key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
	chmod 600 "$1"
}

make_ca() {
	new_key "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 3650 -subj "/CN=kubectl-intercept-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/ca.crt" 2>/dev/null
}

# issue NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]: PKI/NAME.{key,crt}
issue() {
	local name=$1 subject=$2 eku=$3 san=${4:-}
	new_key "$PKI/$name.key"
	openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature"
		echo "extendedKeyUsage=$eku"
		if [[ -n $san ]]; then echo "subjectAltName=$san"; fi
	} >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -sha256 -days 3650 \
		-set_serial "0x$(openssl rand -hex 16)" -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# write_kubeconfig FILE CERTNAME: a self-contained kubeconfig for PKI/CERTNAME.
write_kubeconfig() {
	local file=$1 cert=$2
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubectl-intercept
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: kubectl-intercept
  context:
    cluster: kubectl-intercept
    user: $cert
    namespace: default
current-context: kubectl-intercept
EOF
	chmod 600 "$file"
}

make_pki() {
	make_ca
	# Clients. The kubelet is system:node:<node> in system:nodes, so the Node
	# authorizer and NodeRestriction apply to it as in a real cluster.
	issue admin "/O=system:masters/CN=kubernetes-admin" clientAuth
	issue controller-manager "/CN=system:kube-controller-manager" clientAuth
	issue scheduler "/CN=system:kube-scheduler" clientAuth
	issue kube-proxy "/CN=system:kube-proxy" clientAuth
	issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
	issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	# Servers. Pods reach the apiserver as kubernetes.default (10.96.0.1),
	# host clients as 127.0.0.1; the apiserver reaches the kubelet at NODE_IP.
	issue apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,IP:$NODE_IP"
	issue kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
	# ServiceAccount token signing key.
	new_key "$PKI/sa.key"
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

	write_kubeconfig "$ADMIN_KUBECONFIG" admin
	local c
	for c in controller-manager scheduler kube-proxy kubelet; do write_kubeconfig "$CONF/$c.kubeconfig" "$c"; done
}

# --- configuration files ---

write_configs() {
	# containerd: own root/state/socket; the CRI plugin's sandbox image is our
	# pause image. restrict_oom_score_adj: the VM withholds CAP_SYS_RESOURCE,
	# so runc cannot lower oom_score_adj (-998 for sandboxes) and every pod
	# would fail with "can't get final child's PID from pipe: EOF".
	cat >"$CONF/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CONTAINERD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$CONTAINERD_DIR/runc"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_DIR/net.d"
    max_conf_num = 1
EOF

	# CNI: pods on our bridge, addresses from host-local (state in CNI_DIR),
	# no masquerade (there is no outside to reach); hairpin so a pod can reach
	# itself through a Service.
	mkdir -p "$CNI_DIR/net.d"
	cat >"$CNI_DIR/net.d/10-kubectl-intercept.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kubectl-intercept",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_DIR/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

	# kubelet: the cluster's DNS (hack/clusterdns) on the node's address, so
	# pods resolve Services by name. Image GC is off (100%) so test images imported by hand are never
	# deleted, and eviction thresholds are tiny so a full CI disk does not
	# evict test pods. failCgroupV1 false: the host may still mount cgroup v1,
	# which the 1.37 kubelet refuses unless told (1.33's default is false).
	cat >"$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
failSwapOn: false
failCgroupV1: false
resolvConf: /etc/resolv.conf
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
podLogsDir: $CLUSTER_DIR/pod-logs
volumePluginDir: $KUBELET_DIR/volume-plugins
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
EOF

	# kube-proxy: iptables mode, reprogramming at once after each change
	# (minSyncPeriod 0s). It leaves the conntrack sysctls alone (zeros) and
	# does not set route_localnet (no NodePorts on localhost); NodePorts are
	# served on the bridge address only.
	# The API server's audit log records every request of a person's client
	# (not the node's, the controllers' or the service accounts'), so the
	# load one intercept puts on the API server can be counted where it
	# lands (bench/apiload.sh).
	cat >"$CONF/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: [system:nodes, system:serviceaccounts]
- level: None
  users: [system:apiserver, system:kube-controller-manager, system:kube-scheduler, system:kube-proxy]
- level: Metadata
EOF
	cat >"$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $CONF/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
  localhostNodePorts: false
  masqueradeAll: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  tcpBeLiberal: false
  udpTimeout: 0s
  udpStreamTimeout: 0s
EOF
}

# --- components ---

start_etcd() {
	mkdir -p "$CLUSTER_DIR/etcd"
	chmod 700 "$CLUSTER_DIR/etcd"
	start etcd etcd --name "$NODE_NAME" --data-dir "$CLUSTER_DIR/etcd" --logger zap --log-outputs stderr \
		--listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new
}

start_containerd() {
	mkdir -p "$CONTAINERD_DIR"
	start containerd containerd --config "$CONF/containerd.toml" --log-level info
}

start_apiserver() {
	start kube-apiserver "$KUBE_BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
		--bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" --advertise-address "$NODE_IP" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--client-ca-file "$PKI/ca.crt" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--allow-privileged=true --profiling=false \
		--audit-policy-file "$CONF/audit-policy.yaml" --audit-log-path "$LOGS/audit.log" \
		--audit-log-maxsize 100 --audit-log-maxbackup 1
}

start_controller_manager() {
	# Cluster signing with the CA, so tests can get client certificates
	# issued through CertificateSigningRequests.
	start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
		--kubeconfig "$CONF/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
		--controllers '*' --use-service-account-credentials=true \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --allocate-node-cidrs=false --profiling=false \
		--flex-volume-plugin-dir "$KUBELET_DIR/volume-plugins"
}

start_scheduler() {
	start kube-scheduler "$KUBE_BIN/kube-scheduler" \
		--kubeconfig "$CONF/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
}

start_kubelet() {
	mkdir -p "$KUBELET_DIR"
	start kubelet "$KUBE_BIN/kubelet" --config "$CONF/kubelet.yaml" --kubeconfig "$CONF/kubelet.kubeconfig" \
		--hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
		--root-dir "$KUBELET_DIR" --cert-dir "$KUBELET_DIR/pki" --v 1
}

start_kube_proxy() {
	start kube-proxy "$KUBE_BIN/kube-proxy" --config "$CONF/kube-proxy.yaml"
}

start_dns() {
	start clusterdns "$BIN/clusterdns" --kubeconfig "$ADMIN_KUBECONFIG" --listen "$NODE_IP:53"
}

# --- readiness probes (quiet; wait_for retries them) ---

etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"; }
containerd_ready() { ctr --address "$SOCK" version; }
apiserver_ready() {
	curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://127.0.0.1:$APISERVER_PORT/readyz"
}
node_ready() {
	[[ $(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
default_sa_exists() { kc -n default get serviceaccount default; }
kube_proxy_synced() { curl -fsS --max-time 2 http://127.0.0.1:10256/healthz; }
dns_answers() { "$BIN/clusterdns" --probe "$NODE_IP:53"; }

# import_images TARBALL...: into containerd's k8s.io namespace, where the CRI
# plugin (and so the kubelet) finds them.
import_images() {
	local tar
	for tar; do
		[[ -f $tar ]] || die "no such image tarball: $tar"
		ctr --address "$SOCK" -n k8s.io images import "$tar" >>"$LOGS/import.log" 2>&1 ||
			fail_with_log import "importing $tar failed"
	done
}

cmd_up() {
	need_root up
	check_dirs
	local t0=$SECONDS running
	running=$(running_version)
	if [[ $running != "$KUBE_VERSION" ]] && (select_version "$running" && cluster_healthy); then
		die "the cluster in $CLUSTER_DIR runs Kubernetes $running, not KUBE_VERSION=$KUBE_VERSION: stop it first with 'hack/cluster.sh down' (for everyone who uses it)"
	fi
	if cluster_healthy; then
		log "cluster already up (Kubernetes $KUBE_VERSION, KUBECONFIG=$ADMIN_KUBECONFIG)"
		return 0
	fi
	if [[ -d $CLUSTER_DIR ]]; then
		log "found state of a cluster that is not healthy in $CLUSTER_DIR: tearing it down first"
		(select_version "$running" && do_down)
	fi
	mkdir -p "$CACHE_DIR"
	ensure_packages
	build_kube
	build_pause_image
	build_dns
	preflight

	local t1=$SECONDS
	mkdir -p "$STATE" "$PKI" "$CONF" "$LOGS"
	chmod 700 "$CLUSTER_DIR" "$PKI"
	snapshot_host
	echo "$KUBE_VERSION" >"$STATE/kube-version"
	: >"$PIDS"
	setup_network
	make_pki
	write_configs

	# etcd and containerd start in parallel; the apiserver needs etcd, the
	# rest of the control plane and the node need the apiserver.
	start_etcd
	start_containerd
	wait_for "etcd to be healthy" etcd etcd_healthy
	start_apiserver
	wait_for "containerd's socket" containerd containerd_ready
	import_images "$(pause_tarball)"
	wait_for "the apiserver to be ready (/readyz)" kube-apiserver apiserver_ready
	start_controller_manager
	start_scheduler
	start_dns
	start_kubelet
	start_kube_proxy
	wait_for "node $NODE_NAME to be Ready" kubelet node_ready
	wait_for "the default ServiceAccount in namespace default" kube-controller-manager default_sa_exists
	wait_for "kube-proxy's first sync" kube-proxy kube_proxy_synced
	wait_for "the cluster DNS to answer" clusterdns dns_answers
	log "cluster up in $(elapsed "$t1") ($(elapsed "$t0") in all), Kubernetes $KUBE_VERSION; KUBECONFIG=$ADMIN_KUBECONFIG"
}

# ---------------------------------------------------------------------------
# Down

# wait_gone SECONDS PID...: true once none of the PIDs is one of ours.
wait_gone() {
	local deadline=$((SECONDS + $1)) pid alive
	shift
	while :; do
		alive=0
		for pid; do if pid_is_ours "$pid"; then alive=1; fi; done
		((alive)) || return 0
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# stop_components NAME...: SIGTERM the recorded processes, SIGKILL those that
# are still there after 15 s. Only PIDs whose command line names the cluster
# directory are signalled.
stop_components() {
	local name pid pids=()
	for name; do
		pid=$(pid_of "$name")
		if [[ -n $pid ]] && pid_is_ours "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	((${#pids[@]})) || return 0
	if ! wait_gone 15 "${pids[@]}"; then
		for pid in "${pids[@]}"; do
			if pid_is_ours "$pid"; then
				log "killing $(cmdline "$pid" | cut -c1-60)... ($pid) after 15s"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		done
		wait_gone 5 "${pids[@]}" || log "WARNING: some processes did not exit: ${pids[*]}"
	fi
}

# kill_leftovers: pod processes (in the kubepods cgroups, which are ours: up
# refuses to start when another kubelet's exist) and containerd shims serving
# our socket, in case removing the pods through CRI did not work.
kill_leftovers() {
	local d procs pid p cmd
	for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $d ]] || continue
		procs=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
		for pid in $procs; do kill -KILL "$pid" 2>/dev/null || true; done
	done
	for p in /proc/[0-9]*; do
		cmd=$(cmdline "${p#/proc/}")
		if [[ $cmd == *containerd-shim* && $cmd == *"$SOCK"* ]]; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
	done
}

# unmount_under DIR: lazily unmount everything at or below DIR, deepest first.
unmount_under() {
	local dir=$1 mounts target found
	for _ in 1 2 3; do
		mounts=$(findmnt -rn -o TARGET | sort -r)
		found=0
		while IFS= read -r target; do
			if [[ $target == "$dir" || $target == "$dir"/* ]]; then
				umount -l "$target" 2>/dev/null || true
				found=1
			fi
		done <<<"$mounts"
		((found)) || return 0
	done
}

remove_netns() {
	local ns
	[[ -d /run/netns ]] || return 0
	for ns in /run/netns/cni-*; do
		[[ -e $ns ]] || continue
		if ! grep -qxF "${ns##*/}" "$STATE/netns" 2>/dev/null; then ip netns delete "${ns##*/}" 2>/dev/null || rm -f "$ns"; fi
	done
}

remove_bridge() {
	local ports port
	ip link show "$BRIDGE" >/dev/null 2>&1 || return 0
	# Pod veths normally vanish with their netns; any left on the bridge go too.
	ports=$(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}')
	for port in $ports; do ip link del "${port%@*}" 2>/dev/null || true; done
	ip link del "$BRIDGE"
}

# strip_iptables iptables|ip6tables: remove every KUBE-*/CNI-* chain and each
# rule elsewhere that jumps to one, with one iptables-restore per family.
# The output of iptables-save is read into a variable first: piping it into
# `grep -q` under pipefail fails at random (grep exits early, SIGPIPE).
strip_iptables() {
	local ipt=$1 saved line rule table="" chain rules="" jump_re=' -[jg] (KUBE|CNI)-' script=""
	local -a deletes=() chains=()
	saved=$("$ipt-save" 2>/dev/null) || return 0
	[[ $saved == *KUBE-* || $saved == *CNI-* ]] || return 0
	while IFS= read -r line; do
		case $line in
		'*'*)
			table=${line#\*}
			deletes=()
			chains=()
			;;
		:KUBE-* | :CNI-*)
			chain=${line%% *}
			chains+=("${chain#:}")
			;;
		'-A '*)
			chain=${line#-A }
			chain=${chain%% *}
			if [[ $chain != KUBE-* && $chain != CNI-* && $line =~ $jump_re ]]; then deletes+=("-D ${line#-A }"); fi
			;;
		COMMIT)
			if ((${#deletes[@]} + ${#chains[@]})); then
				rules="*$table"$'\n'
				for rule in "${deletes[@]}"; do rules+="$rule"$'\n'; done
				for chain in "${chains[@]}"; do rules+="-F $chain"$'\n'; done
				for chain in "${chains[@]}"; do rules+="-X $chain"$'\n'; done
				script+="${rules}COMMIT"$'\n'
			fi
			;;
		esac
	done <<<"$saved"
	[[ -n $script ]] || return 0
	"$ipt-restore" --noflush <<<"$script" || log "WARNING: $ipt-restore could not remove all KUBE-/CNI- rules"
}

# remove_new_nft_tables: the iptables-nft tables (filter, nat, mangle) that
# the kubelet and kube-proxy created: those not there before up and now empty
# (base chains without rules).
remove_new_nft_tables() {
	local tables table listing line empty
	tables=$(nft list tables 2>/dev/null) || return 0
	while IFS= read -r table; do
		[[ -n $table ]] || continue
		if grep -qxF "$table" "$STATE/nft-tables" 2>/dev/null; then continue; fi
		# shellcheck disable=SC2086 # "table FAMILY NAME" splits into words on purpose
		listing=$(nft list $table 2>/dev/null) || continue
		empty=1
		while IFS= read -r line; do
			line=${line#"${line%%[![:space:]]*}"}
			case $line in
			'' | '#'* | '}' | 'table '*'{' | 'chain '*'{' | 'type '*) ;;
			*) empty=0 ;;
			esac
		done <<<"$listing"
		# shellcheck disable=SC2086 # "table FAMILY NAME" splits into words on purpose
		if ((empty)); then nft delete $table || true; fi
	done <<<"$tables"
}

flush_conntrack() {
	local args
	for args in "-s $POD_CIDR" "-d $POD_CIDR" "-d $SERVICE_CIDR"; do
		# shellcheck disable=SC2086 # option and value on purpose
		conntrack -D -f ipv4 $args >/dev/null 2>&1 || true # exit 1 = nothing to delete
	done
}

remove_cgroups() {
	local d try left
	for try in 1 2 3 4 5; do
		left=0
		for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
			[[ -d $d ]] || continue
			find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
			if [[ -d $d ]]; then left=1; fi
		done
		((left)) || return 0
		sleep 0.5 # a process may still be exiting
	done
	log "WARNING: kubepods cgroups left: $(echo /sys/fs/cgroup/*/kubepods)"
}

restore_sysctls() {
	local key value
	[[ -f $STATE/sysctls ]] || return 0
	while IFS='=' read -r key value; do
		if [[ $(sysctl -n "$key" 2>/dev/null) != "$value" ]]; then
			sysctl -qw "$key=$value" || log "WARNING: could not restore $key=$value"
		fi
	done <"$STATE/sysctls"
}

remove_host_paths() {
	local path
	[[ -f $STATE/host-paths ]] || return 0
	for path in "${HOST_PATHS[@]}"; do
		if grep -qxF "$path" "$STATE/host-paths"; then continue; fi
		if [[ -e $path || -L $path ]]; then
			unmount_under "$path"
			rm -rf "$path"
		fi
	done
}

# report_leftovers names what down could not remove (it should be nothing).
report_leftovers() {
	local p cmd mounts left=()
	for p in /proc/[0-9]*; do
		cmd=$(cmdline "${p#/proc/}")
		if [[ $cmd == *"$CLUSTER_DIR"* ]]; then left+=("process ${p#/proc/}: ${cmd:0:80}"); fi
	done
	mounts=$(findmnt -rn -o TARGET)
	if [[ $mounts == *"$CLUSTER_DIR"* ]]; then left+=("mounts under $CLUSTER_DIR"); fi
	if ip link show "$BRIDGE" >/dev/null 2>&1; then left+=("link $BRIDGE"); fi
	if ((${#left[@]})); then
		log "WARNING: left behind:"
		printf '  %s\n' "${left[@]}" >&2
	fi
}

do_down() {
	local t0=$SECONDS
	if [[ ! -d $STATE ]]; then
		if [[ -d $CLUSTER_DIR ]]; then
			unmount_under "$CLUSTER_DIR"
			rm -rf "$CLUSTER_DIR"
		fi
		log "no cluster state in $CLUSTER_DIR: nothing to tear down"
		return 0
	fi
	# The kubelet first, so it does not restart the pods removed next.
	stop_components kubelet
	local cri_pid
	cri_pid=$(pid_of containerd)
	if [[ -n $cri_pid ]] && pid_is_ours "$cri_pid" && [[ -S $SOCK && -x $KUBE ]]; then
		# Through CRI, so containerd runs CNI DEL and removes each netns.
		timeout 90 "$KUBE" cri-reset --endpoint "unix://$SOCK" >>"$LOGS/down.log" 2>&1 ||
			log "WARNING: removing pods through CRI failed (see $LOGS/down.log); killing them instead"
	fi
	# kube-proxy stops before its rules are stripped, so it cannot put them back.
	stop_components kube-proxy clusterdns kube-scheduler kube-controller-manager kube-apiserver containerd etcd
	kill_leftovers

	unmount_under "$CLUSTER_DIR"
	remove_netns
	remove_bridge
	strip_iptables iptables
	strip_iptables ip6tables
	remove_new_nft_tables
	flush_conntrack
	remove_cgroups
	restore_sysctls
	remove_host_paths
	report_leftovers

	# Keep the last cluster's logs for a post-mortem; the rest goes.
	if [[ -d $LOGS ]]; then
		rm -rf "$CACHE_DIR/last-logs"
		mkdir -p "$CACHE_DIR"
		mv "$LOGS" "$CACHE_DIR/last-logs"
	fi
	unmount_under "$CLUSTER_DIR"
	rm -rf "$CLUSTER_DIR"
	log "cluster down in $(elapsed "$t0") (logs kept in $CACHE_DIR/last-logs)"
}

cmd_down() {
	need_root down
	check_dirs
	do_down
}

cmd_import() {
	need_root import
	(($#)) || die "usage: hack/cluster.sh import TARBALL..."
	if ! containerd_ready >/dev/null 2>&1; then
		die "the cluster's containerd is not running ($SOCK); run 'hack/cluster.sh up' first"
	fi
	import_images "$@"
	log "imported $*"
}

# ---------------------------------------------------------------------------

main() {
	local cmd=${1:-}
	(($#)) && shift
	case $cmd in
	up | down | build | import)
		need_root "$cmd"
		# One up/down/import at a time (the lock is released when this
		# script exits; the daemons do not inherit it).
		mkdir -p "$CACHE_DIR"
		exec 9>"$CACHE_DIR/.cluster.lock"
		flock -w 1800 9 || die "another hack/cluster.sh holds $CACHE_DIR/.cluster.lock"
		;;
	esac
	# up and build use the version asked for; the rest that of the cluster
	# there is (whose binaries down needs, whatever KUBE_VERSION says).
	case $cmd in
	up | build) select_version "${KUBE_VERSION:-$DEFAULT_KUBE_VERSION}" ;;
	*) select_version "$(running_version)" ;;
	esac
	case $cmd in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	kubeconfig) echo "$ADMIN_KUBECONFIG" ;;
	kubectl) echo "$KUBECTL" ;;
	import) cmd_import "$@" ;;
	build) cmd_build ;;
	*)
		sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
		exit 2
		;;
	esac
}

main "$@"
