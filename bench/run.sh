#!/usr/bin/env bash
# bench/run.sh: the data-plane benchmark (make bench).
#
# Compares, on loopback only, a client talking straight to the app
# ("direct") with the same client going through a header-routing proxy:
# intercept-proxy (standalone mode), nginx and HAProxy, each configured the
# same way: a request with header `x-dev: alice` goes to a second upstream
# (the developer's "laptop"), every other request to the app; connections to
# both upstreams are kept alive and reused. "intercept-proxy path-prefix"
# and "path-regex" are intercept-proxy with the route narrowed by a path
# prefix (/) or a path regex (/[0-9a-z]*) that every request's path
# matches: what a path route costs beside the plain one.
#
#   HTTP/1.1  wrk, 1/16/64 connections x small/64 KiB body x header set/not set
#   h2c       h2load (prior knowledge), direct vs the proxies
#
# For every run: requests/s, p50 and p99 latency, and CPU time per request
# of the proxy's processes (utime+stime from /proc/PID/stat, before/after).
# The load generator runs on one core, the proxy on the other; the
# upstreams share the proxy's core ("shared") and then, for HTTP/1.1 again,
# the load generator's ("own": the proxy alone on its core) (taskset). Every proxy gets one core's worth of threads: nginx one
# worker, HAProxy one thread, intercept-proxy GOMAXPROCS=1 (the Go runtime
# takes it from the CPU affinity; unpinned, it runs on one P while one is
# enough: pkg/cores).
#
# Writes the report to bench/results.md and prints it. Bounded: every run is
# time-limited (BENCH_WARMUP + BENCH_DURATION seconds, each command under
# `timeout`), the full matrix takes about 25 minutes. Stops only the
# processes it started, by PID. Needs root (or sudo) only to install
# missing packages with apt-get.
#
# Knobs (environment):
#   BENCH_DURATION=5      seconds per measured run
#   BENCH_WARMUP=1        seconds of warm-up run before each measured run
#   BENCH_CONNS="1 16 64" wrk connection counts
#   BENCH_ROUNDS=3        HTTP/1.1 rounds of intercept-proxy (plain and
#                         narrowed) and nginx per
#                         case, alternating (the other targets run once):
#                         a drift of the machine's speed over minutes
#                         weighs on both alike, and the report says in how
#                         many rounds intercept-proxy cost at most nginx
#   BENCH_PLACEMENTS="shared own"  where the upstreams run for the HTTP/1.1
#                         runs: on the proxy's core (shared: the proxy runs
#                         saturated) or on the load generator's (own: the
#                         proxy has a core to itself, at partial load)
#   BENCH_WAIT_IDLE=1200  wait up to this many seconds in all for other
#                         `go test` / `go build` processes on the machine to
#                         finish: before measuring, and again before each run
#                         if they came back (0: don't wait). Runs measured
#                         with them present are marked in the report.
#   BENCH_LOAD_CPU=0      core for wrk / h2load
#   BENCH_PROXY_CPU=1     core for the proxy and the upstreams; a list
#                         (0,1) lets the proxies run on any of its cores,
#                         as a sidecar in a pod runs on its node's: with
#                         BENCH_PLACEMENTS=own, the upstreams and the load
#                         generator on BENCH_LOAD_CPU
#   BENCH_OUT=bench/results.md
#   BENCH_KEEP=1          keep the temp dir (configs, logs, raw output)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-"1 16 64"}
ROUNDS=${BENCH_ROUNDS:-3}
PLACEMENTS=${BENCH_PLACEMENTS:-"shared own"}
WAIT_IDLE=${BENCH_WAIT_IDLE:-1200}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
OUT=${BENCH_OUT:-$ROOT/bench/results.md}
GO=${GO:-go}
HEADER_NAME=x-dev
HEADER_VALUE=alice

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---------------------------------------------------------------- packages

SUDO=()
if [ "$(id -u)" != 0 ]; then
	SUDO=(sudo)
fi

