#!/usr/bin/env bash
# bench/sandbox.sh: a client inside `kubectl intercept --sandbox` against
# `kubectl port-forward svc/backend`, to the same backend, in the same run
# (docs/performance.md, "The sandbox's own cost").
#
#   sandbox       wrk or curl inside the sandbox -> http://backend (the
#                 pod's resolver, through the tunnel) -> the TUN device ->
#                 the plugin's netstack -> a dial through the tunnel from
#                 the copy pod -> backend pod
#   port-forward  wrk or curl -> kubectl port-forward svc/backend -> backend pod
#
#   forward       wrk or curl -> kubectl intercept --forward PORT:CLUSTERIP:80
#                 (the sandbox's way into the cluster without the sandbox)
#
# Rounds alternate: port-forward, sandbox, --forward, port-forward... Each
# point: wrk with 1 and 16 connections, small (16 B) and 64 KiB answers;
# the first byte on a new connection (curl, BENCH_CONNECTS times) by name
# (`backend`: two lookups through the search path, then the connection)
# and by ClusterIP.
#
# Needs the local cluster and images (make cluster-up images build); runs
# the plugin as the caller. Uses its own namespace, deleted at the end;
# stops only the processes it started, by PID.
#
# Knobs: BENCH_DURATION=5, BENCH_WARMUP=1, BENCH_CONNECTS=50,
# BENCH_ROUNDS=2, BENCH_SANDBOX_OUT=bench/sandbox-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNECTS=${BENCH_CONNECTS:-50}
ROUNDS=${BENCH_ROUNDS:-2}
OUT=${BENCH_SANDBOX_OUT:-$ROOT/bench/sandbox-results.md}
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}
KUBECTL=${KUBECTL:-$CACHE_DIR/bin/kubectl}
PLUGIN=${PLUGIN:-$ROOT/bin/kubectl-intercept}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
export KUBECONFIG=${KUBECONFIG:-${CLUSTER_DIR:-$CACHE_DIR/cluster}/kubeconfig}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
export NO_COLOR=1

