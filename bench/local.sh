#!/usr/bin/env bash
# bench/local.sh: the local side's way into the cluster's network (make
# bench-local), against `kubectl port-forward svc/...` to the same Service
# in the same run.
#
#   forward       wrk -> 127.0.0.1 (kubectl intercept --forward) -> tunnel
#                 (port-forward of a copy pod's control port) -> sidecar
#                 dials the Service's ClusterIP -> backend pod
#   proxy         wrk, absolute-form requests -> the local HTTP proxy
#                 (kubectl intercept -- CMD / --network) -> the same way
#   port-forward  wrk -> kubectl port-forward svc/backend -> backend pod
#
# Throughput: wrk with 1 and 16 connections on /bytes?n=65536 (requests/s
# and MB/s). Connect latency: curl on a new connection each time,
# BENCH_CONNECTS times, the time to the first byte of the answer (TCP
# connect, the tunnel's or port-forward's stream, the far connect, the
# request), median and p90.
#
# Needs the local cluster and images (make cluster-up images build). Uses
# its own namespace, deleted at the end; stops only the processes it
# started, by PID. Bounded: every wrk run is BENCH_WARMUP + BENCH_DURATION
# seconds under `timeout`, and BENCH_CONNECTS curl requests of at most 5 s.
#
# Knobs: BENCH_DURATION=5, BENCH_WARMUP=1, BENCH_CONNS="1 16",
# BENCH_CONNECTS=50, BENCH_LOCAL_OUT=bench/local-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-"1 16"}
CONNECTS=${BENCH_CONNECTS:-50}
OUT=${BENCH_LOCAL_OUT:-$ROOT/bench/local-results.md}
GO=${GO:-go}
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}
KUBECTL=${KUBECTL:-$CACHE_DIR/bin/kubectl}
PLUGIN=${PLUGIN:-$ROOT/bin/kubectl-intercept}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
export KUBECONFIG=${KUBECONFIG:-${CLUSTER_DIR:-$CACHE_DIR/cluster}/kubeconfig}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
export NO_COLOR=1

log() { printf '[bench-local %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

if ! command -v wrk >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	log "installing wrk"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk) >/dev/null ||
		die "apt-get install wrk failed"
fi
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
need_cluster

TMP=$(mktemp -d /tmp/intercept-bench-local.XXXXXX)
export XDG_STATE_HOME=$TMP/state
NS=bench-local-$RANDOM
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

pick_port P_LAPTOP
pick_port P_FWD
pick_port P_PF
start intercept "$PLUGIN" svc/demo -n "$NS" -l "$P_LAPTOP" -x x-dev:bench --network --forward "$P_FWD:$BACKEND:80" --inspect=false
wait_log intercept "Cluster network: SOCKS5 and HTTP proxy at" 120
P_PROXY=$(grep -o 'proxy at 127.0.0.1:[0-9]*' "$TMP/intercept.log" | head -1 | cut -d: -f2)
start portforward "$KUBECTL" port-forward -n "$NS" svc/backend "$P_PF:80"
wait_log portforward "Forwarding from" 30

declare -A URL=([forward]="http://127.0.0.1:$P_FWD" [proxy]="http://$BACKEND" [port-forward]="http://127.0.0.1:$P_PF")
declare -A CURLX=([forward]="" [proxy]="--proxy http://127.0.0.1:$P_PROXY" [port-forward]="")
PATHS=(forward proxy port-forward)
for t in "${PATHS[@]}"; do
	# shellcheck disable=SC2086 # CURLX holds options
	got=$(curl -sS --max-time 5 ${CURLX[$t]} "${URL[$t]}/" | tr -d '\n' | grep -o '"pod": *"[^"]*"' | cut -d'"' -f4)
	case $got in backend-*) ;; *) die "$t: answered by '$got', want a backend pod" ;; esac
done
log "checked: each path reaches the backend"

# wrk through the HTTP proxy: absolute-form request lines.
cat >"$TMP/proxy.lua" <<EOF
wrk.path = "http://$BACKEND/bytes?n=65536"
EOF
cat "$ROOT/bench/wrk-report.lua" >>"$TMP/proxy.lua"

