#!/usr/bin/env bash
# hack/images.sh: build the sidecar and demo images from our Go binaries,
# without Docker, as docker-archive tarballs under dist/images/ (any
# containerd node loads them with `ctr -n k8s.io images import FILE`), and
# import them into the local cluster when it is up.
#
# Environment: VERSION (stamped into the binaries), PROXY_IMAGE, DEMO_IMAGE,
# GOARCH (default: the host's).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VERSION=${VERSION:-dev}
PROXY_IMAGE=${PROXY_IMAGE:-localhost/kubectl-intercept/intercept-proxy:0.1.0}
DEMO_IMAGE=${DEMO_IMAGE:-localhost/kubectl-intercept/demo:0.1.0}
ARCH=${GOARCH:-$(go env GOARCH)}
OUT=dist/images
BIN=dist/linux_$ARCH

mkdir -p "$OUT" "$BIN"
ldflags="-s -w -X github.com/kubectl-intercept/kubectl-intercept/pkg/version.Version=$VERSION"
CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath -ldflags "$ldflags" -o "$BIN/intercept-proxy" ./cmd/intercept-proxy
# The demo app and mkimage are modules of their own (their go.mod beside
# them), so the plugin's go.mod holds none of what they need.
CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go -C cmd/intercept-demo build -trimpath -ldflags "-s -w" -o "$REPO/$BIN/intercept-demo" .
go -C hack/mkimage build -o "$REPO/dist/mkimage" .
dist/mkimage -o "$OUT/intercept-proxy.tar" -t "$PROXY_IMAGE" -platform "linux/$ARCH" \
	-entrypoint /intercept-proxy "/intercept-proxy=$BIN/intercept-proxy"
dist/mkimage -o "$OUT/demo.tar" -t "$DEMO_IMAGE" -platform "linux/$ARCH" \
	-entrypoint /intercept-demo "/intercept-demo=$BIN/intercept-demo"
echo "[images] $OUT/intercept-proxy.tar ($PROXY_IMAGE), $OUT/demo.tar ($DEMO_IMAGE)" >&2
# podinfo, a web app of others for test/e2e (built once per pin, imported when the cluster is up).
hack/podinfo/build.sh >/dev/null

if [ "$(id -u)" = 0 ] && hack/cluster.sh status >/dev/null 2>&1; then
	hack/cluster.sh import "$OUT/intercept-proxy.tar" "$OUT/demo.tar"
fi
