#!/usr/bin/env bash
# bench/wiretap.sh: what a wiretap costs the sidecar and its callers.
#
# The load benchmark's setup (bench/run.sh: wrk on one core, the proxy and
# the upstreams on the other, a header route x-dev:alice to a "laptop"),
# with these targets side by side, in alternating rounds:
#
#   intercept-proxy           the plain route
#   ... + wiretap             the same with --wiretap: every request and
#                             its answer copied to a developer's end that
#                             reads the copies (bench/upstream --tap, on the
#                             load generator's core, as a laptop is elsewhere)
#   ... + slow wiretap        the same, the developer's end reading one copy
#                             per BENCH_SLOW_DELAY: its queue fills, and the
#                             sidecar drops (and counts) rather than delay
#   ... --no-fast-path + wiretap  every request through net/http, as a
#                             wiretapped one went before it stayed on the
#                             fast path
#   nginx                     the same header routing, for scale
#
# Requests without the header go to the app and are copied; those with it
# go to the laptop by a static route, which no wiretap sees (a request a
# developer's intercept takes is copied only to that developer's own
# wiretaps). For each: CPU per request of the proxy's process, p50 and p99
# latency (wrk --latency), copies read and drops reported.
#
# Knobs: BENCH_DURATION=5 BENCH_WARMUP=1 BENCH_ROUNDS=3 BENCH_CONNS=16
# BENCH_SLOW_DELAY=10ms BENCH_LOAD_CPU=0 BENCH_PROXY_CPU=1
# BENCH_OUT=bench/wiretap-results.md. Stops only the processes it started.
# Run it under `flock -o` when it holds a lock, so the processes it starts
# do not hold the lock with it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-16}
SLOW_DELAY=${BENCH_SLOW_DELAY:-10ms}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
PROXY_CPU=${BENCH_PROXY_CPU:-1}
OUT=${BENCH_OUT:-$ROOT/bench/wiretap-results.md}
GO=${GO:-go}

log() { printf '[wiretap bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
for c in wrk taskset curl ss /usr/sbin/nginx; do
	command -v "$c" >/dev/null || die "needs $c (bench/run.sh installs it)"
done

TMP=$(mktemp -d /tmp/intercept-wiretap-bench.XXXXXX)
chmod 755 "$TMP"
declare -A PID=()
STARTED=()
cleanup() {
	# nginx's worker outlives a master stopped early: end it by its PID.
	local kids=""
	[ -n "${PID[nginx]:-}" ] && kids=$(pgrep -P "${PID[nginx]}" || true)
	stop_started
	for k in $kids; do
		kill -KILL "$k" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
CLK_TCK=$(getconf CLK_TCK)

# group_ticks PID...: their utime+stime, summed.
group_ticks() {
	local t=0 p
	for p in "$@"; do
		t=$((t + $(proc_ticks "$p")))
	done
	echo "$t"
}

# wait_up NAME URL: until URL answers, or NAME has died.
wait_up() {
	for _ in $(seq 100); do
		kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited: $(cat "$TMP/$1.log")"
		curl -sS -o /dev/null --max-time 1 "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$1 did not answer on $2: $(cat "$TMP/$1.log")"
}

log "building intercept-proxy and the bench upstream"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$TMP/bin/intercept-proxy" ./cmd/intercept-proxy &&
	CGO_ENABLED=0 "$GO" build -o "$TMP/bin/upstream" ./bench/upstream)

for p in APP LAPTOP DEV DEV_TAP SLOW SLOW_TAP OURS TAP SLOWTAP NOFAST NGINX; do
	pick_port "P_$p"
done
on_proxy=(taskset -c "$PROXY_CPU")
on_load=(taskset -c "$LOAD_CPU")
ROUTE="x-dev:alice=127.0.0.1:$P_LAPTOP"

start app "${on_proxy[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_APP" --name app
start laptop "${on_proxy[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_LAPTOP" --name laptop
start dev "${on_load[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_DEV" --name dev --tap "127.0.0.1:$P_DEV_TAP"
start slow "${on_load[@]}" "$TMP/bin/upstream" --listen "127.0.0.1:$P_SLOW" --name slow --tap "127.0.0.1:$P_SLOW_TAP" --tap-delay "$SLOW_DELAY"
proxy() {
	local name=$1 port=$2
	shift 2
	start "$name" "${on_proxy[@]}" "$TMP/bin/intercept-proxy" --listen "127.0.0.1:$port" \
		--upstream "127.0.0.1:$P_APP" --route "$ROUTE" --drain-delay 0 "$@"
}
proxy ours "$P_OURS"
proxy tap "$P_TAP" --wiretap "127.0.0.1:$P_DEV_TAP"
proxy slowtap "$P_SLOWTAP" --wiretap "127.0.0.1:$P_SLOW_TAP"
proxy nofast "$P_NOFAST" --wiretap "127.0.0.1:$P_DEV_TAP" --no-fast-path

mkdir -p "$TMP/nginx/logs"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:$P_APP; keepalive 256; keepalive_requests 1000000; }
    upstream laptop { server 127.0.0.1:$P_LAPTOP; keepalive 256; keepalive_requests 1000000; }
    map \$http_x_dev \$backend { default app; alice laptop; }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://\$backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_max_temp_file_size 0;
        }
    }
}
EOF
start nginx "${on_proxy[@]}" /usr/sbin/nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log"