apt_get() {
	local try
	for try in 1 2 3 4 5 6; do
		if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 "$@"; then
			return 0
		fi
		log "apt-get $1 failed (try $try; dpkg lock held?), retrying in 10 s"
		sleep 10
	done
	return 1
}

install_packages() {
	local missing=()
	command -v wrk >/dev/null || missing+=(wrk)
	[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
	[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
	command -v h2load >/dev/null || missing+=(nghttp2-client)
	command -v curl >/dev/null || missing+=(curl)
	command -v ss >/dev/null || missing+=(iproute2)
	command -v taskset >/dev/null || missing+=(util-linux)
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi
	log "installing ${missing[*]}"
	apt_get update -qq || die "apt-get update failed"
	apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------------- processes, ports

TMP=$(mktemp -d /tmp/intercept-bench.XXXXXX)
chmod 755 "$TMP" # nginx's workers run as nobody and need to reach their temp paths
declare -A PID=()
STARTED=()

cleanup() {
	local name pid kids k i
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		name=${STARTED[i]}
		pid=${PID[$name]}
		kill -0 "$pid" 2>/dev/null || continue
		kids=$(pgrep -P "$pid" || true)
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		for k in $kids; do
			kill -KILL "$k" 2>/dev/null || true
		done
		wait "$pid" 2>/dev/null || true
	done
	if [ "${BENCH_KEEP:-}" = 1 ]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_up NAME URL [curl args]: until URL answers, or NAME has died.
wait_up() {
	local name=$1 url=$2
	shift 2
	for _ in $(seq 100); do
		kill -0 "${PID[$name]}" 2>/dev/null || {
			cat "$TMP/$name.log" >&2
			die "$name exited"
		}
		if curl -sS -o /dev/null --max-time 1 "$@" "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	cat "$TMP/$name.log" >&2
	die "$name did not answer on $url"
}

# group_ticks PID...: the sum over the PIDs.
group_ticks() {
	local t=0 p
	for p in "$@"; do
		t=$((t + $(proc_ticks "$p")))
	done
	echo "$t"
}

# core_sample CORES: "busy total" ticks of the cores in a comma-separated
# list (often one) from /proc/stat; busy is
# user+nice+system+irq+softirq (what processes' utime+stime can account for
# with tick-based accounting), total adds idle, iowait and steal.
core_sample() {
	awk -v cs="$1" 'BEGIN { n = split(cs, a, ","); for (i = 1; i <= n; i++) want["cpu" a[i]] = 1 }
		$1 in want { busy += $2+$3+$4+$7+$8; all += $2+$3+$4+$5+$6+$7+$8+$9 }
		END { print busy, all }' /proc/stat
}

# background_cpu: busy % of the load core and the proxy core over 2 s, while
# nothing of ours is running.
background_cpu() {
	local a0 a1 b0 b1
	read -r -a a0 <<<"$(core_sample "$LOAD_CPU")"
	read -r -a a1 <<<"$(core_sample "$PROXY_CPU")"
	sleep 2
	read -r -a b0 <<<"$(core_sample "$LOAD_CPU")"
	read -r -a b1 <<<"$(core_sample "$PROXY_CPU")"
	awk -v x0=$((b0[0] - a0[0])) -v t0=$((b0[1] - a0[1])) -v x1=$((b1[0] - a1[0])) -v t1=$((b1[1] - a1[1])) \
		-v c0="$LOAD_CPU" -v c1="$PROXY_CPU" \
		'BEGIN { printf "core %s %.0f%%, core %s %.0f%%", c0, t0 ? 100*x0/t0 : 0, c1, t1 ? 100*x1/t1 : 0 }'
}

other_load() {
	pgrep -f "go test" >/dev/null || pgrep -f "go build" >/dev/null
}

# ----------------------------------------------------------------- setup

[ "$(nproc --all)" -ge 2 ] || die "needs at least 2 cores"
install_packages
CLK_TCK=$(getconf CLK_TCK)
curl -V | grep -qw HTTP2 || die "curl lacks HTTP/2 support (needed for the h2c checks)"

log "building intercept-proxy and the bench upstream"
mkdir -p "$TMP/bin"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$TMP/bin/intercept-proxy" ./cmd/intercept-proxy &&
	CGO_ENABLED=0 "$GO" build -o "$TMP/bin/upstream" ./bench/upstream)

# settle STEP: while other `go test` / `go build` run, wait in STEP-second
# steps, as long as the BENCH_WAIT_IDLE budget lasts.
waited=0
settle() {
	if other_load && [ "$waited" -lt "$WAIT_IDLE" ]; then
		log "other 'go test' / 'go build' processes are running; waiting (${waited}s of ${WAIT_IDLE}s used)"
		while other_load && [ "$waited" -lt "$WAIT_IDLE" ]; do
			sleep "$1"
			waited=$((waited + $1))
		done
	fi
}
settle 15
if other_load; then
	START_NOTE="other 'go test'/'go build' processes WERE running at the start (after waiting ${waited}s)"
	log "$START_NOTE"
elif [ "$waited" -gt 0 ]; then
	START_NOTE="waited ${waited}s for other 'go test'/'go build' processes to finish; none at the start"
else
	START_NOTE="no other 'go test'/'go build' processes at the start"
fi
BG_BEFORE=$(background_cpu)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

pick_port P_APP
pick_port P_LAPTOP
pick_port P_OURS
pick_port P_OURS_H2C
pick_port P_OURS_SLOW
pick_port P_OURS_PREFIX
pick_port P_OURS_REGEX
pick_port P_NGINX
pick_port P_NGINX_H2
pick_port P_HAPROXY
pick_port P_HAPROXY_H2

on_proxy_core=(taskset -c "$PROXY_CPU")
on_load_core=(taskset -c "$LOAD_CPU")
ROUTE="$HEADER_NAME:$HEADER_VALUE=127.0.0.1:$P_LAPTOP"

start up_app "${on_proxy_core[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_APP" --name app
start up_laptop "${on_proxy_core[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_LAPTOP" --name laptop
start ours "${on_proxy_core[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$P_OURS" \
	--upstream "127.0.0.1:$P_APP" --route "$ROUTE" --drain-delay 0
start ours_h2c "${on_proxy_core[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$P_OURS_H2C" \
	--upstream "127.0.0.1:$P_APP" --route "$ROUTE" --drain-delay 0 --h2c
# The same without the fast path: every request through net/http.
start ours_slow "${on_proxy_core[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$P_OURS_SLOW" \
	--upstream "127.0.0.1:$P_APP" --route "$ROUTE" --drain-delay 0 --no-fast-path
# The same route narrowed by a path prefix, and by a path regex, that the
# requests' paths (/ and /64k) match: what narrowing costs per request.
start ours_prefix "${on_proxy_core[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$P_OURS_PREFIX" \
	--upstream "127.0.0.1:$P_APP" --route "$ROUTE;path-prefix=/" --drain-delay 0
start ours_regex "${on_proxy_core[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$P_OURS_REGEX" \
	--upstream "127.0.0.1:$P_APP" --route "$ROUTE;path-regex=/[0-9a-z]*" --drain-delay 0

mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
# Header routing as intercept-proxy does it. Foreground, everything in $TMP/nginx.
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;

    upstream app {
        server 127.0.0.1:$P_APP;
        keepalive 256;
        keepalive_requests 1000000;
    }
    upstream laptop {
        server 127.0.0.1:$P_LAPTOP;
        keepalive 256;
        keepalive_requests 1000000;
    }
    map \$http_${HEADER_NAME//-/_} \$backend {
        default app;
        $HEADER_VALUE laptop;
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        listen 127.0.0.1:$P_NGINX_H2 http2;
        location / {
            proxy_pass http://\$backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            # A 64 KiB answer fits in memory: no temp files.
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
start nginx "${on_proxy_core[@]}" /usr/sbin/nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log"

cat >"$TMP/haproxy.cfg" <<EOF
# Header routing as intercept-proxy does it. Foreground (-db), no log.
global
    nbthread 1
    maxconn 8192
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    maxconn 8192
    # Share idle server connections between clients, like nginx's keepalive
    # pool and Go's http.Transport.
    http-reuse always
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    bind 127.0.0.1:$P_HAPROXY_H2 proto h2
    acl dev req.hdr($HEADER_NAME) -m str $HEADER_VALUE
    use_backend laptop if dev
    default_backend app
backend app
    server app 127.0.0.1:$P_APP
backend laptop
    server laptop 127.0.0.1:$P_LAPTOP
EOF
/usr/sbin/haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy config check failed"
start haproxy "${on_proxy_core[@]}" /usr/sbin/haproxy -db -f "$TMP/haproxy.cfg"

wait_up up_app "http://127.0.0.1:$P_APP/_count"
wait_up up_laptop "http://127.0.0.1:$P_LAPTOP/_count"
wait_up ours "http://127.0.0.1:$P_OURS/"
wait_up ours_h2c "http://127.0.0.1:$P_OURS_H2C/"
wait_up ours_prefix "http://127.0.0.1:$P_OURS_PREFIX/"
wait_up ours_regex "http://127.0.0.1:$P_OURS_REGEX/"
wait_up nginx "http://127.0.0.1:$P_NGINX/"
wait_up haproxy "http://127.0.0.1:$P_HAPROXY/"

# Targets: base URL (no header, or header) and the PIDs whose CPU counts.
declare -A URL_PLAIN=(
	[direct]="http://127.0.0.1:$P_APP"
	[intercept-proxy]="http://127.0.0.1:$P_OURS"
	[intercept-proxy --no-fast-path]="http://127.0.0.1:$P_OURS_SLOW"
	[intercept-proxy path-prefix]="http://127.0.0.1:$P_OURS_PREFIX"
	[intercept-proxy path-regex]="http://127.0.0.1:$P_OURS_REGEX"
	[nginx]="http://127.0.0.1:$P_NGINX"
	[haproxy]="http://127.0.0.1:$P_HAPROXY"
)
declare -A URL_HEADER=(
	[direct]="http://127.0.0.1:$P_LAPTOP" # the client goes where the proxies would send it
	[intercept-proxy]="http://127.0.0.1:$P_OURS"
	[intercept-proxy --no-fast-path]="http://127.0.0.1:$P_OURS_SLOW"
	[intercept-proxy path-prefix]="http://127.0.0.1:$P_OURS_PREFIX"
	[intercept-proxy path-regex]="http://127.0.0.1:$P_OURS_REGEX"
	[nginx]="http://127.0.0.1:$P_NGINX"
	[haproxy]="http://127.0.0.1:$P_HAPROXY"
)
declare -A URL_H2=(
	[direct]="http://127.0.0.1:$P_APP"
	[intercept-proxy]="http://127.0.0.1:$P_OURS"
	[intercept-proxy --h2c]="http://127.0.0.1:$P_OURS_H2C"
	[nginx]="http://127.0.0.1:$P_NGINX_H2"
	[haproxy]="http://127.0.0.1:$P_HAPROXY_H2"
)
declare -A TPIDS=(
	[direct]=""
	[intercept-proxy]="${PID[ours]}"
	[intercept-proxy --h2c]="${PID[ours_h2c]}"
	[intercept-proxy --no-fast-path]="${PID[ours_slow]}"
	[intercept-proxy path-prefix]="${PID[ours_prefix]}"
	[intercept-proxy path-regex]="${PID[ours_regex]}"
	[nginx]="${PID[nginx]} $(pgrep -P "${PID[nginx]}" | tr '\n' ' ')"
	[haproxy]="${PID[haproxy]} $(pgrep -P "${PID[haproxy]}" | tr '\n' ' ')"
)
UPIDS="${PID[up_app]} ${PID[up_laptop]}"
WRK_TARGETS=(direct intercept-proxy "intercept-proxy --no-fast-path" "intercept-proxy path-prefix" "intercept-proxy path-regex" nginx haproxy)
H2_TARGETS=(direct intercept-proxy "intercept-proxy --h2c" nginx haproxy)

# Routing and bodies checked before measuring anything.
upstream_of() { # URL [curl args]: the X-Upstream that answered
	local url=$1
	shift
	curl -sS --max-time 5 -D - -o /dev/null "$@" "$url" | tr -d '\r' |
		awk -F': ' 'tolower($1) == "x-upstream" { print $2 }'
}
for t in "${WRK_TARGETS[@]}"; do
	got=$(upstream_of "${URL_PLAIN[$t]}/")
	[ "$got" = app ] || die "$t: request without header answered by '$got', want app"
	got=$(upstream_of "${URL_HEADER[$t]}/" -H "$HEADER_NAME: $HEADER_VALUE")
	[ "$got" = laptop ] || die "$t: request with header answered by '$got', want laptop"
	n=$(curl -sS --max-time 5 -o /dev/null -w '%{size_download}' "${URL_PLAIN[$t]}/64k")
	[ "$n" = 65536 ] || die "$t: /64k gave $n bytes"
done
for t in "${H2_TARGETS[@]}"; do
	v=$(curl -sS --max-time 5 --http2-prior-knowledge -o /dev/null -w '%{http_version}' "${URL_H2[$t]}/")
	[ "$v" = 2 ] || die "$t: no h2c with prior knowledge on ${URL_H2[$t]} (got HTTP/$v)"
	[ "$t" = direct ] && continue
	got=$(upstream_of "${URL_H2[$t]}/" --http2-prior-knowledge)
	[ "$got" = app ] || die "$t (h2c): request without header answered by '$got', want app"
	got=$(upstream_of "${URL_H2[$t]}/" --http2-prior-knowledge -H "$HEADER_NAME: $HEADER_VALUE")
	[ "$got" = laptop ] || die "$t (h2c): request with header answered by '$got', want laptop"
done
log "routing checked: without header -> app, with '$HEADER_NAME: $HEADER_VALUE' -> laptop, on every target"

# rss_kb FIELD PID...: the sum of a /proc/PID/status memory field (VmRSS, VmHWM) in KiB.
rss_kb() {
	local field=$1 t=0 p v
	shift
	for p in "$@"; do
		v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
MEM_TARGETS=(intercept-proxy "intercept-proxy --h2c" "intercept-proxy --no-fast-path" nginx haproxy)
declare -A RSS_IDLE=() RSS_H1=() RSS_PEAK=() RSS_AFTER=()
sleep 2
for t in "${MEM_TARGETS[@]}"; do
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	RSS_IDLE[$t]=$(rss_kb VmRSS ${TPIDS[$t]})
done

count_of() { curl -sS --max-time 5 "http://127.0.0.1:$1/_count"; }

RAW="$TMP/results.tsv"
: >"$RAW"
RUN=0

# measure KIND BODY HEADER LOAD TARGET EXPECT CMD...: one warm-up-less
# measured run of CMD (which prints "RESULT k=v ..."), with the CPU and
# routing bookkeeping around it; one row into $RAW.
measure() {
	local kind=$1 body=$2 header=$3 load=$4 target=$5 expect=$6
	shift 6
	local pids=${TPIDS[$target]} p0 p1 u0 u1 a0 a1 l0 l1 other=0 out res c0 c1 k0 k1
	other_load && other=1
	a0=$(count_of "$P_APP")
	l0=$(count_of "$P_LAPTOP")
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	p0=$(group_ticks $pids)
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	u0=$(group_ticks $UPIDS)
	read -r -a c0 <<<"$(core_sample "$PROXY_CPU")"
	read -r -a k0 <<<"$(core_sample "$LOAD_CPU")"
	# `times` (second line: this subshell's children) gives the load
	# generator's own CPU time.
	out=$(
		"$@" 2>&1
		rc=$?
		times >"$TMP/times" # not in a pipe: that would be another subshell
		awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "LOADGEN cpu_s=%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$TMP/times"
		exit $rc
	) || {
		printf '%s\n' "$out" >&2
		die "$kind $target $body $header $load: load generator failed"
	}
	read -r -a c1 <<<"$(core_sample "$PROXY_CPU")"
	read -r -a k1 <<<"$(core_sample "$LOAD_CPU")"
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	p1=$(group_ticks $pids)
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	u1=$(group_ticks $UPIDS)
	a1=$(count_of "$P_APP")
	l1=$(count_of "$P_LAPTOP")
	other_load && other=1
	RUN=$((RUN + 1))
	printf '%s\n' "$out" >"$TMP/run-$RUN.out"
	res=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1) || die "no result from: $*"
	local requests duration_us p50_us p99_us errors
	read_result "$res"
	local mis fg lg
	if [ "$expect" = laptop ]; then mis=$((a1 - a0)); else mis=$((l1 - l0)); fi
	# Busy time on each core that none of our processes account for:
	# someone else's load, in % of the run's wall time ("load core/proxy core").
	lg=$(printf '%s\n' "$out" | awk -F= '/^LOADGEN cpu_s=/ { print $2 }')
	fg=$(awk -v b=$((c1[0] - c0[0])) -v t=$((c1[1] - c0[1])) -v ours=$((p1 - p0 + u1 - u0)) \
		-v b0=$((k1[0] - k0[0])) -v t0=$((k1[1] - k0[1])) -v lg="${lg:-0}" -v hz="$CLK_TCK" \
		'BEGIN {
			f = t > 0 ? 100 * (b - ours) / t : 0
			f0 = t0 > 0 ? 100 * (b0 - lg * hz) / t0 : 0
			printf "%.0f/%.0f", f0 < 0 ? 0 : f0, f < 0 ? 0 : f
		}')
	[ -n "$pids" ] || p1=-1 p0=0
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$kind" "$body" "$header" "$load" "$target" "$requests" "$duration_us" "$p50_us" "$p99_us" \
		"$errors" "$mis" $((p1 - p0)) $((u1 - u0)) "$other" "$fg" "${ROUND:-1}" >>"$RAW"
	awk -v r="$requests" -v d="$duration_us" -v p50="$p50_us" -v p99="$p99_us" -v pt=$((p1 - p0)) -v hz="$CLK_TCK" \
		-v what="$kind $target $body header=$header $load" -v e="$errors" -v mis="$mis" -v fg="$fg" -v other="$other" \
		'BEGIN { printf "  %-48s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %s  errors %d  misrouted %d  other load %s%%%s\n",
			what, r / (d / 1e6), p50 / 1000, p99 / 1000,
			pt < 0 ? "                 " : sprintf("%6.1f us/req CPU", pt * 1e6 / hz / r), e, mis, fg,
			other ? " (go test/build running)" : "" }' >&2
}

# wrk_result: runs wrk with the given args and turns its output into a
# RESULT line (the Lua done() hook prints it).
run_wrk() {
	timeout $((DURATION + 30)) "${on_load_core[@]}" wrk -t1 --timeout 5s --latency -s "$ROOT/bench/wrk-report.lua" "$@"
}

# h2load: requests/s from its summary, p50/p99 from its per-request log.
run_h2load() {
	local lf="$TMP/h2load-$((RUN + 1)).log" out
	out=$(timeout $((DURATION + 30)) "${on_load_core[@]}" h2load -t1 --log-file="$lf" "$@") || {
		printf '%s\n' "$out"
		return 1
	}
	printf '%s\n' "$out"
	local fin req
	fin=$(printf '%s\n' "$out" | awk '/^finished in/ { sub(/s,$/, "", $3); print $3 }')
	req=$(printf '%s\n' "$out" | awk '/^requests:/ { print $8, $10 + $12 + $14 }')
	read -r ok bad <<<"$req"
	# Percentiles over the successful requests' durations (column 3, us).
	awk -F'\t' '$2 >= 200 && $2 < 400 { print $3 }' "$lf" | sort -n |
		awk -v ok="$ok" -v bad="$bad" -v fin="$fin" '
			{ v[NR] = $1 }
			END {
				n = NR
				i50 = int(n * 0.50); if (i50 < 1) i50 = 1
				i99 = int(n * 0.99); if (i99 < 1) i99 = 1
				printf "RESULT requests=%d duration_us=%.0f p50_us=%d p99_us=%d errors=%d\n", ok, fin * 1e6, v[i50], v[i99], bad
			}'
	rm -f "$lf"
}

# place shared|own: where the upstreams run. shared: on the proxy's core,
# which the proxy then shares with them and which runs saturated (the
# proxy batches); own: on the load generator's core, so the proxy has a
# core of its own and runs at partial load, as a sidecar usually does (the
# pod's app and the node's other pods elsewhere).
place() {
	local core=$PROXY_CPU p
	[ "$1" = own ] && core=$LOAD_CPU
	for p in $UPIDS; do
		taskset -a -p -c "$core" "$p" >/dev/null || die "taskset $p"
	done
}

log "measuring: load on core $LOAD_CPU, proxies on core $PROXY_CPU, upstreams placed $PLACEMENTS, ${WARMUP}s warm-up + ${DURATION}s per run"
T0=$(date +%s)
for placement in $PLACEMENTS; do
	place "$placement"
	kind=wrk
	[ "$placement" = own ] && kind=wrk-own
	for body in small 64k; do
		path=/
		[ "$body" = 64k ] && path=/64k
		for header in no yes; do
			for c in $CONNS; do
				for ROUND in $(seq "$ROUNDS"); do
					for t in "${WRK_TARGETS[@]}"; do
						case $t in
						intercept-proxy | nginx | "intercept-proxy path-"*) ;;
						*) [ "$ROUND" -eq 1 ] || continue ;;
						esac
						if [ "$header" = yes ]; then
							url=${URL_HEADER[$t]}$path
							hdr=(-H "$HEADER_NAME: $HEADER_VALUE")
							expect=laptop
						else
							url=${URL_PLAIN[$t]}$path
							hdr=()
							expect=app
						fi
						settle 5
						run_wrk -c"$c" -d"${WARMUP}s" "${hdr[@]}" "$url" >/dev/null
						measure "$kind" "$body" "$header" "$c" "$t" "$expect" run_wrk -c"$c" -d"${DURATION}s" "${hdr[@]}" "$url"
					done
				done
			done
		done
	done
done
place shared

for t in "${MEM_TARGETS[@]}"; do
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	RSS_H1[$t]=$(rss_kb VmHWM ${TPIDS[$t]})
done

# h2c: clients x concurrent streams per client, body.
ROUND=1
for spec in "1 1 small" "16 10 small" "16 10 64k"; do
	read -r c m body <<<"$spec"
	path=/
	[ "$body" = 64k ] && path=/64k
	for t in "${H2_TARGETS[@]}"; do
		url=${URL_H2[$t]}$path
		settle 5
		timeout $((WARMUP + 30)) "${on_load_core[@]}" h2load -t1 -c"$c" -m"$m" -D "$WARMUP" "$url" >/dev/null
		measure h2 "$body" no "${c}x${m}" "$t" app run_h2load -c"$c" -m"$m" -D "$DURATION" "$url"
	done
done
ELAPSED=$(($(date +%s) - T0))
for t in "${MEM_TARGETS[@]}"; do
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	RSS_PEAK[$t]=$(rss_kb VmHWM ${TPIDS[$t]})
	# shellcheck disable=SC2086 # a space-separated PID list, split into arguments on purpose
	RSS_AFTER[$t]=$(rss_kb VmRSS ${TPIDS[$t]})
done

if other_load; then
	END_NOTE="other 'go test'/'go build' processes WERE running at the end"
else
	END_NOTE="none at the end"
fi
END_NOTE+="; ${waited}s spent waiting for them in all"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report

versions() {
	printf -- '- %s\n' \
		"kernel $(uname -r), $(nproc --all) cores ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM" \
		"intercept-proxy from $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- cmd/intercept-proxy pkg/sidecar/proxy pkg/wire/tunnel 2>/dev/null || echo ' (+ local changes)'), $("$GO" version | cut -d' ' -f3)" \
		"$(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), $(/usr/sbin/haproxy -v | head -1 | cut -d' ' -f1-3), wrk $(dpkg-query -W -f '${Version}' wrk 2>/dev/null), $(h2load --version | head -1)"
}

{
	echo "# Data-plane benchmark: intercept-proxy vs nginx and HAProxy"
	echo
	echo "Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${ELAPSED}s)."
	echo
	versions
	echo "- load generator (wrk -t1 / h2load -t1) pinned to core $LOAD_CPU, the proxy to core $PROXY_CPU (taskset); both upstreams on core $PROXY_CPU (*shared*: the proxy runs saturated) and, for HTTP/1.1 again, on core $LOAD_CPU (*own core*: the proxy alone on its core, at partial load); nginx 1 worker, HAProxy nbthread 1, intercept-proxy as it ships (one P while one is enough; a single core's affinity gives one P)"
	echo "- each run: ${WARMUP}s warm-up, then ${DURATION}s measured; keep-alive everywhere"
	echo "- HTTP/1.1: intercept-proxy and nginx in $ROUNDS alternating rounds per case (the other targets once); their req/s and CPU µs/req pool the rounds (all requests, all CPU), p50 and p99 are the rounds' medians; *rounds ≤ nginx*: in how many rounds intercept-proxy's CPU per request was at most nginx's in the same round"
	echo "- background before measuring (2 s, nothing of ours running): $BG_BEFORE busy; load average $LOAD_BEFORE before, $LOAD_AFTER after"
	echo "- $START_NOTE; $END_NOTE"
	echo
	echo "Upstreams: \`bench/upstream\` (Go net/http, HTTP/1.1 + h2c): \`/\` answers 16 bytes, \`/64k\` 65536 bytes."
	echo "Routing: \`$HEADER_NAME: $HEADER_VALUE\` → the \"laptop\" upstream, anything else → the \"app\" upstream;"
	echo "\"direct\" sends the same requests straight to the upstream the proxies would pick."
	echo "*CPU µs/req*: utime+stime of the proxy's processes (nginx: master + worker) during the measured run ÷ requests completed."
	echo "*÷ nginx*, *÷ direct*: this row's value over the nginx / direct row's for the same case (req/s: higher is better; CPU: lower is better)."
	echo
	awk -F'\t' -v hz="$CLK_TCK" -v lcpu="$LOAD_CPU" -v pcpu="$PROXY_CPU" -f "$ROOT/bench/report.awk" "$RAW"
	echo
	echo "## Memory"
	echo
	echo "Resident set size (/proc/PID/status) of each proxy's processes, MiB (nginx: master + worker, shared pages counted twice)."
	echo "*idle*: after start and the routing checks, before any load; *peak HTTP/1.1*: the high-water mark (VmHWM) after the wrk runs, whose heaviest is 64 connections × 64 KiB bodies; *peak*: after the h2c runs too; *after*: VmRSS at the end."
	echo
	echo "| proxy | idle | peak HTTP/1.1 | peak | after |"
	echo "|---|---:|---:|---:|---:|"
	for t in "${MEM_TARGETS[@]}"; do
		awk -v t="$t" -v a="${RSS_IDLE[$t]}" -v b="${RSS_H1[$t]}" -v c="${RSS_PEAK[$t]}" -v d="${RSS_AFTER[$t]}" \
			'BEGIN { printf "| %s | %.1f | %.1f | %.1f | %.1f |\n", t, a / 1024, b / 1024, c / 1024, d / 1024 }'
	done
} >"$OUT"

log "report written to $OUT"
cat "$OUT"
