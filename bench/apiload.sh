#!/usr/bin/env bash
# bench/apiload.sh: the load one idle intercept puts on the API server,
# counted where it lands (the local cluster's audit log, hack/cluster.sh).
#
#   PLUGIN=bin/kubectl-intercept REPLICAS=2 IDLE=60 bash bench/apiload.sh
#
# Deploys the demo with REPLICAS replicas in a fresh namespace, starts an
# intercept in the foreground, waits until it is active, then counts for
# IDLE seconds the requests the plugin's user agent makes (by verb and
# resource) and the TCP connections it holds to the API server. Prints one
# Markdown table row per run. Bounded: one intercept, IDLE seconds.
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
IDLE=${IDLE:-60}
AUDIT=${AUDIT:-$CLUSTER_DIR/logs/audit.log}
STATE=$(mktemp -d)
export XDG_STATE_HOME=$STATE
NS=apiload-$RANDOM

k() { "$KUBECTL" -n "$NS" "$@"; }
cleanup() {
	[[ -n ${PID:-} ]] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
	rm -rf "$STATE"
}
trap cleanup EXIT

[[ -r $AUDIT ]] || { echo "no audit log at $AUDIT: start the cluster with hack/cluster.sh up" >&2; exit 1; }
"$KUBECTL" create namespace "$NS" >/dev/null
sed "s|DEMO_IMAGE|$DEMO_IMAGE|; s|replicas: 2|replicas: $REPLICAS|" "$REPO/hack/demo-app.yaml" | k apply -f - >/dev/null
k rollout status deployment/demo --timeout=180s >/dev/null

LOG=$STATE/intercept.log
"$PLUGIN" svc/demo -n "$NS" -l 1 -x x-dev:apiload --inspect=false >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 180); do
	grep -q '^Intercepting' "$LOG" && break
	kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
	sleep 1
done
grep -q '^Intercepting' "$LOG" || { cat "$LOG" >&2; echo "not active within 180 s" >&2; exit 1; }
sleep 5 # let the start's own requests finish

start=$(date -u +%s)
conns=$(ss -tnp state established '( dport = :6443 )' | grep -c "pid=$PID," || true)
sleep "$IDLE"
end=$(date -u +%s)

# Requests of the plugin's user agent in [start, end), namespace NS, by the
# time the API server received them; a watch counts once, when it starts.
summary=$(START=$start END=$end NS=$NS python3 - "$AUDIT" <<'PY'
import json, os, sys, datetime, collections
start, end, ns = int(os.environ["START"]), int(os.environ["END"]), os.environ["NS"]
count = collections.Counter()
seen = set()
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if not e.get("userAgent", "").startswith("kubectl-intercept") or e.get("auditID") in seen:
        continue
    ref = e.get("objectRef") or {}
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
)
total=${summary%% *}
detail=${summary#* }
per_min=$(awk -v n="$total" -v s="$IDLE" 'BEGIN { printf "%.1f", n * 60 / s }')
printf '| %s | %d | %d s | %d | %s | %s |\n' "$(basename "$PLUGIN")" "$REPLICAS" "$IDLE" "$conns" "$per_min" "$detail"
