#!/usr/bin/env bash
# hack/demo.sh: the main job, end to end, on the local cluster: deploy the
# demo service, run a "laptop" service on this machine, intercept the demo
# Service with a header, and show which requests go where. Called by
# `make demo`, which builds everything and starts the cluster first.
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl}
PLUGIN=${PLUGIN:-bin/kubectl-intercept}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
export KUBECTL_INTERCEPT_PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
export XDG_STATE_HOME=${XDG_STATE_HOME:-$(mktemp -d)}
NS=intercept-demo
LOCAL_PORT=3000
k() { "$KUBECTL" -n "$NS" "$@"; }
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. A demo service in namespace $NS (2 replicas)"
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
sed "s|DEMO_IMAGE|$DEMO_IMAGE|" "$(dirname "$0")/demo-app.yaml" | k apply -f -
k rollout status deployment/demo --timeout=120s
IP=$(k get svc demo -o jsonpath='{.spec.clusterIP}')

say "2. The developer's version of the service, on this machine at localhost:$LOCAL_PORT"
"${LAPTOP:-dist/linux_$(go env GOARCH)/intercept-demo}" --listen "127.0.0.1:$LOCAL_PORT" --tcp-listen "" --raw-listen "" \
	--pod "alice-laptop" --message "served from this machine" >/dev/null 2>&1 &
LOCAL_PID=$!
trap 'kill $LOCAL_PID 2>/dev/null || true; "$PLUGIN" close svc/demo -n "$NS" >/dev/null 2>&1 || true' EXIT
sleep 0.5

say "3. kubectl intercept svc/demo -n $NS -l $LOCAL_PORT -x x-dev:alice --detach"
"$PLUGIN" svc/demo -n "$NS" -l "$LOCAL_PORT" -x x-dev:alice --detach

say "4. Requests through the Service's ClusterIP ($IP)"
# who answered: the "pod" field of the demo app's JSON echo
who() { curl -s "$@" | tr -d '\n' | grep -o '"pod": *"[^"]*"' | cut -d'"' -f4; }
for _ in 1 2 3; do
	printf 'curl http://%s/                    -> %s\n' "$IP" "$(who "http://$IP/")"
	printf 'curl -H "x-dev: alice" http://%s/  -> %s\n' "$IP" "$(who -H 'x-dev: alice' "http://$IP/")"
done

say "5. kubectl intercept list -n $NS"
"$PLUGIN" list -n "$NS"
echo
echo "kubectl intercept status svc/demo -n $NS"
"$PLUGIN" status svc/demo -n "$NS"

say "6. kubectl intercept close svc/demo -n $NS"
"$PLUGIN" close svc/demo -n "$NS"
printf 'curl -H "x-dev: alice" http://%s/  -> %s\n' "$IP" "$(who -H 'x-dev: alice' "http://$IP/")"
say "7. The developer's service run by the intercept, as the pod runs: its environment and the cluster's network"
sed -e "s|\bdemo\b|backend|g" -e "s|DEMO_IMAGE|$DEMO_IMAGE|" -e "s|replicas: 2|replicas: 1|" "$(dirname "$0")/demo-app.yaml" | k apply -f - >/dev/null
k rollout status deployment/backend --timeout=120s >/dev/null
LAPTOP2=$((LOCAL_PORT + 1))
echo "kubectl intercept svc/demo -n $NS -l $LAPTOP2 -x x-dev:alice -- intercept-demo --listen 127.0.0.1:$LAPTOP2 ..."
LOG=$(mktemp)
"$PLUGIN" svc/demo -n "$NS" -l "$LAPTOP2" -x x-dev:alice --inspect=false -- \
	"${LAPTOP:-dist/linux_$(go env GOARCH)/intercept-demo}" --listen "127.0.0.1:$LAPTOP2" --tcp-listen "" --raw-listen "" \
	--pod "alice-laptop" >"$LOG" 2>&1 &
CMD_PID=$!
trap 'kill -INT $CMD_PID 2>/dev/null || true; kill $LOCAL_PID 2>/dev/null || true; "$PLUGIN" close svc/demo -n "$NS" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 600); do
	grep -q "Running " "$LOG" && break
	kill -0 "$CMD_PID" 2>/dev/null || break
	sleep 0.2
done
grep -E "^(Intercepting|Environment|Cluster network|Running)" "$LOG" || cat "$LOG"
sleep 1
echo
echo "curl -H \"x-dev: alice\" \"http://$IP/call?to=http://backend.$NS/\"   (the laptop calls the backend by its cluster name)"
read -r -a PODS <<<"$(curl -s -H 'x-dev: alice' "http://$IP/call?to=http://backend.$NS/" | grep -o '"pod": *"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ')"
echo "  -> answered by ${PODS[0]:-nobody}, with the answer it got from ${PODS[1]:-nobody}"
echo
kill -INT "$CMD_PID"
wait "$CMD_PID" || true
tail -n 2 "$LOG"
rm -f "$LOG"

say "8. The same in the sandbox (--sandbox): no proxy variables, cluster names for every client, the pod's hostname"
LAPTOP3=$((LOCAL_PORT + 2))
# The preflight alone: a dry run says why this machine cannot, and changes nothing.
if ! WHY=$("$PLUGIN" svc/demo -n "$NS" --dry-run --sandbox -- true 2>&1); then
	echo "skipped: ${WHY%%$'\n'*}"
else
	echo "kubectl intercept svc/demo -n $NS -l $LAPTOP3 -x x-dev:alice --sandbox -- sh -c 'hostname; getent hosts backend; exec intercept-demo ...'"
	LOG=$(mktemp)
	"$PLUGIN" svc/demo -n "$NS" -l "$LAPTOP3" -x x-dev:alice --inspect=false --sandbox -- sh -c \
		"echo \"hostname: \$(hostname)\"; echo \"getent hosts backend: \$(getent hosts backend)\"; exec ${LAPTOP:-dist/linux_$(go env GOARCH)/intercept-demo} --listen 127.0.0.1:$LAPTOP3 --tcp-listen '' --raw-listen '' --pod alice-sandbox" \
		>"$LOG" 2>&1 &
	CMD_PID=$!
	for _ in $(seq 600); do
		grep -q "Running " "$LOG" && break
		kill -0 "$CMD_PID" 2>/dev/null || break
		sleep 0.2
	done
	sleep 1
	grep -E "^(Intercepting|Sandbox|  (DNS|Network|Files)|Running|hostname|getent)" "$LOG" || cat "$LOG"
	echo
	echo "curl -H \"x-dev: alice\" \"http://$IP/call?to=http://backend/\"   (no HTTP_PROXY inside: the short name through the pod's search path)"
	read -r -a PODS <<<"$(curl -s -H 'x-dev: alice' "http://$IP/call?to=http://backend/" | grep -o '"pod": *"[^"]*"' | cut -d'"' -f4 | tr '\n' ' ')"
	echo "  -> answered by ${PODS[0]:-nobody}, with the answer it got from ${PODS[1]:-nobody}"
	kill -INT "$CMD_PID"
	wait "$CMD_PID" || true
	tail -n 1 "$LOG"
	rm -f "$LOG"
fi

say "The Service is as it was. Remove the demo with: $KUBECTL delete namespace $NS"