log() { printf '[bench-sandbox %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
need_cluster

# Not under /tmp: the sandbox has an empty /tmp of its own.
TMP=$(mktemp -d /var/tmp/intercept-bench-sandbox.XXXXXX)
chmod 755 "$TMP"
export XDG_STATE_HOME=$TMP/state
NS=bench-sandbox-$RANDOM
declare -A PID=()
STARTED=()
k() { "$KUBECTL" -n "$NS" "$@"; }

cleanup() {
	stop_started
	"$PLUGIN" close svc/demo -n "$NS" >/dev/null 2>&1 || true
	"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

deploy_demo_and_backend

# measure.sh BASE_BY_NAME BASE_BY_IP: the measurements of one point, one
# line each: "rps CONNS SIZE REQUESTS DURATION_US ERRORS" and "ttfb HOW
# MEDIAN_MS P90_MS". Run inside the sandbox and outside alike.
cat >"$TMP/measure.sh" <<EOF
#!/bin/sh
set -eu
by_name=\$1 by_ip=\$2
for c in 1 16; do
	for n in 16 65536; do
		[ $WARMUP = 0 ] || timeout $((WARMUP + 30)) wrk -t1 -c\$c -d${WARMUP}s "\$by_name/bytes?n=\$n" >/dev/null
		out=\$(timeout $((DURATION + 30)) wrk -t1 -c\$c -d${DURATION}s --timeout 5s -s "$ROOT/bench/wrk-report.lua" "\$by_name/bytes?n=\$n")
		echo "\$out" | grep '^RESULT ' | tail -1 | sed "s/^RESULT /rps \$c \$n /"
	done
done
for how in name ip; do
	url=\$by_name; [ \$how = ip ] && url=\$by_ip
	for i in \$(seq $CONNECTS); do
		curl -sS -o /dev/null --max-time 5 -w '%{time_starttransfer}\n' "\$url/bytes?n=16" || echo 5
	done | sort -n | awk -v how=\$how '{ v[NR] = \$1 } END { printf "ttfb %s %.3f %.3f\n", how, v[int((NR + 1) / 2)] * 1000, v[int(NR * 0.9 + 0.5)] * 1000 }'
done
EOF
chmod 755 "$TMP/measure.sh"

RAW=$TMP/results.txt
: >"$RAW"
T0=$(date +%s)
LOADS=()
for r in $(seq "$ROUNDS"); do
	LOADS+=("$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)")
	pick_port P_PF
	start "pf$r" "$KUBECTL" port-forward -n "$NS" svc/backend "$P_PF:80"
	wait_log "pf$r" "Forwarding from" 30
	log "round $r: port-forward"
	"$TMP/measure.sh" "http://127.0.0.1:$P_PF" "http://127.0.0.1:$P_PF" | sed "s/^/port-forward $r /" | tee -a "$RAW" >&2
	kill -INT "${PID[pf$r]}" 2>/dev/null || true
	wait "${PID[pf$r]}" 2>/dev/null || true

	log "round $r: sandbox"
	pick_port P_LAPTOP
	"$PLUGIN" svc/demo -n "$NS" -l "$P_LAPTOP" -x x-dev:bench --inspect=false --sandbox -- \
		"$TMP/measure.sh" "http://backend" "http://$BACKEND" >"$TMP/sandbox$r.log" 2>&1 ||
		{ cat "$TMP/sandbox$r.log" >&2; die "round $r: the sandbox's run failed"; }
	grep -E '^(rps|ttfb) ' "$TMP/sandbox$r.log" | sed "s/^/sandbox $r /" | tee -a "$RAW" >&2
	grep -iE 'DNS|resolv' "$TMP/sandbox$r.log" >&2 || true

	log "round $r: --forward (the same tunnel, no sandbox)"
	pick_port P_LAPTOP
	pick_port P_FWD
	"$PLUGIN" svc/demo -n "$NS" -l "$P_LAPTOP" -x x-dev:bench --inspect=false --forward "$P_FWD:$BACKEND:80" -- \
		"$TMP/measure.sh" "http://127.0.0.1:$P_FWD" "http://127.0.0.1:$P_FWD" >"$TMP/forward$r.log" 2>&1 ||
		{ cat "$TMP/forward$r.log" >&2; die "round $r: the --forward run failed"; }
	grep -E '^(rps|ttfb) ' "$TMP/forward$r.log" | sed "s/^/forward $r /" | tee -a "$RAW" >&2
done
ELAPSED=$(($(date +%s) - T0))

# rps lines: WHERE ROUND rps CONNS SIZE requests=.. duration_us=.. bytes=.. p50_us=.. p99_us=.. errors=..
{
	echo "# A client in the sandbox vs kubectl port-forward"
	echo
	echo "Generated by \`bench/sandbox.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${ELAPSED}s)."
	echo
	echo "- kernel $(uname -r), $(nproc --all) cores, the single-node cluster of \`hack/cluster.sh\` on the same machine; nothing pinned; load average (1, 5, 15 min) at each round's start: ${LOADS[*]}"
	echo "- $("$PLUGIN" version 2>/dev/null | head -1 || echo 'kubectl-intercept ?') (the plugin measured), run as uid $(id -u); wrk -t1, ${WARMUP}s warm-up + ${DURATION}s per point, keep-alive"
	echo "- *sandbox*: wrk and curl inside \`kubectl intercept --sandbox\` to \`http://backend\` (by name) and its ClusterIP · *--forward*: the same from this machine through \`--forward PORT:CLUSTERIP:80\` of an intercept (the tunnel without the sandbox; no lookup) · *port-forward*: \`kubectl port-forward svc/backend\` (no lookup)"
	echo
	echo "| round | conns | answer | sandbox req/s | --forward req/s | port-forward req/s | sandbox ÷ port-forward | --forward ÷ port-forward |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	awk '$3 == "rps" { split($6, q, "="); split($7, d, "="); v[$1, $2, $4, $5] = q[2] / (d[2] / 1e6); key[$2 " " $4 " " $5] = 1 }
		END { for (k in key) { split(k, f, " "); s = v["sandbox", f[1], f[2], f[3]]; w = v["forward", f[1], f[2], f[3]]; p = v["port-forward", f[1], f[2], f[3]]
			printf "| %s | %s | %s B | %.0f | %.0f | %.0f | %s | %s |\n", f[1], f[2], f[3], s, w, p, (p > 0) ? sprintf("%.2f×", s / p) : "", (p > 0) ? sprintf("%.2f×", w / p) : "" } }' "$RAW" | sort -t'|' -k2,2n -k3,3n -k4,4n
	echo
	echo "| round | first byte | sandbox median (p90) ms | --forward median (p90) ms | port-forward median (p90) ms | sandbox ÷ port-forward (median) |"
	echo "|---:|---|---:|---:|---:|---:|"
	awk '$3 == "ttfb" { m[$1, $2, $4] = $5; p9[$1, $2, $4] = $6; key[$2 " " $4] = 1 }
		END { for (k in key) { split(k, f, " "); s = m["sandbox", f[1], f[2]]; p = m["port-forward", f[1], f[2]]
			printf "| %s | by %s | %.2f (%.2f) | %.2f (%.2f) | %.2f (%.2f) | %s |\n", f[1], f[2] == "ip" ? "ClusterIP" : "name", s, p9["sandbox", f[1], f[2]],
				m["forward", f[1], f[2]], p9["forward", f[1], f[2]], p, p9["port-forward", f[1], f[2]], (p > 0) ? sprintf("%.2f×", s / p) : "" } }' "$RAW" | sort
} >"$OUT"
log "report written to $OUT"
cat "$OUT"
