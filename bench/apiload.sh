#!/usr/bin/env bash
# bench/apiload.sh: the load intercepts put on the API server, counted where
# it lands: the local cluster's audit log and the API server's own sockets
# (hack/cluster.sh).
#
#   REPLICAS="1 6 20" DEVS="1 5" IDLE=60 CHURN=3 bash bench/apiload.sh
#
# For each replica count and developer count: deploys the demo in a fresh
# namespace, starts DEVS intercepts of it in the foreground (each its own
# header), waits until all are active, then
#   - idle: for IDLE seconds counts the requests of the plugin's user agent
#     and the connections the API server holds for the plugins (its sockets
#     on :6443 whose peers are the plugins' sockets) and to the kubelet
#     (:10250, where port-forwards go on);
#   - churn: deletes CHURN copy pods, one every 10 s, and counts the
#     requests from the first deletion until 10 s after the last.
# Prints one Markdown table row per run. Bounded: DEVS intercepts, IDLE s,
# CHURN deletions. EXTRA_FLAGS go to every intercept (--tunnel-per-pod
# measures a tunnel to every pod).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${CACHE_DIR:-/var/tmp/kubectl-intercept}
CLUSTER_DIR=${CLUSTER_DIR:-$CACHE_DIR/cluster}
export KUBECONFIG=${KUBECONFIG:-$CLUSTER_DIR/kubeconfig}
KUBECTL=${KUBECTL:-$CACHE_DIR/bin/kubectl}
PLUGIN=${PLUGIN:-$REPO/bin/kubectl-intercept}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
REPLICAS=${REPLICAS:-2}
DEVS=${DEVS:-1}
IDLE=${IDLE:-60}
CHURN=${CHURN:-3}
EXTRA_FLAGS=${EXTRA_FLAGS:-}
AUDIT=${AUDIT:-$CLUSTER_DIR/logs/audit.log}
STATE=$(mktemp -d)
export XDG_STATE_HOME=$STATE
PIDS=()
NS=

cleanup() {
	stop_all
	rm -rf "$STATE"
}
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
	if [[ -n $NS ]]; then
		"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
	fi
	NS=
}
trap cleanup EXIT

# requests START END: the plugin's requests in namespace NS received in
# [START, END): "TOTAL detail"; a watch or a port-forward counts once, when
# it starts.
requests() {
	START=$1 END=$2 NS=$NS python3 - "$AUDIT" <<'PY'
import json, os, sys, datetime, collections
start, end, ns = int(os.environ["START"]), int(os.environ["END"]), os.environ["NS"]
count = collections.Counter()
seen = set()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ref = e.get("objectRef") or {}
    # client-go's port-forward dialers send no user agent of their own;
    # nothing else port-forwards in the namespace.
    ours = e.get("userAgent", "").startswith("kubectl-intercept") or ref.get("subresource") == "portforward"
    if not ours or e.get("auditID") in seen:
        continue
    if ref.get("namespace") != ns:
        continue
    t = datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
    if start <= t < end:
        seen.add(e["auditID"])
        what = ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        count[e["verb"] + " " + what] += 1
total = sum(count.values())
print(total, "; ".join(f"{k} {v}" for k, v in sorted(count.items())) or "none")
PY
}

# server_conns: the API server's established connections whose peer is a
# socket of one of the plugins, then those it holds to the kubelet.
server_conns() {
	local ports pid
	ports=$(for pid in "${PIDS[@]}"; do
		ss -tnpH state established '( dport = :6443 )' | grep "pid=$pid," | awk '{ n = split($3, a, ":"); print a[n] }'
	done | sort -u)
	local apiserver=0 kubelet
	if [[ -n $ports ]]; then
		apiserver=$(ss -tnpH state established '( sport = :6443 )' | grep kube-apiserver |
			awk '{ n = split($4, a, ":"); print a[n] }' | grep -cxF "$ports" || true)
	fi
	kubelet=$(ss -tnpH state established '( dport = :10250 )' | grep -c kube-apiserver || true)
	echo "$apiserver $kubelet"
}

run() {
	local replicas=$1 devs=$2 i
	NS=apiload-$RANDOM
	"$KUBECTL" create namespace "$NS" >/dev/null
	sed "s|DEMO_IMAGE|$DEMO_IMAGE|; s|replicas: 2|replicas: $replicas|" "$REPO/hack/demo-app.yaml" | "$KUBECTL" -n "$NS" apply -f - >/dev/null
	"$KUBECTL" -n "$NS" rollout status deployment/demo --timeout=300s >/dev/null
	# The apiserver's kubelet connections before (other clients' logs and
	# port-forwards), so the row shows only the plugins'.
	local base_kubelet
	base_kubelet=$(ss -tnpH state established '( dport = :10250 )' | grep -c kube-apiserver || true)
	for i in $(seq 1 "$devs"); do
		# shellcheck disable=SC2086 # EXTRA_FLAGS are words
		"$PLUGIN" svc/demo -n "$NS" -l 1 -x "x-dev:apiload-$i" --inspect=false $EXTRA_FLAGS >"$STATE/dev-$i.log" 2>&1 &
		PIDS+=($!)
	done
	for i in $(seq 1 "$devs"); do
		local ok=
		for _ in $(seq 1 300); do
			grep -q '^Intercepting' "$STATE/dev-$i.log" && ok=1 && break
			kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || break
			sleep 1
		done
		[[ -n $ok ]] || { cat "$STATE/dev-$i.log" >&2; echo "developer $i: not active within 300 s" >&2; exit 1; }
	done
	sleep 10 # let the starts' own requests and the admissions finish

	local start end conns client=0 pid
	for pid in "${PIDS[@]}"; do
		client=$((client + $(ss -tnpH state established '( dport = :6443 )' | grep -c "pid=$pid," || true)))
	done
	start=$(date -u +%s)
	read -r -a conns <<<"$(server_conns)"
	sleep "$IDLE"
	end=$(date -u +%s)
	local idle
	idle=$(requests "$start" "$end")

	local cstart cend
	cstart=$(date -u +%s)
	for _ in $(seq 1 "$CHURN"); do
		"$KUBECTL" -n "$NS" delete pod --wait=false \
			"$("$KUBECTL" -n "$NS" get pods -l intercept.kubectl.dev/session -o name | shuf -n 1 | cut -d/ -f2)" >/dev/null
		sleep 10
	done
	cend=$(date -u +%s)
	local churn
	churn=$(requests "$cstart" "$cend")
	local after
	read -r -a after <<<"$(server_conns)"

	awk -v r="$replicas" -v d="$devs" -v flags="${EXTRA_FLAGS:-relay}" -v c="$client" -v sa="${conns[0]}" -v sk="$((conns[1] - base_kubelet))" \
		-v ac="${after[0]}" -v ak="$((after[1] - base_kubelet))" \
		-v it="${idle%% *}" -v is="$IDLE" -v ct="${churn%% *}" -v cs="$((cend - cstart))" -v n="$CHURN" -v detail="${churn#* }" \
		'BEGIN { printf "| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %d pods: %.1f (%s) |\n",
			flags, r, d, c / d, sa / d, sk / d, ak / d, it * 60 / is / d, n, ct * 60 / cs / d, detail }'
	stop_all
}

echo "| tunnels | replicas | developers | plugin's connections per developer | API server's connections for the plugins, per developer | API server → kubelet per developer, idle | … after the churn | requests per minute per developer, idle | while copy pods are deleted: requests per minute per developer (all requests) |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $REPLICAS; do
	for d in $DEVS; do
		run "$r" "$d"
	done
done