for n in app laptop dev slow; do
	wait_up "$n" "http://127.0.0.1:$(eval echo "\$P_${n^^}")/_count"
done
declare -A URL=([plain]=$P_OURS [wiretap]=$P_TAP ["slow wiretap"]=$P_SLOWTAP ["no-fast-path wiretap"]=$P_NOFAST [nginx]=$P_NGINX)
declare -A SINK=([wiretap]=$P_DEV ["slow wiretap"]=$P_SLOW ["no-fast-path wiretap"]=$P_DEV)
TARGETS=(plain wiretap "slow wiretap" "no-fast-path wiretap" nginx)
wait_up ours "http://127.0.0.1:$P_OURS/"
wait_up tap "http://127.0.0.1:$P_TAP/"
wait_up slowtap "http://127.0.0.1:$P_SLOWTAP/"
wait_up nofast "http://127.0.0.1:$P_NOFAST/"
wait_up nginx "http://127.0.0.1:$P_NGINX/"
declare -A TPIDS=([plain]=${PID[ours]} [wiretap]=${PID[tap]} ["slow wiretap"]=${PID[slowtap]} ["no-fast-path wiretap"]=${PID[nofast]}
	[nginx]="${PID[nginx]} $(pgrep -P "${PID[nginx]}" | tr '\n' ' ')")
