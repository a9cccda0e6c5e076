# shellcheck shell=bash
# bench/lib.sh: what bench/run.sh, bench/tunnel.sh, bench/local.sh,
# bench/sandbox.sh and bench/wiretap.sh share. Sourced; the
# caller defines TMP and the arrays PID (associative) and STARTED.

# start NAME CMD...: runs CMD in the background, output to $TMP/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$TMP/$name.log" 2>&1 &
	# shellcheck disable=SC2034 # PID is the caller's associative array, read there
	PID["$name"]=$!
	STARTED+=("$name")
}

# stop_started: ends what start started, last first: SIGINT, then SIGKILL
# after 30 s.
stop_started() {
	local i name pid
	for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
		name=${STARTED[i]}
		pid=${PID[$name]}
		kill -0 "$pid" 2>/dev/null || continue
		kill -INT "$pid" 2>/dev/null || true
		for _ in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

# wait_log NAME TEXT SECONDS: until NAME's output has TEXT, or it died (the
# caller defines die).
wait_log() {
	local name=$1 text=$2
	for _ in $(seq $(($3 * 10))); do
		grep -q "$text" "$TMP/$name.log" && return 0
		kill -0 "${PID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	cat "$TMP/$name.log" >&2
	die "$name: no \"$text\""
}

# proc_ticks PID: utime+stime of PID in clock ticks (0 if gone).
proc_ticks() {
	local s f
	s=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	s=${s##*) }
	read -r -a f <<<"$s"
	echo $((f[11] + f[12]))
}

# read_result LINE: sets requests, duration_us, p50_us, p99_us and errors
# (declared by the caller) from the "RESULT k=v ..." line the load
# generator's wrapper prints.
read_result() {
	local kv
	# shellcheck disable=SC2034 # the caller's variables, read after the call
	requests='' duration_us='' p50_us='' p99_us='' errors=''
	for kv in ${1#RESULT }; do
		case ${kv%%=*} in
		requests | duration_us | p50_us | p99_us | errors) printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		esac
	done
}

USED_PORTS=" "
# pick_port VAR: a free loopback port, not handed out before, into VAR.
pick_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 30000))
		case $USED_PORTS in *" $p "*) continue ;; esac
		if [ -z "$(ss -Htan "sport = :$p")" ]; then
			USED_PORTS+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	die "no free port found"
}

# need_cluster: the benchmarks through the local cluster need its kubectl,
# the plugin and the cluster answering (the caller defines KUBECTL, PLUGIN
# and die).
need_cluster() {
	[ -x "$KUBECTL" ] || die "no kubectl at $KUBECTL (make cluster-up builds it)"
	[ -x "$PLUGIN" ] || die "no plugin at $PLUGIN (make build)"
	"$KUBECTL" get --raw /readyz >/dev/null 2>&1 || die "the cluster in $KUBECONFIG does not answer (make cluster-up)"
}

# deploy_demo_and_backend: the demo and a backend (one replica each, the
# demo's image) in namespace $NS, through the caller's k; sets BACKEND to
# the backend Service's ClusterIP.
deploy_demo_and_backend() {
	log "deploying the demo and a backend (1 replica each) in namespace $NS"
	"$KUBECTL" create namespace "$NS" >/dev/null
	sed -e "s|DEMO_IMAGE|$DEMO_IMAGE|" -e "s|replicas: 2|replicas: 1|" "$ROOT/hack/demo-app.yaml" | k apply -f - >/dev/null
	sed -e "s|\bdemo\b|backend|g" -e "s|DEMO_IMAGE|$DEMO_IMAGE|" -e "s|replicas: 2|replicas: 1|" "$ROOT/hack/demo-app.yaml" | k apply -f - >/dev/null
	k rollout status deployment/demo --timeout=120s >/dev/null
	k rollout status deployment/backend --timeout=120s >/dev/null
	# shellcheck disable=SC2034 # read by the caller
	BACKEND=$(k get svc backend -o jsonpath='{.spec.clusterIP}')
}
