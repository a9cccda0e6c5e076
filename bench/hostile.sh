#!/usr/bin/env bash
# bench/hostile.sh: the sidecar under hostile callers. Runs each attack
# (bench/hostile/main.go) against the real intercept-proxy binary on
# loopback, a fresh sidecar per attack with MEMORY_LIMIT=256 MiB as the
# copy gives it, and writes the sidecar's peak RSS (VmHWM), its CPU
# seconds, whether it kept running and whether an ordinary caller was
# served to bench/hostile-results.md.
#
#   bash bench/hostile.sh [LABEL=BINARY ...]
#
# With no arguments it builds bin/intercept-proxy from the working tree and
# measures it as "this tree"; give LABEL=BINARY pairs to compare builds
# (say a build of an earlier commit). Bounded: each attack holds
# BENCH_HOLD (8s) and ends; every connection is on 127.0.0.1.
#
# Knobs: BENCH_HOLD=8s, BENCH_ATTACKS=h2c,h2fill,h2unread,heads,idle,fds,settings,
# BENCH_HOSTILE_OUT=bench/hostile-results.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HOLD=${BENCH_HOLD:-8s}
ATTACKS=${BENCH_ATTACKS:-h2c,h2fill,h2unread,heads,idle,fds,settings}
OUT=${BENCH_HOSTILE_OUT:-bench/hostile-results.md}

if [ $# -eq 0 ]; then
	go build -o bin/intercept-proxy ./cmd/intercept-proxy
	set -- "this tree=bin/intercept-proxy"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/hostile" ./bench/hostile

{
	echo "# The sidecar under hostile callers"
	echo
	echo "bench/hostile.sh, $(date -u +%Y-%m-%d), $(nproc) cores, Go $(go env GOVERSION), commit $(git rev-parse --short HEAD)."
	echo "Each attack against a fresh sidecar with two ports and MEMORY_LIMIT=268435456 (the copy's 256 Mi),"
	echo "held ${HOLD}; then an ordinary GET on a new connection must be answered within 5 s."
	echo "Peak RSS is the sidecar's VmHWM; CPU is its user+system seconds over the whole run."
	echo
	echo "| build | attack | what | peak RSS (MiB) | CPU (s) | sidecar | ordinary caller | note |"
	echo "|---|---|---|---|---|---|---|---|"
	for pair in "$@"; do
		label=${pair%%=*}
		bin=${pair#*=}
		timeout 600 "$tmp/hostile" -proxy "$bin" -label "$label" -attacks "$ATTACKS" -hold "$HOLD"
	done
} | tee "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
