#!/usr/bin/env bash
# hack/proxy-digest.sh VERSION COMMIT: print the digest the release's
# multi-platform sidecar image will have, before GoReleaser runs, so the
# plugin can be built to reference its sidecar by digest:
#
#   PROXY_IMAGE_DIGEST=$(hack/proxy-digest.sh 0.4.0 "$(git rev-parse --short HEAD)") goreleaser release
#
# It builds intercept-proxy for linux/amd64 and linux/arm64 with the flags
# of .goreleaser.yaml and makes the images as its post hook does: Go builds
# with -trimpath and hack/mkimage are reproducible, so GoReleaser's own
# images come out identical (`make release-test` checks that it does, and
# the release refuses to push an image of another digest).
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: hack/proxy-digest.sh VERSION COMMIT (VERSION without the v)" >&2
	exit 2
fi
VERSION=$1
COMMIT=$2
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PKG=github.com/kubectl-intercept/kubectl-intercept
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go -C hack/mkimage build -o "$work/mkimage" .
tarballs=()
for arch in amd64 arm64; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X $PKG/pkg/version.Version=v$VERSION -X $PKG/pkg/version.Commit=$COMMIT" \
		-o "$work/intercept-proxy_$arch" ./cmd/intercept-proxy
	"$work/mkimage" -o "$work/intercept-proxy_linux_$arch.tar" -t "ghcr.io/kubectl-intercept/intercept-proxy:v$VERSION" \
		-platform "linux/$arch" -entrypoint /intercept-proxy "/intercept-proxy=$work/intercept-proxy_$arch" >/dev/null
	tarballs+=("$work/intercept-proxy_linux_$arch.tar")
done
"$work/mkimage" digest "${tarballs[@]}"
