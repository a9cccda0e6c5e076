#!/usr/bin/env bash
# bench/tunnel.sh: the matching path on the local cluster (make bench-tunnel).
#
# What the developer gets: requests that carry their header, sent to the
# Service's ClusterIP from this machine, reach their service on this
# machine through the sidecar and the built-in tunnel, which runs inside a
# port-forward of the copy's pod. Compared, in the same run, with a plain
# `kubectl port-forward` to the same pod: the path every other tool that
# reaches a pod from a laptop takes, and the floor of ours.
#
#   intercept     wrk -> ClusterIP:80 (x-dev: alice) -> sidecar -> tunnel
#                 (port-forward of the sidecar's control port) ->
#                 kubectl intercept -> intercept-demo on 127.0.0.1
#   port-forward  wrk -> kubectl port-forward pod/COPY -> the app in that pod
#                 (intercept-demo, the same program at both ends)
#
# wrk with 1, 16 and 64 connections on /bytes?n=16 and /bytes?n=65536;
# requests/s, p50/p99 latency, and the CPU time per request of the process
# on this machine that carries the tunnel (kubectl-intercept, or kubectl
# port-forward). The cluster runs on the same two cores, so nothing is
# pinned: these are end-to-end figures of this machine.
#
# Needs the local cluster and images (make cluster-up images build). Uses
# its own namespace, deleted at the end; stops only the processes it
# started, by PID. Bounded: every wrk run is BENCH_WARMUP + BENCH_DURATION
# seconds under `timeout`; about 5 minutes in all.
#
# Every case runs in BENCH_ROUNDS rounds, intercept and port-forward in
# turn, so that the cluster's own load, which comes and goes on the same
# cores, weighs on both alike; a row pools its rounds, and says in how many
# rounds the intercept reached 0.8x port-forward's requests/s.
#
# Knobs: BENCH_DURATION=5, BENCH_WARMUP=1, BENCH_CONNS="1 16 64",
# BENCH_ROUNDS=3, BENCH_TUNNEL_OUT=bench/tunnel-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
DURATION=${BENCH_DURATION:-5}
WARMUP=${BENCH_WARMUP:-1}
CONNS=${BENCH_CONNS:-"1 16 64"}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_TUNNEL_OUT:-$ROOT/bench/tunnel-results.md}
GO=${GO:-go}
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}
KUBECTL=${KUBECTL:-$CACHE_DIR/bin/kubectl}
PLUGIN=${PLUGIN:-$ROOT/bin/kubectl-intercept}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
export KUBECONFIG=${KUBECONFIG:-${CLUSTER_DIR:-$CACHE_DIR/cluster}/kubeconfig}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
export NO_COLOR=1

log() { printf '[bench-tunnel %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

command -v wrk >/dev/null || die "wrk is missing (make bench installs it, or: apt-get install wrk)"
command -v ss >/dev/null || die "ss is missing (apt-get install iproute2)"
need_cluster

TMP=$(mktemp -d /tmp/intercept-bench-tunnel.XXXXXX)
export XDG_STATE_HOME=$TMP/state
NS=bench-tunnel-$RANDOM
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

log "building the laptop's app"
(cd "$ROOT" && CGO_ENABLED=0 "$GO" build -o "$TMP/intercept-demo" ./cmd/intercept-demo)
pick_port P_LAPTOP
start laptop "$TMP/intercept-demo" --listen "127.0.0.1:$P_LAPTOP" --tcp-listen "" --raw-listen "" --pod laptop
wait_log laptop "serving" 10

log "deploying the demo service (1 replica) in namespace $NS"
"$KUBECTL" create namespace "$NS" >/dev/null
sed -e "s|DEMO_IMAGE|$DEMO_IMAGE|" -e "s|replicas: 2|replicas: 1|" "$ROOT/hack/demo-app.yaml" | k apply -f - >/dev/null
k rollout status deployment/demo --timeout=120s >/dev/null
IP=$(k get svc demo -o jsonpath='{.spec.clusterIP}')

start intercept "$PLUGIN" svc/demo -n "$NS" -l "$P_LAPTOP" -x x-dev:alice
wait_log intercept "Intercepting service" 120
COPY=$(k get pods -l intercept.kubectl.dev/session -o jsonpath='{.items[0].metadata.name}')
[ -n "$COPY" ] || die "no pod of the copy"
pick_port P_PF
start portforward "$KUBECTL" port-forward -n "$NS" "pod/$COPY" "$P_PF:8080"
wait_log portforward "Forwarding from" 30

# The intercept's CPU is the CLI's own; kubectl port-forward's likewise.
declare -A URL=([intercept]="http://$IP:80" [port-forward]="http://127.0.0.1:$P_PF")
declare -A CPU_PID=([intercept]=${PID[intercept]} [port-forward]=${PID[portforward]})
declare -A HDR=([intercept]="x-dev: alice" [port-forward]="x-dev: alice")
declare -A WANT=([intercept]=laptop [port-forward]=$COPY)
for t in intercept port-forward; do
	got=$(curl -sS --max-time 5 -H "${HDR[$t]}" "${URL[$t]}/" | tr -d '\n' | grep -o '"pod": *"[^"]*"' | cut -d'"' -f4)
	[ "$got" = "${WANT[$t]}" ] || die "$t: answered by '$got', want ${WANT[$t]}"
done
log "checked: intercept -> laptop, port-forward -> $COPY"

RAW=$TMP/results.tsv
: >"$RAW"
CLK_TCK=$(getconf CLK_TCK)
T0=$(date +%s)
for body in 16 65536; do
	for c in $CONNS; do
		for round in $(seq "$ROUNDS"); do
			for t in intercept port-forward; do
				url="${URL[$t]}/bytes?n=$body"
				timeout $((WARMUP + 30)) wrk -t1 -c"$c" -d"${WARMUP}s" -H "${HDR[$t]}" "$url" >/dev/null
				t0=$(proc_ticks "${CPU_PID[$t]}")
				out=$(timeout $((DURATION + 30)) wrk -t1 -c"$c" -d"${DURATION}s" --timeout 5s --latency \
					-s "$ROOT/bench/wrk-report.lua" -H "${HDR[$t]}" "$url") || die "$t: wrk failed: $out"
				t1=$(proc_ticks "${CPU_PID[$t]}")
				res=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -1)
				read_result "$res"
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$body" "$c" "$t" "$requests" "$duration_us" "$p50_us" "$p99_us" "$errors" $((t1 - t0)) "$round" >>"$RAW"
				awk -v r="$requests" -v d="$duration_us" -v p50="$p50_us" -v p99="$p99_us" -v e="$errors" -v pt=$((t1 - t0)) -v hz="$CLK_TCK" \
					-v what="$t ${body}B c=$c round $round" \
					'BEGIN { printf "  %-28s %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %6.1f us/req CPU  errors %d\n",
						what, r / (d / 1e6), p50 / 1000, p99 / 1000, pt * 1e6 / hz / r, e }' >&2
			done
		done
	done