RAW=$TMP/results.tsv
: >"$RAW"
T0=$(date +%s)
for c in $CONNS; do
	for t in "${PATHS[@]}"; do
		case $t in
		proxy) url="http://127.0.0.1:$P_PROXY/" script=$TMP/proxy.lua ;;
		*) url="${URL[$t]}/bytes?n=65536" script=$ROOT/bench/wrk-report.lua ;;
		esac
		timeout $((WARMUP + 30)) wrk -t1 -c"$c" -d"${WARMUP}s" -s "$script" "$url" >/dev/null
		out=$(timeout $((DURATION + 30)) wrk -t1 -c"$c" -d"${DURATION}s" --timeout 5s --latency -s "$script" "$url") ||
			die "$t: wrk failed: $out"
		read_result "$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1)"
		printf 'rps\t%s\t%s\t%s\t%s\t%s\n' "$c" "$t" "$requests" "$duration_us" "$errors" >>"$RAW"
		awk -v r="$requests" -v d="$duration_us" -v e="$errors" -v what="$t c=$c" \
			'BEGIN { printf "  %-20s %8.0f req/s  %7.1f MB/s  errors %d\n", what, r / (d / 1e6), r * 65536 / (d / 1e6) / 1e6, e }' >&2
	done
done

# Connect latency: a new connection per request.
for t in "${PATHS[@]}"; do
	: >"$TMP/ttfb-$t"
	for _ in $(seq "$CONNECTS"); do
		# shellcheck disable=SC2086 # CURLX holds options
		curl -sS -o /dev/null --max-time 5 ${CURLX[$t]} -w '%{time_starttransfer}\n' "${URL[$t]}/" >>"$TMP/ttfb-$t" ||
			echo 5 >>"$TMP/ttfb-$t"
	done
	sort -n "$TMP/ttfb-$t" | awk -v t="$t" '{ v[NR] = $1 } END {
		printf "ttfb\t%s\t%.3f\t%.3f\n", t, v[int((NR + 1) / 2)] * 1000, v[int(NR * 0.9 + 0.5)] * 1000 }' >>"$RAW"
done
ELAPSED=$(($(date +%s) - T0))

{
	echo "# The local side's way into the cluster vs kubectl port-forward"
	echo
	echo "Generated by \`bench/local.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${ELAPSED}s)."
	echo
	echo "- kernel $(uname -r), $(nproc --all) cores, the single-node cluster of \`hack/cluster.sh\` on the same machine; nothing pinned"
	echo "- kubectl-intercept from $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'); wrk -t1, ${WARMUP}s warm-up + ${DURATION}s per run, keep-alive, 64 KiB answers"
	echo "- *forward*: \`--forward PORT:CLUSTERIP:80\` · *proxy*: the local HTTP proxy (absolute-form requests) · both through the tunnel of the intercept, the sidecar dialing the backend Service's ClusterIP"
	echo "- *port-forward*: \`kubectl port-forward svc/backend\` (to the backend pod)"
	echo "- *first byte*: a new connection per request, curl's time to the first byte of the answer, over $CONNECTS requests"
	echo
	echo "| conns | path | req/s | MB/s | errors | ÷ port-forward |"
	echo "|---:|---|---:|---:|---:|---:|"
	awk -F'\t' '$1 == "rps" { rps = $4 / ($5 / 1e6); if ($3 == "port-forward") base[$2] = rps; row[++n] = $0; r[n] = rps }
		END { for (i = 1; i <= n; i++) { split(row[i], f, "\t")
			printf "| %s | %s | %.0f | %.1f | %d | %s |\n", f[2], f[3], r[i], r[i] * 65536 / 1e6, f[6],
				(f[3] != "port-forward" && base[f[2]] > 0) ? sprintf("%.2f×", r[i] / base[f[2]]) : "" } }' "$RAW"
	echo
	echo "| path | first byte, median ms | p90 ms | ÷ port-forward (median) |"
	echo "|---|---:|---:|---:|"
	awk -F'\t' '$1 == "ttfb" { if ($2 == "port-forward") base = $3; row[++n] = $0 }
		END { for (i = 1; i <= n; i++) { split(row[i], f, "\t")
			printf "| %s | %.2f | %.2f | %s |\n", f[2], f[3], f[4], (f[2] != "port-forward" && base > 0) ? sprintf("%.2f×", f[3] / base) : "" } }' "$RAW"
} >"$OUT"
log "report written to $OUT"
cat "$OUT"