# The copies arrive: one request through the wiretap, one copy read.
curl -sS -o /dev/null "http://127.0.0.1:$P_TAP/"
for _ in $(seq 50); do
	[ "$(curl -sS "http://127.0.0.1:$P_DEV/_taps" | cut -d' ' -f1)" -ge 1 ] && break
	sleep 0.1
done
[ "$(curl -sS "http://127.0.0.1:$P_DEV/_taps" | cut -d' ' -f1)" -ge 1 ] || die "the developer's end read no copy"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RAW="$TMP/raw.tsv"
: >"$RAW"
run() { # ROUND CASE PATH HEADER TARGET
	local round=$1 case=$2 path=$3 header=$4 t=$5 hdr=() sink=${SINK[$5]:-} p0 p1 s0=(0 0) s1=(0 0) out res
	[ "$header" = yes ] && hdr=(-H "x-dev: alice")
	local url="http://127.0.0.1:${URL[$t]}$path"
	if [ "$WARMUP" != 0 ]; then
		timeout $((WARMUP + 30)) "${on_load[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" "$url" >/dev/null
	fi
	if [ -n "$sink" ]; then read -r -a s0 <<<"$(curl -sS "http://127.0.0.1:$sink/_taps")"; fi
	# shellcheck disable=SC2086 # a space-separated PID list
	p0=$(group_ticks ${TPIDS[$t]})
	out=$(timeout $((DURATION + 30)) "${on_load[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency \
		-s "$ROOT/bench/wrk-report.lua" "${hdr[@]}" "$url")
	# shellcheck disable=SC2086 # a space-separated PID list
	p1=$(group_ticks ${TPIDS[$t]})
	if [ -n "$sink" ]; then
		sleep 0.5 # the copies of the last requests on their way
		read -r -a s1 <<<"$(curl -sS "http://127.0.0.1:$sink/_taps")"
	fi
	res=$(printf '%s\n' "$out" | grep '^RESULT ') || die "no result from wrk: $out"
	local requests duration_us p50_us p99_us errors
	read_result "$res"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$case" "$t" "$requests" "$duration_us" "$p50_us" "$p99_us" \
		"$errors" $((p1 - p0)) $((s1[0] - s0[0])) $((s1[1] - s0[1])) >>"$RAW"
	awk -v r="$requests" -v d="$duration_us" -v p50="$p50_us" -v p99="$p99_us" -v pt=$((p1 - p0)) -v hz="$CLK_TCK" \
		-v what="round $round $case $t" -v cp=$((s1[0] - s0[0])) -v dr=$((s1[1] - s0[1])) -v e="$errors" \
		'BEGIN { printf "  %-50s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %6.1f us/req CPU  copies %d  dropped %d  errors %d\n",
			what, r / (d / 1e6), p50 / 1000, p99 / 1000, pt * 1e6 / hz / r, cp, dr, e }' >&2
}
CASES=("16 B, no header (→ app)|/|no" "16 B, header (→ laptop)|/|yes" "64 KiB, no header (→ app)|/64k|no")
for round in $(seq "$ROUNDS"); do
	for c in "${CASES[@]}"; do
		IFS='|' read -r name path header <<<"$c"
		for t in "${TARGETS[@]}"; do
			run "$round" "$name" "$path" "$header" "$t"
		done
	done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "# Wiretap benchmark"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores; load average $LOAD_START at the start, $LOAD_END at the end."
	echo "wrk -t1 -c$CONNS, ${DURATION}s a run after ${WARMUP}s of warm-up, $ROUNDS rounds; wrk on core $LOAD_CPU with the developer's ends, the proxies and upstreams on core $PROXY_CPU; the slow developer's end reads a copy per $SLOW_DELAY."
	echo
	echo "Per case and target, over the rounds: CPU per request of the proxy (min–max, µs), its ratio to the plain route in the same round (min–max), p99 latency (min–max, ms) and its ratio to the plain route's in the same round, copies read and drops reported (sums)."
	echo
	echo "| case | target | CPU/req µs | ×plain | p99 ms | p99 ×plain | req/s | copies | dropped |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' -v hz="$CLK_TCK" '
		{ cpu = $9 * 1e6 / hz / $4; key = $2 SUBSEP $3
		  C[$1, key] = cpu; P[$1, key] = $7 / 1000; R[key] += $4 / ($5 / 1e6); N[key]++
		  cp[key] += $10; dr[key] += $11
		  if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
		function upd(k, v, lo, hi) { if (!(k in lo) || v < lo[k]) lo[k] = v; if (!(k in hi) || v > hi[k]) hi[k] = v }
		END {
			for (rk in C) {
				split(rk, a, SUBSEP); r = a[1]; key = a[2] SUBSEP a[3]; base = r SUBSEP a[2] SUBSEP "plain"
				upd(key, C[rk], clo, chi); upd(key, P[rk], plo, phi)
				if (base in C) { upd(key, C[rk] / C[base], xlo, xhi); upd(key, P[rk] / P[base], qlo, qhi) }
			}
			for (i = 1; i <= n; i++) {
				key = order[i]; split(key, a, SUBSEP)
				tap = a[2] ~ /wiretap/
				printf "| %s | %s | %.1f–%.1f | %.2f–%.2f | %.2f–%.2f | %.2f–%.2f | %.0f | %s | %s |\n", a[1], a[2],
					clo[key], chi[key], xlo[key], xhi[key], plo[key], phi[key], qlo[key], qhi[key], R[key] / N[key],
					tap ? cp[key] : "–", tap ? dr[key] : "–"
			}
		}' "$RAW"
} >"$OUT"
cat "$OUT"