done
ELAPSED=$(($(date +%s) - T0))

{
	echo "# Matching path: the built-in tunnel vs kubectl port-forward"
	echo
	echo "Generated by \`bench/tunnel.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (measuring took ${ELAPSED}s)."
	echo
	echo "- kernel $(uname -r), $(nproc --all) cores, the single-node cluster of \`hack/cluster.sh\` ($("$KUBECTL" version -o json 2>/dev/null | awk -F'"' '/gitVersion/ { v = $4 } END { print v }')) on the same machine; nothing pinned"
	echo "- kubectl-intercept from $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$GO" version | cut -d' ' -f3); wrk -t1, ${WARMUP}s warm-up + ${DURATION}s per run, keep-alive"
	echo "- *intercept*: wrk → the Service's ClusterIP with \`x-dev: alice\` → sidecar → tunnel inside a port-forward of the copy's pod → \`kubectl intercept\` → \`intercept-demo\` on 127.0.0.1"
	echo "- *port-forward*: wrk → \`kubectl port-forward pod/COPY\` → \`intercept-demo\` in that pod (the copy's app container)"
	echo "- *CPU µs/req*: utime+stime of the process on this machine that carries the traffic (\`kubectl-intercept\`, or \`kubectl port-forward\`) ÷ requests"
	echo
	echo "- $ROUNDS rounds per case, intercept and port-forward in turn; a row pools its rounds (all requests over all the time), p50 and p99 are the rounds' medians; *rounds ≥ 0.8×*: rounds in which the intercept reached 0.8× port-forward's requests/s of the same round"
	echo
	echo "| body | conns | path | req/s | p50 ms | p99 ms | errors | CPU µs/req | req/s ÷ port-forward | rounds ≥ 0.8× |"
	echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
	awk -F'\t' -v hz="$CLK_TCK" '
		function median(k, a,    m, i, j, v, x) {
			m = nr[k]
			for (i = 1; i <= m; i++) v[i] = a[k, i]
			for (i = 2; i <= m; i++) {
				x = v[i]
				for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
				v[j + 1] = x
			}
			return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
		}
		{
			k = $1 SUBSEP $2 SUBSEP $3
			if (!(k in nr)) order[++n] = k
			i = ++nr[k]
			req[k] += $4; dur[k] += $5; err[k] += $8; ticks[k] += $9
			p50[k, i] = $6; p99[k, i] = $7; rps[k, i] = $4 / ($5 / 1e6)
		}
		END {
			for (o = 1; o <= n; o++) {
				k = order[o]; split(k, f, SUBSEP)
				pf = f[1] SUBSEP f[2] SUBSEP "port-forward"
				r = req[k] / (dur[k] / 1e6)
				ratio = won = ""
				if (f[3] == "intercept" && req[pf] > 0) {
					ratio = sprintf("%.2f×", r / (req[pf] / (dur[pf] / 1e6)))
					w = 0
					for (i = 1; i <= nr[k]; i++) if (rps[k, i] >= 0.8 * rps[pf, i]) w++
					won = w " of " nr[k]
				}
				printf "| %s | %s | %s | %.0f | %.3f | %.3f | %d | %.1f | %s | %s |\n", f[1] == 16 ? "16 B" : "64 KiB", f[2], f[3],
					r, median(k, p50) / 1000, median(k, p99) / 1000, err[k], ticks[k] * 1e6 / hz / req[k], ratio, won
			}
		}' "$RAW"
} >"$OUT"
log "report written to $OUT"
cat "$OUT"
