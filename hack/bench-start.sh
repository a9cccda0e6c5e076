#!/usr/bin/env bash
# hack/bench-start.sh: time to an active intercept and back, over N runs, on
# the local cluster (make cluster-up images build first).
#
# For each run: start `kubectl intercept svc/demo -l PORT` in the
# foreground, take the time until it reports the intercept active, subtract
# the time the copy's pods took to become ready (its own step), then send
# SIGINT and take the time until the Service's selector is the original
# again and until the copy's pods are gone. Prints one line per run and the
# median of each column.
set -euo pipefail
N=${N:-10}
KUBECTL=${KUBECTL:-/var/tmp/kubectl-intercept/bin/kubectl}
PLUGIN=${PLUGIN:-bin/kubectl-intercept}
export KUBECONFIG=${KUBECONFIG:-/var/tmp/kubectl-intercept/cluster/kubeconfig}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
XDG_STATE_HOME=$(mktemp -d)
export NO_COLOR=1 XDG_STATE_HOME
NS=intercept-bench
k() { "$KUBECTL" -n "$NS" "$@"; }
now() { date +%s.%N; }

"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
sed "s|DEMO_IMAGE|${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}|" "$(dirname "$0")/demo-app.yaml" | k apply -f - >/dev/null
k rollout status deployment/demo --timeout=120s >/dev/null
trap '"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT

printf '%-4s %12s %12s %12s %14s %14s\n' run active_s ready_wait_s overhead_s switched_back_s copy_gone_s
rows=()
for i in $(seq 1 "$N"); do
	log=$(mktemp)
	t0=$(now)
	"$PLUGIN" svc/demo -n "$NS" -l 3999 -w >"$log" 2>&1 &
	pid=$!
	until grep -q "Intercepting service" "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log"; exit 1; }
		sleep 0.02
	done
	t1=$(now)
	ready=$(sed -n 's/.*waiting for .* to be ready (\(.*\))$/\1/p' "$log")
	ready_s=$(awk -v d="$ready" 'BEGIN{ if (d ~ /ms$/) {sub(/ms/,"",d); print d/1000} else {sub(/s/,"",d); print d} }')
	kill -INT $pid
	t2=$(now)
	until [[ $(k get svc demo -o jsonpath='{.spec.selector.app}') == demo ]]; do sleep 0.02; done
	t3=$(now)
	wait $pid || true
	until [[ -z $(k get pods -l intercept.kubectl.dev/session -o name) ]]; do sleep 0.05; done
	t4=$(now)
	row=$(awk -v a="$t0" -v b="$t1" -v r="$ready_s" -v c="$t2" -v d="$t3" -v e="$t4" \
		'BEGIN{ printf "%.2f %.2f %.2f %.2f %.2f", b-a, r, b-a-r, d-c, e-c }')
	rows+=("$row")
	read -r -a cols <<<"$row"
	printf '%-4s %12s %12s %12s %14s %14s\n' "$i" "${cols[@]}"
	rm -f "$log"
done
median() { sort -n | awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2 }'; }
meds=()
for col in 1 2 3 4 5; do
	meds+=("$(printf '%s\n' "${rows[@]}" | awk -v c=$col '{print $c}' | median)")
done
printf '%-4s %12s %12s %12s %14s %14s\n' med "${meds[@]}"
